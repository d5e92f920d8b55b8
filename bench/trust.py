"""Which tracks PersonFilter trusts on the shared clips: people (still ones too) versus racks and mannequins.

Detection (``YoloDetector``) runs once per clip and tracking (``DeepSortTracker``) once per
clip part and frame stride, both cached in ``/tmp/trust_cache`` (``--cache``), so replaying
filter settings takes seconds (replays decode the clip again: the filter looks at the pixels
inside the boxes). The first table sets the box-edge filter (PersonFilter with its pixel test
off) against the config's defaults (:data:`SETTINGS`); the second takes each test alone and
moves one setting at a time, for the margins (:data:`SWEEP`).

Which tracks are people (checked by eye on ``--sheets``, crops of every track):

* caviar-shop-front (``gt.txt``): a track is a person when it overlaps a ground-truth box
  (IoU >= 0.3) on at least 30% of its frames (:func:`vizoflow.mot.person_tracks`); every
  other track is an object: two clothes racks and a mannequin, some tracks partly on the
  shopper who walks past them;
* tud-campus (``gt.txt``): the same rule; tracks on no ground-truth box are people seated
  behind the building's window, whom ``gt.txt`` does not annotate: *other*;
* clips without ground truth: every track is a person except those whose median box matches
  (IoU >= 0.5) a fixture in :data:`FIXTURES` (a jacket on a rack, a shelf edge, a lane post).
  ucf-clothing-table also has a shopper in pink and a man in dark clothes at the back (people:
  they browse and move, checked on crops every 1.5 s).

    .venv/bin/python bench/trust.py                 # the tables (markdown); first run ~5 min on 2 cores
    .venv/bin/python bench/trust.py --no-sweep      # only the before/after table
    .venv/bin/python bench/trust.py --tracks        # and, per track, when each setting trusts it
    .venv/bin/python bench/trust.py --sheets /tmp/sheets   # crops of every track, to check labels by eye

Needs only the repository and ``../shared`` (footage and models).
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("YOLO_OFFLINE", "1")

import polars as pl
import supervision as sv
from common import FOOTAGE  # also puts the project on sys.path

from vizoflow.frame import Frame
from vizoflow.mot import person_tracks
from vizoflow.nodes.detect import YoloDetector
from vizoflow.nodes.filters import PersonFilter
from vizoflow.nodes.sources import VideoFileSource
from vizoflow.nodes.track import DeepSortTracker

CACHE_VERSION = 1
logging.getLogger("vizoflow").setLevel(logging.ERROR)  # "no creation_time tag" and no-pixel warnings: expected here

PERSON, OBJECT, OTHER = "person", "object", "other"


@dataclass(frozen=True)
class Clip:
    """A shared clip, the frame stride it is tracked at, and the part of it used (seconds)."""

    name: str
    stride: int = 1
    start: float = 0.0
    end: float | None = None  # None: to the end
    crf: int | None = None  # re-encoded at the strided rate with this x264 CRF and 1 s keyframes (None: as shared)

    @property
    def key(self) -> str:
        return f"{self.name}.{self.start:g}-{self.end}.s{self.stride}" + (f".crf{self.crf}" if self.crf else "")

    @property
    def short(self) -> str:
        return self.name + (f" 1/{self.stride}" if self.stride > 1 else "") + (f" crf{self.crf}" if self.crf else "")

    @property
    def label(self) -> str:
        part = f" {self.start:g}-{self.end:g} s" if self.start or self.end is not None else ""
        return self.name + part + (f", 1 frame in {self.stride}" if self.stride > 1 else "") + (
            f", re-encoded CRF {self.crf}" if self.crf else "")


# Low frame rates by tracking every n-th frame, as at the 7 fps checkout of the field report.
CLIPS = (
    Clip("caviar-shop-front"),
    Clip("tud-campus"),
    Clip("ucf-checkout"),
    Clip("ucf-checkout", stride=4),       # 30/4 = 7.5 fps
    Clip("ucf-clothing-table"),
    Clip("ucf-clothing-table", stride=3),  # 20/3 = 6.7 fps
    Clip("intel-one-by-one", end=60.0),
    Clip("intel-one-by-one", stride=3, end=60.0),  # 3.3 fps
    # Tracking starts while a man already stands at the table, reading, his back to the camera (no
    # walk-in to give him away): the field report's people who stand at a till from the start.
    Clip("intel-one-by-one", start=11.0, end=18.0),
    Clip("intel-one-by-one", start=27.0, end=43.0),
    Clip("intel-one-by-one", stride=2, start=27.0, end=43.0),  # 5 fps
    # What a low-bitrate 7 fps recorder stream adds: the strided frames encoded again with x264
    # (PyAV) at CRF 36, a keyframe every second, into the cache folder; detection and tracking run on it.
    Clip("caviar-shop-front", stride=4, crf=36),
    Clip("ucf-clothing-table", stride=3, crf=36),
    Clip("ucf-checkout", stride=4, crf=36),
)
DETECT_END = {"intel-one-by-one": 60.0}  # detection is cached for this much of a clip (None: all)

# Things tracked as people in clips without ground truth, found by eye on --sheets (see the module docstring).
FIXTURES: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "ucf-checkout": {"lane divider post": (307, 120, 320, 205)},
    "ucf-clothing-table": {"black jacket on a rack": (170, 1, 200, 63), "olive jacket on a hanger": (135, 26, 182, 106),
                           "dark edge of a shelf unit": (0, 1, 28, 138)},
}
UNSURE: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "ucf-checkout": {"register screen, maybe with a person behind it (0.3 s)": (282, 79, 311, 126)},
}

# Settings compared: name -> PersonFilter arguments; ``pixels=False``: the filter sees blank frames.
AFTER: dict[str, Any] = dict(score_threshold=0.45, score_window=10, min_change=8.0, change_seconds=2.0,
                             life_seconds=2.0, walk_motion=0.5, life_memory=10.0)
SETTINGS: dict[str, dict[str, Any]] = {
    "before: score, box edge moved 5% on 5 frames": dict(score_threshold=0.45, score_window=10, min_motion=0.05,
                                                         motion_frames=5),
    "after: score, pixels changed or walked": AFTER,
}
# The margins: each test alone, and the pixel test's settings one at a time.
SWEEP: dict[str, dict[str, Any]] = {
    "score alone": dict(AFTER, min_change=0.0, walk_motion=0.0),
    "life alone (pixels or walk)": dict(AFTER, score_threshold=0.0),
    **{f"life alone, min_change {v}": dict(AFTER, score_threshold=0.0, min_change=float(v)) for v in (6, 5, 4, 3)},
    "life alone, life_seconds 1.5": dict(AFTER, score_threshold=0.0, life_seconds=1.5),
    "life alone, no long comparison": dict(AFTER, score_threshold=0.0, change_seconds=0.5),
    "life alone, walk only": dict(AFTER, score_threshold=0.0, min_change=0.0),
    "after, min_change 6": dict(AFTER, min_change=6.0),
    "after, min_change 10": dict(AFTER, min_change=10.0),
    "after, life_seconds 1.5": dict(AFTER, life_seconds=1.5),
    "after, life_seconds 3": dict(AFTER, life_seconds=3.0),
    "after, life_memory 5": dict(AFTER, life_memory=5.0),
    "after, life remembered for ever": dict(AFTER, life_memory=None),
    # a batch re-run from the track cache has no pixels: the box test stands in
    "after, replayed without pixels": dict(AFTER, min_motion=0.05, motion_frames=5, pixels=False),
}


def frames(clip: Clip, cache: Path) -> Iterator[Frame]:
    """The clip's frames at its stride, from its start to its end (indices: the shared video's)."""
    # a re-encoded copy holds only every stride-th frame already: read all of it, scale its indices
    video, scale = (reencoded(clip, cache), clip.stride) if clip.crf else (FOOTAGE / clip.name / "video.mp4", 1)
    for frame in VideoFileSource(str(video), stride=clip.stride // scale):
        frame.index *= scale
        if clip.end is not None and frame.timestamp >= clip.end:
            break
        if frame.timestamp >= clip.start:
            yield frame


def reencoded(clip: Clip, cache: Path) -> Path:
    """The clip at its stride as a recorder would store it: x264 at ``clip.crf``, a keyframe every second."""
    import av

    path = cache / f"{clip.key}.mp4"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(FOOTAGE / clip.name / "video.mp4")) as src, av.open(str(path) + ".part.mp4", "w") as dst:
        rate = src.streams.video[0].average_rate / clip.stride
        stream = dst.add_stream("libx264", rate=rate)
        stream.width, stream.height = src.streams.video[0].width, src.streams.video[0].height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(clip.crf), "g": str(max(1, round(float(rate))))}
        for i, frame in enumerate(src.decode(video=0)):
            if i % clip.stride == 0:
                out = av.VideoFrame.from_ndarray(frame.to_ndarray(format="bgr24"), format="bgr24")
                dst.mux(stream.encode(out.reformat(format="yuv420p")))
        dst.mux(stream.encode())  # flush the encoder
    Path(str(path) + ".part.mp4").rename(path)
    return path


def _cached(path: Path, make: Callable[[], object]) -> object:
    if path.exists():
        with path.open("rb") as f:
            version, value = pickle.load(f)
        if version == CACHE_VERSION:
            return value
    value = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump((CACHE_VERSION, value), f)
    return value


def detections(clip: Clip, cache: Path) -> dict[int, sv.Detections]:
    """The detector's boxes on every frame of the clip (stride 1), by frame index."""
    def make() -> dict[int, sv.Detections]:
        detector = YoloDetector()
        whole = Clip(clip.name, clip.stride if clip.crf else 1, end=DETECT_END.get(clip.name), crf=clip.crf)
        return {frame.index: detector.process(frame).detections for frame in frames(whole, cache)}

    name = clip.name + (f".s{clip.stride}.crf{clip.crf}" if clip.crf else "")
    return _cached(cache / f"{name}.det.pkl", make)  # type: ignore[return-value]


def tracks(clip: Clip, cache: Path) -> dict[int, sv.Detections]:
    """Tracked boxes (``tracker_id`` set) on the clip's frames at its stride, by frame index."""
    def make() -> dict[int, sv.Detections]:
        found = detections(clip, cache)
        tracker = DeepSortTracker()
        out: dict[int, sv.Detections] = {}
        for frame in frames(clip, cache):
            frame.detections = found[frame.index]
            out[frame.index] = tracker.process(frame).detections
        return out

    return _cached(cache / f"{clip.key}.tracks.pkl", make)  # type: ignore[return-value]


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else 0.0


def truth(clip: Clip, tracked: dict[int, sv.Detections]) -> dict[int, str]:
    """Each track's kind: :data:`PERSON`, :data:`OBJECT` or :data:`OTHER` (see the module docstring)."""
    rows = [(index, int(tid), *map(float, box)) for index, det in tracked.items()
            for tid, box in zip(det.tracker_id.tolist(), det.xyxy)]
    table = pl.DataFrame(rows, schema=["frame", "track_id", "x1", "y1", "x2", "y2"], orient="row")
    gt = FOOTAGE / clip.name / "gt.txt"
    if gt.exists():
        people = person_tracks(table, gt)
        not_person = OBJECT if clip.name == "caviar-shop-front" else OTHER
        return {tid: PERSON if tid in people else not_person for tid in table["track_id"].unique().to_list()}
    kinds = {}
    for (tid,), group in table.group_by("track_id"):
        median = group.select("x1", "y1", "x2", "y2").median().row(0)
        kinds[tid] = next((kind for kind, boxes in ((OBJECT, FIXTURES), (OTHER, UNSURE))
                           if any(_iou(median, box) >= 0.5 for box in boxes.get(clip.name, {}).values())), PERSON)
    return kinds


@dataclass
class Seen:
    """One track in a replay: when it was first and last seen, and when each setting trusted it."""

    kind: str
    first: float
    last: float
    trusted_at: dict[str, float] = field(default_factory=dict)


def replay(clip: Clip, cache: Path, settings: dict[str, dict[str, Any]]) -> tuple[dict[int, Seen], float]:
    """Run every setting's PersonFilter over the clip's cached tracks; the tracks and the frame interval."""
    tracked = tracks(clip, cache)
    kinds = truth(clip, tracked)
    filters = {name: (PersonFilter(**{k: v for k, v in kwargs.items() if k != "pixels"}), kwargs.get("pixels", True))
               for name, kwargs in settings.items()}
    seen: dict[int, Seen] = {}
    times = []
    for frame in frames(clip, cache):
        times.append(frame.timestamp)
        det = tracked[frame.index]
        for tid in det.tracker_id.tolist():
            seen.setdefault(tid, Seen(kinds[tid], frame.timestamp, frame.timestamp)).last = frame.timestamp
        blank = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), frame.image.shape)  # a cache replay's placeholder
        for name, (node, pixels) in filters.items():
            copy = sv.Detections(xyxy=det.xyxy.copy(), confidence=det.confidence.copy(), class_id=det.class_id.copy(),
                                 tracker_id=det.tracker_id.copy())
            out = node.process(Frame(video=frame.video, index=frame.index, timestamp=frame.timestamp,
                                     image=frame.image if pixels else blank, detections=copy)).detections
            for tid, ok in zip(out.tracker_id.tolist(), out.data["trusted"].tolist()):
                if ok:
                    seen[tid].trusted_at.setdefault(name, frame.timestamp)
    return seen, float(np.median(np.diff(times))) if len(times) > 1 else 0.0


def people(seen: dict[int, Seen], dt: float, name: str) -> tuple[int, int, list[float]]:
    """People seen for at least 1 s and how many of them ``name`` trusted; every trusted person's delay (s)."""
    persons = [s for s in seen.values() if s.kind == PERSON]
    judged = [s for s in persons if s.last - s.first + dt >= 1.0]
    return (sum(name in s.trusted_at for s in judged), len(judged),
            [s.trusted_at[name] - s.first for s in persons if name in s.trusted_at])


def render(replays: list[tuple[Clip, dict[int, Seen], float]], names: list[str]) -> str:
    """The before/after table, a row per clip part and setting.

    Columns: people trusted / people tracks seen for at least 1 s; the share of all people's
    track-seconds from the moment each was trusted (late and never-trusted tracks both lower it);
    the median time from a track's first sighting to its trust; objects trusted / all.
    """
    lines = ["| clip | setting | people trusted | person-seconds after trust | median time to trust | objects trusted |",
             "|---|---|---:|---:|---:|---:|"]
    for clip, seen, dt in replays:
        persons = [s for s in seen.values() if s.kind == PERSON]
        objects = [s for s in seen.values() if s.kind == OBJECT]
        total = sum(s.last - s.first + dt for s in persons)
        for name in names:
            trusted, judged, delays = people(seen, dt, name)
            covered = sum(s.last + dt - s.trusted_at[name] for s in persons if name in s.trusted_at)
            share = f"{covered / total:.0%}" if total else "-"
            delay = f"{np.median(delays):.1f} s" if delays else "-"
            found = f"{sum(name in s.trusted_at for s in objects)} / {len(objects)}" if objects else "-"
            lines.append(f"| {clip.label} | {name.split(':')[0]} | {trusted} / {judged} | {share} | {delay} | "
                         f"{found} |")
    return "\n".join(lines)


def render_sweep(replays: list[tuple[Clip, dict[int, Seen], float]], names: list[str]) -> str:
    """Per setting, over all clips: objects trusted (which), people trusted, their median delay."""
    lines = ["| setting | objects trusted (all clips) | people trusted (seen >= 1 s) | median time to trust |",
             "|---|---|---:|---:|"]
    for name in names:
        objects, judged, trusted, delays = [], 0, 0, []
        for clip, seen, dt in replays:
            objects += [f"{clip.short} #{tid} at {s.trusted_at[name] - s.first:.1f} s" for tid, s in seen.items()
                        if s.kind == OBJECT and name in s.trusted_at]
            t, j, d = people(seen, dt, name)
            trusted, judged, delays = trusted + t, judged + j, delays + d
        shown = f"{len(objects)}: " + ", ".join(objects) if objects else "0"
        lines.append(f"| {name} | {shown} | {trusted} / {judged} | {np.median(delays):.1f} s |")
    return "\n".join(lines)


def render_tracks(clip: Clip, seen: dict[int, Seen], dt: float, names: list[str]) -> str:
    lines = [f"{clip.label}: seconds from first sighting to trust (- never), per setting: " + " | ".join(names)]
    for tid in sorted(seen):
        s = seen[tid]
        cells = [f"{s.trusted_at[n] - s.first:5.1f}" if n in s.trusted_at else "    -" for n in names]
        lines.append(f"  {tid:4d} {s.kind:6s} {s.first:6.1f} s + {s.last - s.first + dt:5.1f} s  " + " | ".join(cells))
    return "\n".join(lines)


def sheets(clip: Clip, cache: Path, out: Path, per_track: int = 6) -> Path:
    """One image per clip part: a row per track, ``per_track`` crops spread over its life, to check by eye.

    Each crop shows the box (green) with half its size around it, and is labelled with
    the track id and the time.
    """
    import cv2

    tracked = tracks(clip, cache)
    seen: dict[int, list[int]] = {}
    for index, det in tracked.items():
        for tid in det.tracker_id.tolist():
            seen.setdefault(int(tid), []).append(index)
    wanted = {tid: {idx[round(k * (len(idx) - 1) / max(per_track - 1, 1))] for k in range(per_track)}
              for tid, idx in seen.items()}
    cells: dict[int, list[np.ndarray]] = {}
    for frame in frames(clip, cache):
        det = tracked[frame.index]
        for tid, box in zip(det.tracker_id.tolist(), det.xyxy):
            if frame.index not in wanted[tid]:
                continue
            x1, y1, x2, y2 = box
            mx, my, (h, w) = (x2 - x1) / 2, (y2 - y1) / 2, frame.image.shape[:2]
            cx1, cy1, cx2, cy2 = int(max(0, x1 - mx)), int(max(0, y1 - my)), int(min(w, x2 + mx)), int(min(h, y2 + my))
            cell = frame.image[cy1:cy2, cx1:cx2].copy()
            cv2.rectangle(cell, (int(x1) - cx1, int(y1) - cy1), (int(x2) - cx1, int(y2) - cy1), (0, 255, 0), 1)
            cell = cv2.resize(cell, (int(160 * cell.shape[1] / max(cell.shape[0], 1)) or 1, 160))
            cell = cv2.copyMakeBorder(cell, 14, 0, 0, 4, cv2.BORDER_CONSTANT, value=(255, 255, 255))
            cv2.putText(cell, f"{tid} {frame.timestamp:.1f}s", (2, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
            cells.setdefault(tid, []).append(cell)
    rows = [np.hstack(cells[tid]) for tid in sorted(cells)]
    width = max(r.shape[1] for r in rows)
    sheet = np.vstack([cv2.copyMakeBorder(r, 0, 2, 0, width - r.shape[1], cv2.BORDER_CONSTANT, value=(128, 128, 128))
                       for r in rows])
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{clip.key}.png"
    cv2.imwrite(str(path), sheet)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/trust_cache"))
    parser.add_argument("--clips", nargs="*", help="clip names (default: all)")
    parser.add_argument("--tracks", action="store_true", help="also print, per track, when each setting trusts it")
    parser.add_argument("--no-sweep", action="store_true", help="only the before/after table")
    parser.add_argument("--sheets", type=Path, help="write a sheet of every track's crops per clip into this folder")
    args = parser.parse_args()
    clips = [c for c in CLIPS if not args.clips or c.name in args.clips]
    if args.sheets:
        for clip in clips:
            print(sheets(clip, args.cache, args.sheets))
        return
    settings = dict(SETTINGS) if args.no_sweep else {**SETTINGS, **SWEEP}
    replays = [(clip, *replay(clip, args.cache, settings)) for clip in clips]  # (clip, its tracks, frame interval)
    print(render(replays, list(SETTINGS)), render_sweep(replays, list(settings)), sep="\n\n")
    for clip, seen, dt in replays if args.tracks else []:
        print(f"\n{render_tracks(clip, seen, dt, list(settings))}")


if __name__ == "__main__":
    main()
