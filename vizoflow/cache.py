"""Track cache: detection + tracking results of a video, so rules can be re-run without decoding.

Detection and tracking are 99% of a run's cost; rules, metrics and evaluation are
cheap. An analyst choosing thresholds re-runs the rules many times on the same
video, so the tracked boxes of every processed frame are kept as Parquet, keyed by
the video's *content* (SHA-256, so a renamed copy hits and an edited file misses)
and by the detector, tracker and stride settings (a change to any invalidates it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import supervision as sv

from vizoflow.frame import Frame
from vizoflow.nodes.filters import CHANGE
from vizoflow.nodes.sinks import track_columns
from vizoflow.nodes.track import EMBEDDING
from vizoflow.video import probe

log = logging.getLogger(__name__)

CACHE_VERSION = 3  # bump when the stored layout or the meaning of a column changes
ANALYSED = "analysed"  # column: whether the detector looked at the frame (vizoflow.nodes.gate)
IGNORED_KEYS = {"cache_dir", "device"}  # detector/tracker settings that do not change results


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _strip(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _strip(v) for k, v in sorted(value.items()) if k not in IGNORED_KEYS}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _precise(settings: Mapping[str, Any]) -> Mapping[str, Any]:
    """``precision: auto`` means this CPU's default, which differs between CPUs: key by what it means here."""
    if settings.get("precision") != "auto":
        return settings
    from vizoflow.inference import cpu_facts

    return {**settings, "precision": f"auto:{cpu_facts()['openvino_default_precision']}"}


def cache_key(video_digest: str, detector: Mapping[str, Any], tracker: Mapping[str, Any], stride: int,
              recorded: Mapping[str, Any] | None = None) -> str:
    """Key of one video under one detector/tracker/stride setting (and the settings of any
    other node whose values are recorded with the tracks, ``recorded``: name -> its config)."""
    settings = json.dumps({"v": CACHE_VERSION, "detector": _strip(_precise(detector)), "tracker": _strip(_precise(tracker)),
                           "stride": stride, **({"recorded": _strip(recorded)} if recorded else {})},
                          sort_keys=True, default=str)
    return hashlib.sha256(f"{video_digest}:{settings}".encode()).hexdigest()[:24]


@dataclass(frozen=True)
class CacheEntry:
    """One cached video: every processed frame, with its tracked boxes (none is a row with null track)."""

    key: str
    table: Path
    meta: dict[str, Any]


class TrackCache:
    """A folder of ``<key>.parquet`` + ``<key>.json``; written atomically, JSON last (it marks complete).

    Args:
        directory: Cache folder (created on first write).
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def get(self, key: str, frames: int | None = None) -> CacheEntry | None:
        """The entry, or None on a miss (also when half-written, unreadable or not whole).

        Args:
            key: Cache key (:func:`cache_key`).
            frames: Frames a whole run of the video yields (:func:`video_frames`). An
                entry holding fewer is part of a video (left by a stopped run of an
                older vizoflow): replaying it would silently drop the rest, so it is
                refused and the video processed again.
        """
        table, meta = self.directory / f"{key}.parquet", self.directory / f"{key}.json"
        try:
            entry = CacheEntry(key, table, json.loads(meta.read_text())) if table.exists() else None
        except (OSError, ValueError) as exc:
            if meta.exists():
                log.warning("track cache entry %s unreadable (%s): recomputing", key, exc)
            return None
        if entry is not None and frames is not None and int(entry.meta.get("frames", 0)) < frames:
            log.warning("track cache entry %s holds %s of the %d frames of %s: recomputing", key,
                        entry.meta.get("frames"), frames, entry.meta.get("video"))
            return None
        return entry

    def put(self, key: str, frames: pl.DataFrame, meta: dict[str, Any]) -> CacheEntry:
        """Store one video's frames table and metadata."""
        self.directory.mkdir(parents=True, exist_ok=True)
        table, info = self.directory / f"{key}.parquet", self.directory / f"{key}.json"
        tmp = table.with_name(f".{key}.{os.getpid()}.parquet")
        frames.write_parquet(tmp)
        os.replace(tmp, table)
        tmp = info.with_name(f".{key}.{os.getpid()}.json")
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, info)
        return CacheEntry(key, table, meta)


def video_frames(path: str | Path, stride: int = 1) -> int | None:
    """Frames a whole run of ``path`` yields at ``stride``, from the container (None: it does not tell).

    The decoder raises when a file holds fewer frames than its container says, so a
    run that reached the end has seen at least this many.
    """
    frames = probe(Path(path)).frames
    return -(-frames // stride) if frames else None


class TrackRecorder:
    """Node after the tracker: collects every frame's tracked boxes, stores them in the cache at the end.

    A frame without tracks is kept as a row with null ``track_id``, because rules
    need every frame's time (a gap is not the same as nobody there); a frame the detect
    gate skipped is such a row too, marked not analysed, so a replay skips it as the
    live run did. An entry holds a
    whole video or nothing: it is stored only when the runtime reports the end of the
    stream (``end_of_stream()``, never after a stop or an error) and every frame the
    container announces was recorded.

    Args:
        cache: Where to store.
        key: Cache key of the (single) video this run processes.
        meta: Metadata stored with it (video path, size, epoch are added from the frames).
        frames: Frames a whole run yields (:func:`video_frames`); None when unknown.
    """

    every_frame = True  # a whole video is every frame of it

    def __init__(self, cache: TrackCache, key: str, meta: dict[str, Any], frames: int | None = None) -> None:
        self.cache, self.key, self.meta = cache, key, dict(meta)
        self.frames = frames
        self._cols: dict[str, list] = {c: [] for c in ("frame", "timestamp", "track_id", "x1", "y1", "x2", "y2",
                                                        "confidence", EMBEDDING, CHANGE, ANALYSED)}
        self._complete = False
        self._last: Frame | None = None

    def process(self, frame: Frame) -> Frame:
        """Record this frame's tracks, or one row for a frame without (none, or skipped by the gate)."""
        self._last = frame
        det = frame.detections
        if len(det) and frame.analysed:  # missing confidence replays as 1.0, what the rules assume for it
            rows = track_columns(frame, missing_confidence=1.0)
            features = det.data.get(EMBEDDING)
            rows[EMBEDDING] = [f.tolist() for f in features] if features is not None else [None] * len(det)
            change = det.data.get(CHANGE)
            rows[CHANGE] = [None if np.isnan(c) else float(c) for c in change] if change is not None else [None] * len(det)
        else:
            rows = {name: [None] for name in self._cols} | {"frame": [frame.index], "timestamp": [frame.timestamp]}
        rows[ANALYSED] = [frame.analysed] * len(rows["frame"])
        for name, values in rows.items():
            self._cols[name] += values
        return frame

    def end_of_stream(self) -> None:
        """The source yielded its last frame: the recording may be complete (``close`` checks the count).

        Not ``finish()``: the runtime calls that after a stop or an error too, to end
        open events, and a recording cut there is part of a video.
        """
        self._complete = True

    def close(self) -> None:
        """Store the recording, unless the run stopped before the end of the video."""
        recorded = len(set(self._cols["frame"]))
        if not self._complete or self._last is None:
            log.info("track cache not written for %s: the run stopped after %d frames, before the end",
                     self.meta.get("video"), recorded)
            return
        if self.frames is not None and recorded < self.frames:
            log.warning("track cache not written for %s: %d of its %d frames recorded", self.meta.get("video"),
                        recorded, self.frames)
            return
        table = pl.DataFrame(self._cols, schema={"frame": pl.Int64, "timestamp": pl.Float64, "track_id": pl.Int64,
                                                 "x1": pl.Float32, "y1": pl.Float32, "x2": pl.Float32,
                                                 "y2": pl.Float32, "confidence": pl.Float32,
                                                 EMBEDDING: pl.List(pl.Float32), CHANGE: pl.Float32,
                                                 ANALYSED: pl.Boolean})
        width, height = self._last.size
        self.cache.put(self.key, table, {**self.meta, "name": self._last.video, "width": width, "height": height,
                                         "epoch": self._last.epoch, "frames": recorded})


class CachedSource:
    """Frames rebuilt from a cache entry: timestamps and tracked boxes, no pixels.

    ``frame.image`` is a blank, read-only placeholder of the video's size, so zone
    checks work and any node that would need real pixels fails loudly instead of
    drawing on nothing (the batch runner leaves such nodes out).
    """

    def __init__(self, entry: CacheEntry) -> None:
        self.entry = entry
        self.total_frames = int(entry.meta["frames"])

    def __iter__(self) -> Iterator[Frame]:
        meta = self.entry.meta
        blank = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (meta["height"], meta["width"], 3))
        table = pl.read_parquet(self.entry.table)  # rows are grouped by frame, in frame order
        frames = table["frame"].to_numpy()
        times = table["timestamp"].to_numpy()
        ids = table["track_id"].fill_null(-1).to_numpy()
        boxes = table.select("x1", "y1", "x2", "y2").to_numpy().astype(np.float32)
        conf = table["confidence"].fill_null(0.0).to_numpy().astype(np.float32)
        features = table[EMBEDDING] if EMBEDDING in table.columns and table[EMBEDDING].null_count() < len(table) else None
        change = table[CHANGE].fill_null(float("nan")).to_numpy().astype(np.float32) if CHANGE in table.columns else None
        analysed = table[ANALYSED].to_numpy()
        starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]])
        for start, end in zip(starts, np.r_[starts[1:], len(frames)]):
            keep = slice(start, end) if ids[start] >= 0 else slice(start, start)  # a null row: no tracks
            det = sv.Detections(xyxy=boxes[keep], confidence=conf[keep], class_id=np.zeros(len(ids[keep]), dtype=int),
                                tracker_id=ids[keep].astype(int))
            if features is not None and len(det):  # the tracker's appearance features, for the identity layer
                det.data[EMBEDDING] = np.stack(features[keep].to_list()).astype(np.float32)
            if change is not None:  # how much each box's pixels changed, for the person filter
                det.data[CHANGE] = change[keep]
            yield Frame(video=meta["name"], index=int(frames[start]), timestamp=float(times[start]), image=blank,
                        detections=det, epoch=float(meta["epoch"]), analysed=bool(analysed[start]))

    def close(self) -> None:
        """Nothing to release."""
