"""Which tracks are believably people: no alerts on racks, mannequins and posters.

A COCO detector on store footage finds "people" in clothes racks, mannequins and
reflections, and a tracker confirms them. Frigate answers with object filters
(``min_score``, a median ``threshold``, area and ratio limits, masks, stationary
objects); vizoflow does the same per track, before roles and rules:

* per detection, on every frame: ignore masks, area and aspect limits drop boxes
  that can never be a person here (a poster, a box the size of the frame);
* per track, once: a track becomes *trusted* when the median of its recent scores
  reaches ``score_threshold`` **and** it has shown life, in one of two ways:

  - *its pixels changed*: twice a second the grey picture inside the track's box is
    compared with the same place half a second and ``change_seconds`` (2 s) earlier;
    a change of at least ``min_change`` grey levels, look after look for
    ``life_seconds``, is life. A cashier scanning goods changes it every half second;
    a person standing still still shifts, sways and turns a page, which shows over
    two seconds even when half a second hides it in the camera's noise. A rack's
    pixels stay as they were however long it is watched; a passer-by changes them
    for less than ``life_seconds``;
  - *it walked*: its box's centre moved ``walk_motion`` (half) of the box's height
    away from where the track was first seen, so a walker is trusted before the
    pixel test could be sure. Boxes of racks in the shared clips, jitter and all,
    never moved more than a quarter of their height.

  Times are seconds on the frame clock, so 7 fps and 30 fps cameras behave alike.

The two tests guard each other. Someone lingering behind a rack for longer than
``life_seconds`` makes its pixels change (the left rack of caviar-shop-front, with a
shopper walking behind it for 3 s): then only the score keeps it out. Someone tracked
*in front* of it does not: the cells their box covers are left out of the comparison
(see :class:`AppearanceChange`). A rack that the detector likes (score median 0.54 for
a jacket on a rack in ucf-clothing-table) is kept out by its pixels. And a person who
stands truly still, back to the camera, shows no more life than a rack: the pixel test
trusts them only once they shift (docs/trust.md has the numbers).

The older test, "an edge of the box moved 5% of its height on 5 frames", no longer
decides: it missed still people on big, steady boxes (a cashier and a customer at a
1280x720 till were never trusted) and passed racks whose weak boxes jitter. It stays
only for where the pixel test cannot run: ``min_change`` 0 (every test of life is off
by default, the measured settings are in the config), and frames without pixels
(track-cache replays without appearance values).

Untrusted tracks stay in the frame (``detections.data["trusted"]`` is False) so that
rules can *begin* an episode with them and start the event once they are trusted,
from the moment the condition first held (see :mod:`vizoflow.nodes.rules`).

:class:`AppearanceChange` is the pixel measurement on its own, as a node that can run
right after the tracker: its per-box values (``detections.data["appearance_change"]``)
can then be stored with the tracks, and a replay without the video trusts the same
tracks as the run that saw it. Without it, :class:`PersonFilter` measures by itself.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import supervision as sv

from vizoflow.errors import ConfigError
from vizoflow.frame import Frame
from vizoflow.zones import Zones

log = logging.getLogger(__name__)

CHANGE = "appearance_change"  # detections.data column: grey-level change measured on this frame (NaN: none)
LOOK_SECONDS = 0.5  # how often a track's box is looked at; also the short comparison
PATCH = (8, 16)  # (width, height) of the grey grid a box is reduced to
MIN_SEEN_CELLS = 0.25  # share of a patch's cells that must be clear of people in front for a comparison
WALK_HOLD_SECONDS = 0.25  # a box must stay moved this long to count as a walk (one jumpy box is not)
_EPS = 1e-6


def has_pixels(image: np.ndarray | None) -> bool:
    """False for a frame without real pixels: none, empty, or the read-only placeholder of
    a track-cache replay (a zero-stride broadcast of one black pixel)."""
    return image is not None and image.size > 0 and all(s != 0 for s in image.strides[:2])


def pixel_box(box: np.ndarray, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``box`` as whole pixels inside an image of ``size`` (width, height), at least one pixel wide and high."""
    w, h = size
    x1 = min(max(int(math.floor(box[0])), 0), w - 1)
    y1 = min(max(int(math.floor(box[1])), 0), h - 1)
    x2 = min(max(int(math.ceil(box[2])), x1 + 1), w)
    y2 = min(max(int(math.ceil(box[3])), y1 + 1), h)
    return x1, y1, x2, y2


def grey_patch(image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
    """The box's pixels as a :data:`PATCH` grid of grey levels (float32), None when the box is off the image.

    Area averaging to a fixed small grid makes the measure independent of the box's size
    and averages away most of the camera's pixel noise.
    """
    x1, y1, x2, y2 = pixel_box(box, (image.shape[1], image.shape[0]))
    crop = image[y1:y2, x1:x2]
    if crop.size == 0:
        return None
    if crop.ndim == 3:
        crop = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_BGR2GRAY)
    return cv2.resize(crop.astype(np.float32), PATCH, interpolation=cv2.INTER_AREA)  # float: no rounding of cell means


def patch_change(now: np.ndarray, before: np.ndarray, seen: np.ndarray | None = None) -> float:
    """How much a patch changed, in grey levels: the 90th percentile of the absolute
    cell differences after removing their median.

    The median removes a change of the whole picture (auto exposure, a light switched
    on), which says nothing about life. The 90th percentile sees a change in a tenth of
    the box (an arm, a head, a page) but not one or two noisy cells.

    Args:
        now, before: Grey patches of one place at two times.
        seen: Cells to compare (False where someone stood in front); None: all.

    Returns:
        The change in grey levels; NaN when fewer than :data:`MIN_SEEN_CELLS` of the
        cells are left to compare (the place was mostly hidden: no evidence either way).
    """
    diff = now - before
    if seen is not None:
        if seen.mean() < MIN_SEEN_CELLS:
            return math.nan
        diff = diff[seen]
    diff = diff - np.median(diff)
    diff = np.abs(diff).ravel()
    k = int(0.9 * (diff.size - 1))
    return float(np.partition(diff, k)[k])


def cells_in_front(box: np.ndarray, others: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Which cells of ``box``'s :data:`PATCH` grid someone in front of it covers, even in part.

    On a camera looking down at a floor, the box whose bottom edge is lower in the
    picture stands nearer the camera: where it overlaps, its pixels are the ones seen.
    Any overlap hides a cell, since a cell half covered by a passer-by changes by half
    their contrast, which is life enough for the 90th percentile of :func:`patch_change`.

    Args:
        box: The box whose grid is meant (x1, y1, x2, y2), cut to the image as
            :func:`grey_patch` cuts it.
        others: Other tracked boxes, (N, 4); those ending higher than ``box`` are behind it.
        size: The image's (width, height).

    Returns:
        A (rows, columns) bool grid, the shape of :func:`grey_patch`'s patch; True: hidden.
    """
    cols, rows = PATCH
    x1, y1, x2, y2 = pixel_box(box, size)
    front = others[others[:, 3] > box[3]]
    if not len(front):
        return np.zeros((rows, cols), dtype=bool)
    xs = x1 + np.arange(cols + 1) * (x2 - x1) / cols  # cell edges
    ys = y1 + np.arange(rows + 1) * (y2 - y1) / rows
    in_x = (xs[None, :-1] < front[:, 2:3]) & (xs[None, 1:] > front[:, 0:1])  # (N, cols)
    in_y = (ys[None, :-1] < front[:, 3:4]) & (ys[None, 1:] > front[:, 1:2])  # (N, rows)
    return (in_y[:, :, None] & in_x[:, None, :]).any(axis=0)


@dataclass(slots=True)
class _Look:
    """One look at a track's box: when, where, and its grey patch."""

    t: float
    box: np.ndarray
    patch: np.ndarray
    hidden: np.ndarray  # cells someone in front covered at this look


@dataclass(slots=True)
class _Looks:
    """A track's recent looks, for :class:`AppearanceChange`."""

    last_seen: float
    looks: deque[_Look] = field(default_factory=deque)


class AppearanceChange:
    """Node: how much the pixels inside each track's box changed, into ``detections.data["appearance_change"]``.

    Every :data:`LOOK_SECONDS` (0.5 s) of the frame clock a track's box is looked at:
    the grey patch of the current frame *at the box of an earlier look* is compared
    with that earlier look's patch, for the look 0.5 s before and for the newest look
    at least ``change_seconds`` before. Comparing the same place at two times, not
    the box of each time, keeps the detector's box jitter out: a rack's box may jump
    a few pixels, its pixels do not change. The larger of the two changes is the
    frame's value for that box; frames without a comparison get NaN.

    The short comparison sees quick movement (hands at a till, a walker); the long
    one sees a person who stands still but drifts (weight shifts, a turned head, a
    page turned), which over half a second is lost in the camera's noise.

    A person who walks in front of a rack or a mannequin changes the pixels in its box,
    and that is their life, not its own. So cells covered by another tracked box whose
    bottom is lower in the picture (nearer the camera), now or at the earlier look, are
    left out of a comparison (:func:`cells_in_front`), and a box mostly hidden gets no
    value at all: a look that saw little says nothing either way, so it neither adds to
    nor breaks a track's run of changed looks. Without this, a mannequin in
    caviar-shop-front was trusted for the 2.8 s a shopper took to walk past it at 5 looks
    a second, and raised a false unattended alert. Every tracked box hides what is behind
    it, trusted or not (this node runs before the filter knows), so a rack detected in
    front of a cashier leaves her judged on the rest of her box, or by walking.

    Per frame this costs at most three small crops per track that is due a look
    (0.18 ms a frame for 11 overlapping tracks at 320x240, the in-front test included,
    against 0.07 ms for the old box test).

    Args:
        change_seconds: The longer comparison's time span.
        forget_seconds: Tracks unseen this long are forgotten, so memory stays flat live.

    Raises:
        ConfigError: ``change_seconds`` not positive.
    """

    needs_video = True  # works on pixels: its values are what a track cache must keep

    def __init__(self, change_seconds: float = 2.0, forget_seconds: float = 300.0) -> None:
        if not change_seconds > 0:
            raise ConfigError(f"filters: need change_seconds > 0, got {change_seconds}")
        self.change_seconds = float(change_seconds)
        self.forget_seconds = forget_seconds
        self._tracks: dict[int, _Looks] = {}
        self._video: str | None = None

    def process(self, frame: Frame) -> Frame:
        """Set ``detections.data["appearance_change"]`` (NaN where no comparison was made)."""
        det = frame.detections
        det.data[CHANGE] = self.measure(frame.video, frame.timestamp, frame.image, det)
        return frame

    def measure(self, video: str, t: float, image: np.ndarray, det: sv.Detections,
                skip: Sequence[bool] | None = None) -> np.ndarray:
        """The change for each box of ``det`` on this frame (NaN: none measured).

        Args:
            video: Video (camera) name; state restarts when it changes.
            t: Frame time, seconds.
            image: The frame's BGR pixels.
            det: Tracked boxes (without ``tracker_id`` nothing is measured).
            skip: Boxes not to look at (their tracks are trusted for good), as a mask.
        """
        if video != self._video:
            self._video = video
            self._tracks.clear()
        out = np.full(len(det), np.nan, dtype=np.float32)
        if det.tracker_id is None or not has_pixels(image):
            return out
        boxes = np.asarray(det.xyxy, dtype=np.float32)
        for i, tid in enumerate(det.tracker_id.tolist()):
            track = self._tracks.get(tid)
            if track is None:
                track = self._tracks[tid] = _Looks(last_seen=t)
            track.last_seen = t
            if skip is not None and skip[i]:
                continue
            out[i] = self._look(track, t, image, boxes, i)
        for tid in [tid for tid, tr in self._tracks.items() if t - tr.last_seen > self.forget_seconds]:
            del self._tracks[tid]
        return out

    def _look(self, track: _Looks, t: float, image: np.ndarray, boxes: np.ndarray, i: int) -> float:
        """Look at box ``i`` of ``boxes`` if its track is due: the change since its earlier looks (NaN: none)."""
        looks = track.looks
        if looks and t - looks[-1].t < LOOK_SECONDS - _EPS:
            return math.nan
        box, others = boxes[i], np.delete(boxes, i, axis=0)
        size = (image.shape[1], image.shape[0])
        refs = [looks[-1]] if looks else []
        old = next((look for look in reversed(looks) if t - look.t >= self.change_seconds - _EPS), None)
        if old is not None and old is not looks[-1]:
            refs.append(old)
        changes = []
        for ref in refs:
            now = grey_patch(image, ref.box)
            if now is not None:
                hidden = ref.hidden | cells_in_front(ref.box, others, size)
                changes.append(patch_change(now, ref.patch, ~hidden))
        patch = grey_patch(image, box)
        if patch is not None:
            looks.append(_Look(t, box.copy(), patch, cells_in_front(box, others, size)))
        while looks and t - looks[0].t > self.change_seconds + 2 * LOOK_SECONDS:
            looks.popleft()
        changes = [c for c in changes if not math.isnan(c)]
        return max(changes) if changes else math.nan


@dataclass(slots=True)
class _TrackEvidence:
    """What is known of one track so far."""

    first_box: np.ndarray
    last_seen: float
    scores: deque[float] = field(default_factory=deque)
    changed_looks: int = 0  # consecutive looks whose pixels changed by min_change
    walked: float = 0.0  # seconds its box spent walk_motion away from where it was first seen
    moved_frames: int = 0  # box test: frames an edge moved min_motion
    alive_at: float | None = None  # when it last showed life
    trusted: bool = False


class PersonFilter:
    """Drop impossible boxes, and mark each track trusted once it is believably a person.

    Args:
        zones: The camera's zones (:class:`Zones`, shared by its nodes, or name to polygon).
        masks: Names of zones where nothing counts (a poster, a screen, a mirror):
            boxes whose ground point lies in one are dropped.
        min_area, max_area: Box area limits as a fraction of the frame area (so the
            same setting works at any resolution).
        min_ratio, max_ratio: Width / height limits of a box.
        score_threshold: Median of the last ``score_window`` detection scores a track
            needs (Frigate's ``threshold``); 0 turns the score test off.
        score_window: How many recent scores the median is taken over, and how many a
            track needs before it can be trusted.
        min_change: Grey levels the pixels in a track's box must change by (see
            :func:`patch_change`) for a look to count as changed; 0 turns the pixel test
            off. Undisturbed racks, a post and a shelf edge in the shared clips never
            reached 7, even re-encoded at a recorder's low bitrate; at 4 (5 re-encoded)
            some of them showed life, and at 6 a rack of the re-encoded
            caviar-shop-front was trusted. Raise it for noisier cameras.
        change_seconds: Time span of the longer comparison (still people drift slowly).
        life_seconds: How long the pixels must keep changing, look after look (two a
            second), to count as life; longer than a passer-by takes to cross a rack.
        walk_motion: How far (fraction of the box height) the box's centre must move
            from where the track was first seen to count as a walk; 0 turns it off.
        min_motion, motion_frames: The test of earlier versions, an edge of the box
            moving ``min_motion`` of its height on ``motion_frames`` frames; it stands in
            for the pixel test where that cannot run: ``min_change`` 0, or frames without
            pixels (a track-cache replay without ``appearance_change`` values). 0 turns
            it off.
        life_memory: Seconds that shown life counts for while the score is not yet good
            enough: a rack that someone lingered in front of once is not alive for ever,
            waiting for a good score. None: for ever (as in earlier versions).
        forget_seconds: Tracks unseen this long are forgotten, so memory stays flat live.
        frame_size: ``[width, height]`` the zones were drawn on (scaled to other sizes).

    Every test of life is off by default (as the score test is), so the arguments of
    earlier versions keep their meaning; the measured settings are the site config's
    ``filters`` section. With all of ``min_change``, ``walk_motion`` and ``min_motion``
    0 a track is trusted on its score alone.

    Raises:
        ConfigError: a limit out of range or a mask that names no zone.
    """

    def __init__(self, zones: Zones | Mapping[str, Sequence[Sequence[float]]] | None = None, masks: Sequence[str] = (),
                 min_area: float = 0.0, max_area: float = 1.0, min_ratio: float = 0.0, max_ratio: float | None = None,
                 score_threshold: float = 0.0, score_window: int = 10, min_change: float = 0.0,
                 change_seconds: float = 2.0, life_seconds: float = 2.0, walk_motion: float = 0.0,
                 min_motion: float = 0.0, motion_frames: int = 3, life_memory: float | None = None,
                 forget_seconds: float = 300.0, frame_size: Sequence[int] | None = None) -> None:
        if not 0.0 <= min_area <= max_area <= 1.0:
            raise ConfigError(f"filters: need 0 <= min_area <= max_area <= 1 (fractions of the frame), got "
                              f"{min_area}, {max_area}")
        if min_ratio < 0 or (max_ratio is not None and max_ratio < min_ratio):
            raise ConfigError(f"filters: need 0 <= min_ratio <= max_ratio, got {min_ratio}, {max_ratio}")
        if not 0.0 <= score_threshold <= 1.0 or score_window < 1:
            raise ConfigError(f"filters: need score_threshold in [0, 1] and score_window >= 1, got "
                              f"{score_threshold}, {score_window}")
        if min_change < 0 or life_seconds < 0 or walk_motion < 0:
            raise ConfigError(f"filters: need min_change >= 0, life_seconds >= 0 and walk_motion >= 0, got "
                              f"{min_change}, {life_seconds}, {walk_motion}")
        if min_motion < 0 or motion_frames < 1:
            raise ConfigError(f"filters: need min_motion >= 0 and motion_frames >= 1, got {min_motion}, {motion_frames}")
        if life_memory is not None and life_memory < 0:
            raise ConfigError(f"filters: need life_memory >= 0 (or null), got {life_memory}")
        self.zones = Zones.of(zones, frame_size)
        self.zones.require(masks, "filters.masks")
        self.masks = list(masks)
        self.min_area, self.max_area = min_area, max_area
        self.min_ratio, self.max_ratio = min_ratio, max_ratio if max_ratio is not None else float("inf")
        self.score_threshold, self.score_window = score_threshold, score_window
        self.min_change, self.life_seconds, self.walk_motion = min_change, life_seconds, walk_motion
        # looks come every LOOK_SECONDS, so this many changed looks in a row span life_seconds
        self.life_looks = max(1, math.ceil(life_seconds / LOOK_SECONDS - _EPS))
        self.min_motion, self.motion_frames = min_motion, motion_frames
        self.life_memory = life_memory
        self.forget_seconds = forget_seconds
        self.appearance = AppearanceChange(change_seconds, forget_seconds)  # used when no node measured before
        self._tracks: dict[int, _TrackEvidence] = {}
        self._video: str | None = None
        self._warned_no_pixels = False
        self.dropped = 0  # boxes dropped by masks, area or ratio (status)

    def process(self, frame: Frame) -> Frame:
        """Drop impossible boxes; set ``detections.data["trusted"]``."""
        self.zones.check_inside(frame.size)  # every frame: a live camera may come back at another size
        if frame.video != self._video:
            self._video = frame.video
            self._tracks.clear()
        det = frame.detections
        keep = self._possible(det, frame.size)
        if not keep.all():
            self.dropped += int((~keep).sum())
            det = det[keep]
        trusted = np.zeros(len(det), dtype=bool)
        if det.tracker_id is not None:
            changes = self._changes(frame, det)
            scores = det.confidence if det.confidence is not None else np.ones(len(det))
            for i, (tid, box, score) in enumerate(zip(det.tracker_id.tolist(), det.xyxy, scores.tolist())):
                trusted[i] = self._observe(tid, np.asarray(box, dtype=np.float32), score, frame.timestamp,
                                           None if changes is None else float(changes[i]))
        det.data["trusted"] = trusted
        frame.detections = det
        self._forget(frame.timestamp)
        return frame

    def _changes(self, frame: Frame, det: sv.Detections) -> np.ndarray | None:
        """This frame's pixel changes per box: an upstream :class:`AppearanceChange`'s, else
        measured here; None when the pixel test is off or cannot run (the box test applies)."""
        if self.min_change == 0:
            return None
        given = det.data.get(CHANGE)
        if given is not None:
            return np.asarray(given, dtype=np.float64)
        if not has_pixels(frame.image):
            if not self._warned_no_pixels:
                self._warned_no_pixels = True
                fallback = (f"the box test (min_motion {self.min_motion} on {self.motion_frames} frames)"
                            if self.min_motion > 0 else "nothing (score and walking alone)")
                log.warning("filters: frames of %s carry no pixels and no %s values (a track-cache replay?): life "
                            "is judged by %s, so trust can differ from a run that saw the video",
                            frame.video, CHANGE, fallback)
            return None
        known = [self._tracks.get(tid) for tid in det.tracker_id.tolist()]
        skip = [tr is not None and tr.trusted for tr in known]  # trusted for good: no more looks
        return self.appearance.measure(frame.video, frame.timestamp, frame.image, det, skip)

    def _possible(self, det: sv.Detections, size: tuple[int, int]) -> np.ndarray:
        """Boxes that may be a person here: outside masks, within area and ratio limits."""
        if len(det) == 0:
            return np.ones(0, dtype=bool)
        w = det.xyxy[:, 2] - det.xyxy[:, 0]
        h = np.maximum(det.xyxy[:, 3] - det.xyxy[:, 1], 1e-6)
        area = w * h / float(size[0] * size[1])
        ratio = w / h
        keep = (area >= self.min_area) & (area <= self.max_area) & (ratio >= self.min_ratio) & (ratio <= self.max_ratio)
        for name in self.masks:
            keep &= ~self.zones.contains(name, det)
        return keep

    def _observe(self, tid: int, box: np.ndarray, score: float, t: float, change: float | None) -> bool:
        """Add one sighting of track ``tid``; whether it is trusted now.

        Args:
            change: This frame's pixel change for the box (NaN: no look on this frame),
                or None when the pixel test is off or the frame has no pixels.
        """
        track = self._tracks.get(tid)
        if track is None:
            track = self._tracks[tid] = _TrackEvidence(first_box=box.copy(), last_seen=t,
                                                        scores=deque(maxlen=self.score_window))
        previous, track.last_seen = track.last_seen, t
        if track.trusted:
            return True
        track.scores.append(score)
        if self._shows_life(track, box, t - previous, change):
            track.alive_at = t
        alive = track.alive_at is not None and (self.life_memory is None or t - track.alive_at <= self.life_memory)
        scored = len(track.scores) >= self.score_window and float(np.median(track.scores)) >= self.score_threshold
        track.trusted = scored and (alive or not self._life_test(change))
        return track.trusted

    def _life_test(self, change: float | None) -> bool:
        """Whether a track must show life on this frame (False: trusted on its score alone)."""
        return self.walk_motion > 0 or (self.min_motion > 0 if change is None else True)

    def _shows_life(self, track: _TrackEvidence, box: np.ndarray, dt: float, change: float | None) -> bool:
        first = track.first_box
        height = max(float(first[3] - first[1]), 1.0)
        if self.walk_motion > 0:
            centre = math.hypot((box[0] + box[2] - first[0] - first[2]) / 2, (box[1] + box[3] - first[1] - first[3]) / 2)
            if centre >= self.walk_motion * height:
                track.walked += dt
                if track.walked >= WALK_HOLD_SECONDS - _EPS:
                    return True
        if change is None:  # no pixel test here: the box test of earlier versions
            if self.min_motion > 0 and np.abs(box - first).max() >= self.min_motion * height:
                track.moved_frames += 1
            return self.min_motion > 0 and track.moved_frames >= self.motion_frames
        if not math.isnan(change):
            track.changed_looks = track.changed_looks + 1 if change >= self.min_change else 0
            return track.changed_looks >= self.life_looks
        return False

    def _forget(self, now: float) -> None:
        for tid in [tid for tid, tr in self._tracks.items() if now - tr.last_seen > self.forget_seconds]:
            del self._tracks[tid]

    def status(self) -> dict[str, float]:
        """Tracks not (yet) trusted and boxes dropped, for the live status line."""
        return {"untrusted_tracks": sum(not tr.trusted for tr in self._tracks.values()), "boxes_dropped": self.dropped}
