"""People, not tracker ids: tracklets stitched into persons across id switches.

A tracker's id changes whenever it loses someone: an occlusion behind a colleague, a
box merged with another, a few missed detections. And it sometimes hands one person's
id to another nearby. Everything keyed on those ids then goes wrong in the store: one
service becomes three events, a cashier turns customer, a walker "crosses back". This
node sits between the tracker and everything that uses ids (person filter, roles,
rules, store figures, preview) and gives each *person* a stable id:

* **continuation**: a tracklet keeps its person while every step is one a person can
  make (``max_speed`` box heights per second, plus ``jump_slack`` for box jitter);
* **jumps split**: a step no person can make (the tracker handed the id to someone
  else) starts a new person, never continues one, so a customer never inherits a
  cashier's role and a teleport never crosses a line;
* **stitching**: a new tracklet takes over a person lost less than ``max_gap_seconds``
  ago, when it appears where that person could be by now and, with appearance
  features from the tracker, does not look different (``max_appearance``, cosine
  distance between running means), and only when nothing is ambiguous: it is the one
  new tracklet that could be that person, and that person the one it could be. In a
  crowd a wrong stitch costs more than a missed one;
* **twin boxes**: trackers often start a second box on a person (a duplicate
  detection, one box inside the other) shortly before losing the first. For
  ``adopt_seconds`` after it starts, a tracklet that was only ever seen on the same
  body as a person (``twin_overlap`` of the smaller box inside the larger) takes that
  person over once the first box is lost, if it looks alike (so only with appearance
  features: with ByteTrack two people one behind the other pass for twins). Two boxes
  that start on one body at the same look are not a first box and its twin: neither
  takes the other over (caviar-shop-front: one more id switch, nothing gained). A
  tracklet seen anywhere else at the same time is someone else. Young tracklets never seen beside the lost person are not
  retried: in a crowd (tud-campus at half the frame rate) retrying them let a tracklet
  take over a walker lost 0.9 s before (IDF1 of persons 65.1 -> 53.9).

Appearance is a veto, not the main cue: DeepSORT's MobileNetV2 features are ImageNet
features, not a re-id network's. On tud-campus the mean features of two tracklets of
one person lie 0.04-0.20 apart, of two different people from 0.05 (median 0.13), so
place and time decide and appearance refuses the different. At 0.2 it let a new
tracklet take over a tall walker lost 0.6 s before, 150 px away (tud-campus at half
the frame rate: IDF1 65.1 -> 60.1); at 0.15 it does not (docs/accuracy.md).

After this node ``detections.tracker_id`` holds person ids and
``detections.data["track_id"]`` the tracker's own ids (both go into ``tracks.parquet``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vizoflow.errors import ConfigError
from vizoflow.frame import Frame
from vizoflow.geometry import ground_points
from vizoflow.nodes.sinks import TRACK_ID
from vizoflow.nodes.track import EMBEDDING


@dataclass(slots=True)
class _Person:
    """What is known of one person: where and when last seen, how tall, what they look like."""

    pid: int
    seen: float
    point: np.ndarray
    height: float
    feature: np.ndarray | None
    born: float = 0.0
    # Young persons only: who was seen at the same time on the same body, and who elsewhere.
    twin: set[int] = field(default_factory=set)
    apart: set[int] = field(default_factory=set)


class PersonIdentity:
    """Relabel tracker ids as person ids, stitched through id switches and split at jumps.

    Args:
        max_gap_seconds: A person unseen this long can no longer be taken over by a new
            tracklet (a longer absence is another visit).
        max_speed: Fastest plausible movement of a ground point, in box heights per second
            (a brisk walk is about 1).
        jump_slack: Movement allowed between any two sightings for box jitter and
            partial occlusion, in box heights.
        max_appearance: Largest cosine distance between running mean features for a new
            tracklet to take over a lost person (a veto; see the module docstring).
        adopt_seconds: How long after it starts a twin box may take over the person it
            doubled (see the module docstring); 0 turns this off.
        twin_overlap: Share of the smaller box inside the larger for two boxes seen at
            once to be on the same body.
        feature_momentum: Weight of the old running mean when a sighting is added.
        forget_seconds: Persons unseen this long are forgotten, so memory stays flat live.

    Raises:
        ConfigError: a non-positive speed or negative gap, slack or appearance limit.
    """

    def __init__(self, max_gap_seconds: float = 4.0, max_speed: float = 1.5, jump_slack: float = 0.3,
                 max_appearance: float = 0.15, adopt_seconds: float = 1.0, twin_overlap: float = 0.8,
                 feature_momentum: float = 0.9, forget_seconds: float = 60.0) -> None:
        if max_speed <= 0 or min(max_gap_seconds, jump_slack, max_appearance, adopt_seconds) < 0:
            raise ConfigError("identity: need max_speed > 0 and max_gap_seconds, jump_slack, max_appearance, "
                              f"adopt_seconds >= 0, got {max_speed}, {max_gap_seconds}, {jump_slack}, "
                              f"{max_appearance}, {adopt_seconds}")
        if not 0 < twin_overlap <= 1:
            raise ConfigError(f"identity.twin_overlap must be in (0, 1], got {twin_overlap}")
        if not 0 <= feature_momentum < 1:
            raise ConfigError(f"identity.feature_momentum must be in [0, 1), got {feature_momentum}")
        self.max_gap, self.max_speed, self.jump_slack = max_gap_seconds, max_speed, jump_slack
        self.max_appearance, self.momentum, self.adopt_seconds = max_appearance, feature_momentum, adopt_seconds
        self.forget_seconds = max(forget_seconds, max_gap_seconds)
        self.twin_overlap = twin_overlap
        self._video: str | None = None
        self._reset()

    def _reset(self) -> None:
        self._persons: dict[int, _Person] = {}
        self._of_track: dict[int, int] = {}
        self._next = 1
        self.jumps = 0  # tracklets split because they jumped (status)
        self.stitched = 0  # tracklets that took over a lost person (status)

    def process(self, frame: Frame) -> Frame:
        """Replace ``tracker_id`` with person ids; keep the tracker's in ``data["track_id"]``."""
        if frame.video != self._video:
            self._video = frame.video
            self._reset()
        det = frame.detections
        if det.tracker_id is None:
            return frame
        t = frame.timestamp
        tids = det.tracker_id.astype(int)
        points = ground_points(det.xyxy)
        heights = np.maximum(det.xyxy[:, 3] - det.xyxy[:, 1], 1.0)
        features = self._features(det.data.get(EMBEDDING), len(det))
        pids = self._continue(tids, points, heights, t)
        self._stitch(pids, points, heights, features, t)
        for i, tid in enumerate(tids.tolist()):
            if pids[i] < 0:
                pids[i] = self._next
                self._next += 1
            self._of_track[tid] = int(pids[i])
            self._see(int(pids[i]), points[i], float(heights[i]), None if features is None else features[i], t)
        self._mark_twins(pids, det.xyxy, t)
        det.data[TRACK_ID] = tids
        det.tracker_id = pids
        self._forget(t)
        return frame

    @staticmethod
    def _features(raw: np.ndarray | None, n: int) -> np.ndarray | None:
        if raw is None or len(raw) != n:
            return None
        raw = np.asarray(raw, dtype=np.float32)
        return raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-9)

    def _reach(self, person: _Person, height: float, t: float) -> float:
        """How far (pixels) ``person`` can plausibly be from where last seen, by now."""
        h = max(person.height, height)
        return h * (self.jump_slack + self.max_speed * max(t - person.seen, 0.0))

    def _continue(self, tids: np.ndarray, points: np.ndarray, heights: np.ndarray, t: float) -> np.ndarray:
        """Persons of tracklets that go on plausibly; -1 for new tracklets and jumps."""
        pids = np.full(len(tids), -1, dtype=int)
        claims: list[tuple[float, int, int]] = []
        for i, tid in enumerate(tids.tolist()):
            pid = self._of_track.get(tid)
            person = self._persons.get(pid) if pid is not None else None
            if person is None:
                continue
            step = float(np.linalg.norm(points[i] - person.point))
            if step <= self._reach(person, float(heights[i]), t):
                claims.append((step, i, person.pid))
            else:  # the tracker handed the id to someone else: a new person from here
                del self._of_track[tid]
                self.jumps += 1
        taken: set[int] = set()
        for _, i, pid in sorted(claims):  # two tracklets on one person: the nearer keeps it
            if pid not in taken:
                pids[i] = pid
                taken.add(pid)
        return pids

    def _stitch(self, pids: np.ndarray, points: np.ndarray, heights: np.ndarray, features: np.ndarray | None,
                t: float) -> None:
        """New tracklets and twin boxes take over persons lost recently, where they could be and look alike."""
        visible = set(pids[pids >= 0].tolist())
        young = [i for i in np.flatnonzero(pids >= 0) if t - self._persons[pids[i]].born < self.adopt_seconds]
        new = np.concatenate([np.flatnonzero(pids < 0), np.array(young, dtype=int)]).astype(int)
        lost = [p for p in self._persons.values() if p.pid not in visible and 0 < t - p.seen <= self.max_gap]
        if not len(new) or not lost:
            return
        plausible = np.zeros((len(new), len(lost)), dtype=bool)
        for a, i in enumerate(new):
            own = self._persons.get(int(pids[i])) if pids[i] >= 0 else None
            for b, person in enumerate(lost):
                if own is not None and (person.pid not in own.twin or person.pid in own.apart or features is None
                                        or person.feature is None or person.born >= own.born):
                    continue  # a twin box takes over only an older person, seen only on that body, looking alike
                if float(np.linalg.norm(points[i] - person.point)) > self._reach(person, float(heights[i]), t):
                    continue
                if features is not None and person.feature is not None:
                    plausible[a, b] = 1.0 - float(features[i] @ person.feature) <= self.max_appearance
                else:
                    plausible[a, b] = True
        for a, b in zip(*np.nonzero(plausible)):
            if plausible[a].sum() == 1 and plausible[:, b].sum() == 1:  # only where nobody else could be meant
                if pids[new[a]] >= 0:  # a twin box turns out to be the lost person: its own person ends
                    ended = int(pids[new[a]])
                    del self._persons[ended]
                    self._of_track = {tid: pid for tid, pid in self._of_track.items() if pid != ended}
                pids[new[a]] = lost[b].pid
                self.stitched += 1

    def _mark_twins(self, pids: np.ndarray, xyxy: np.ndarray, t: float) -> None:
        """Remember, for young persons, who was seen at the same time on the same body (a twin box) or elsewhere."""
        if not len(pids):
            return
        x1 = np.maximum(xyxy[:, None, 0], xyxy[None, :, 0])
        y1 = np.maximum(xyxy[:, None, 1], xyxy[None, :, 1])
        x2 = np.minimum(xyxy[:, None, 2], xyxy[None, :, 2])
        y2 = np.minimum(xyxy[:, None, 3], xyxy[None, :, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        area = np.maximum((xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1]), 1.0)
        inside = inter / np.minimum(area[:, None], area[None, :])  # 1 when one box lies within the other
        for i, pid in enumerate(pids.tolist()):
            person = self._persons[pid]
            if t - person.born >= self.adopt_seconds:
                person.twin.clear()
                person.apart.clear()
                continue
            for j, other in enumerate(pids.tolist()):
                if other != pid:
                    (person.twin if inside[i, j] >= self.twin_overlap else person.apart).add(other)

    def _see(self, pid: int, point: np.ndarray, height: float, feature: np.ndarray | None, t: float) -> None:
        person = self._persons.get(pid)
        if person is None:
            self._persons[pid] = _Person(pid, t, point.copy(), height, feature, born=t)
            return
        person.seen, person.point = t, point.copy()
        person.height = 0.8 * person.height + 0.2 * height  # smoothed: a box cut by a counter is not a child
        if feature is not None:
            mean = feature if person.feature is None else self.momentum * person.feature + (1 - self.momentum) * feature
            person.feature = mean / max(float(np.linalg.norm(mean)), 1e-9)

    def _forget(self, now: float) -> None:
        stale = {pid for pid, p in self._persons.items() if now - p.seen > self.forget_seconds}
        for pid in stale:
            del self._persons[pid]
        if stale:
            self._of_track = {tid: pid for tid, pid in self._of_track.items() if pid not in stale}

    def status(self) -> dict[str, float]:
        """Persons in memory, tracklets split at jumps and stitched, for the live status line."""
        return {"persons": len(self._persons), "id_jumps": self.jumps, "id_stitches": self.stitched}
