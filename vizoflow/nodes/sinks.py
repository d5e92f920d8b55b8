"""Sinks that persist what the pipeline saw: the tracks table, the camera's latest picture."""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vizoflow.frame import Frame
from vizoflow.memory import release_arrow_memory

log = logging.getLogger(__name__)

TRACK_ID = "track_id"  # detections.data key of the tracker's own id (set by the identity layer)
# Longest a tracked box waits in memory for its row group. Four live cameras make about
# 30 rows a second: 50,000 rows took half an hour to fill, 15 MB of Python objects held
# and let go at once; five minutes hold under 3 MB and add 12 row groups an hour.
FLUSH_SECONDS = 300.0
# Longest time a table's rows sit in a file without a footer (unreadable if the run is
# killed): after it the part is closed and a new one begun.
PART_SECONDS = 3600.0

TRACKS_SCHEMA = pa.schema([
    ("camera", pa.string()),
    ("video", pa.string()),
    ("frame", pa.int64()),
    ("timestamp", pa.float64()),
    ("track_id", pa.int64()),
    ("person_id", pa.int64()),
    ("x1", pa.float32()),
    ("y1", pa.float32()),
    ("x2", pa.float32()),
    ("y2", pa.float32()),
    ("confidence", pa.float32()),
    ("role", pa.string()),
    ("trusted", pa.bool_()),
])


class ParquetTableWriter:
    """Append rows to a Parquet file in row groups; publish it atomically on close.

    Rows are buffered up to ``row_group`` rows, or for ``flush_seconds`` when that is
    set, and written as one row group, so memory stays flat on endless live runs.

    A Parquet file can be read only once its footer is written, at its close. So the
    rows go into parts: the open one is ``<name>.partial``; every ``part_seconds`` it is
    closed and moved into ``<name>.parts/`` (``<stem>-00001.parquet``, ...), where it can
    be read at once. A run killed outright (power cut, SIGKILL, out of memory) loses only
    the open part; ``pl.scan_parquet("<name>.parts/*.parquet")`` reads the rest. On
    :meth:`close` the parts become ``<name>`` again, one file, and their folder goes.

    A run into a folder that already holds the table (a service restarted into its fixed
    ``output_dir``) sets the earlier run's aside first, as ``<stem>_<when it was last
    written, UTC>.parquet``, and the parts of a killed run joined into one such file: each
    run's table stays its own (frames and timestamps count from each run's start), and
    none is overwritten.

    Row groups cost memory too: the writer keeps each one's description (about 11 KB for
    the tracks table's 13 columns) until its part closes. So a time bound is for fast
    tables only, and a long one.

    Args:
        path: The table's file.
        schema: Its columns.
        row_group: Most rows in one row group.
        flush_seconds: Longest time (monotonic clock) a row waits in memory; None: no limit.
        part_seconds: Longest time the open part stays open; None: one part, published at close.
        clock: The clock (tests give their own).
    """

    def __init__(self, path: str | os.PathLike[str], schema: pa.Schema, row_group: int = 50_000,
                 flush_seconds: float | None = None, part_seconds: float | None = PART_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.schema = schema
        self.parts = self.path.with_name(self.path.name + ".parts")
        self._partial = self.path.with_name(self.path.name + ".partial")
        self._columns: dict[str, list[object]] = {name: [] for name in schema.names}
        self._buffered = 0
        self._row_group = row_group
        self._flush_seconds, self._part_seconds = flush_seconds, part_seconds
        self._clock = clock
        self._oldest = 0.0  # when the first buffered row came
        self._part_rows = 0  # rows in the open part
        self._writer: pq.ParquetWriter | None = None
        self._opened = 0.0  # when the open part was opened
        self._set_aside_earlier()
        self._open_part()
        self.rows = 0

    def extend(self, columns: dict[str, object], n: int) -> None:
        """Append ``n`` rows given column-wise (lists or arrays of length ``n``)."""
        if n:
            if not self._buffered and self._flush_seconds is not None:
                self._oldest = self._clock()
            for name in self.schema.names:
                self._columns[name].extend(columns[name])  # type: ignore[arg-type]
            self._buffered += n
            self.rows += n
        if self._buffered >= self._row_group:
            self._flush()
        self.tick()

    def tick(self) -> None:
        """Write the row group and close the part that are due, without rows to add.

        For every frame: a quiet camera may add no rows for hours, and its last rows must
        not wait that long in memory or in a part without a footer.
        """
        now = self._clock()
        if self._buffered and self._flush_seconds is not None and now - self._oldest >= self._flush_seconds:
            self._flush()
        if self._part_seconds is not None and now - self._opened >= self._part_seconds:
            self._flush()
            if self._part_rows:
                self._close_part()
                self._open_part()

    def _flush(self) -> None:
        if self._buffered:
            assert self._writer is not None
            self._writer.write_table(pa.table(self._columns, schema=self.schema))
            self._columns = {name: [] for name in self.schema.names}
            self._part_rows += self._buffered
            self._buffered = 0
            release_arrow_memory()  # the row group's buffers, freed on this thread

    def _open_part(self) -> None:
        self._writer = pq.ParquetWriter(self._partial, self.schema)
        self._opened, self._part_rows = self._clock(), 0

    def _close_part(self) -> None:
        """Close the open part and move it into the parts folder, where it can be read."""
        assert self._writer is not None
        self._writer.close()
        self._writer = None
        release_arrow_memory()  # the part's column writers, freed on this thread
        self.parts.mkdir(exist_ok=True)
        numbers = [int(p.stem.rpartition("-")[2]) for p in self._finished_parts()]
        os.replace(self._partial, self.parts / f"{self.path.stem}-{max(numbers, default=0) + 1:05d}.parquet")

    def _finished_parts(self) -> list[Path]:
        """The closed parts, in order."""
        if not self.parts.is_dir():
            return []
        return sorted(p for p in self.parts.glob(f"{self.path.stem}-*.parquet") if p.stem.rpartition("-")[2].isdigit())

    def _set_aside_earlier(self) -> None:
        """Keep an earlier run's table, and a killed run's parts as one table, under names of their own."""
        self._set_aside(self.path)  # a run that ended
        if parts := self._finished_parts():  # a run that was killed
            last_written = parts[-1].stat().st_mtime
            self._join_parts()
            self._set_aside(self.path, last_written)

    def _set_aside(self, table: Path, last_written: float | None = None) -> None:
        if not table.exists():
            return
        when = table.stat().st_mtime if last_written is None else last_written
        stamp = datetime.fromtimestamp(when, UTC).strftime("%Y%m%dT%H%M%SZ")
        names = (f"{table.stem}_{stamp}{'' if n == 1 else f'_{n}'}{table.suffix}" for n in itertools.count(1))
        aside = next(path for name in names if not (path := table.with_name(name)).exists())
        os.replace(table, aside)
        log.info("%s: an earlier run's table is kept as %s", table, aside.name)

    def close(self) -> Path:
        """Write the remaining rows and publish the file."""
        if self._writer is None:
            return self.path
        self._flush()
        if not self._finished_parts():
            self._writer.close()
            self._writer = None
            os.replace(self._partial, self.path)
        else:
            self._close_part()  # the last part, empty or not, joins the others
            self._join_parts()
        return self.path

    def _join_parts(self) -> None:
        """The closed parts as one file (row groups of up to ``row_group`` rows), then the parts go.

        The parts are deleted only once the whole file is in place: a run killed while
        joining keeps them.
        """
        parts = self._finished_parts()
        with pq.ParquetWriter(self._partial, self.schema) as out:
            waiting: list[pa.Table] = []
            for part in parts:
                waiting.append(pq.read_table(part, schema=self.schema))
                if sum(t.num_rows for t in waiting) >= self._row_group:
                    out.write_table(pa.concat_tables(waiting), row_group_size=self._row_group)
                    waiting = []
            if waiting:
                out.write_table(pa.concat_tables(waiting), row_group_size=self._row_group)
        os.replace(self._partial, self.path)
        for part in parts:
            part.unlink()
        try:
            self.parts.rmdir()
        except OSError:  # something else was put there: leave it
            log.warning("%s: left in place, it holds files that are not parts of %s", self.parts, self.path.name)


def track_columns(frame: Frame, missing_confidence: float = float("nan")) -> dict[str, list]:
    """A frame's tracked boxes as columns ``frame, timestamp, track_id, x1, y1, x2, y2, confidence``.

    Shared by the tracks table and the track cache so both store boxes the same way.
    """
    det = frame.detections
    n = len(det)
    conf = det.confidence if det.confidence is not None else np.full(n, missing_confidence)
    return {
        "frame": [frame.index] * n,
        "timestamp": [frame.timestamp] * n,
        "track_id": det.tracker_id.tolist(),
        "x1": det.xyxy[:, 0].tolist(),
        "y1": det.xyxy[:, 1].tolist(),
        "x2": det.xyxy[:, 2].tolist(),
        "y2": det.xyxy[:, 3].tolist(),
        "confidence": conf.tolist(),
    }


class TracksSink:
    """Write every tracked box to ``tracks.parquet``.

    Columns: ``camera, video, frame, timestamp, track_id, person_id, x1, y1, x2, y2, confidence, role, trusted``;
    ``frame`` is the 0-based index in its video, boxes are in that video's pixels. ``track_id``
    is the tracker's id, ``person_id`` the person's (:mod:`vizoflow.nodes.identity`: one person
    through id switches); without the identity layer the two are equal. ``role`` (staff or
    customer) and ``trusted`` (the person filter's verdict) are what the rules saw on that
    frame, null when those nodes did not run.

    Args:
        path: Output file.
        camera: Camera name of a one-camera run; with several cameras each frame names its own.
    """

    def __init__(self, path: str, camera: str | None = None) -> None:
        self._table = ParquetTableWriter(path, TRACKS_SCHEMA, flush_seconds=FLUSH_SECONDS)
        self.camera = camera

    def process(self, frame: Frame) -> Frame:
        """Append this frame's tracked boxes."""
        det = frame.detections
        if det.tracker_id is None or len(det) == 0:
            self._table.tick()
            return frame
        n = len(det)
        camera = frame.camera or self.camera or frame.video
        columns = track_columns(frame)
        raw = det.data.get(TRACK_ID)  # after the identity layer tracker_id holds person ids
        columns["person_id"] = det.tracker_id.tolist()
        columns["track_id"] = raw.tolist() if raw is not None else det.tracker_id.tolist()
        for name in ("role", "trusted"):  # set by the roles node and the person filter, when they ran
            values = det.data.get(name)
            columns[name] = values.tolist() if values is not None else [None] * n
        self._table.extend({"camera": [camera] * n, "video": [frame.video] * n, **columns}, n)
        return frame

    def close(self) -> None:
        """Publish the table."""
        self._table.close()


class LatestFrame:
    """Keep the camera's newest picture as ``latest.jpg``, for the review page (cameras, set-up).

    The file is replaced at most every ``every_seconds`` of wall time (it is for people
    looking now, and a JPEG a few seconds old is as good as a fresh one), written beside
    it and renamed, so a reader never sees half a picture; and once more at close, so a
    finished run keeps its last picture. Only a reference to the newest image is held.

    Args:
        path: Output ``.jpg``.
        every_seconds: Shortest time between two writes.
        quality: JPEG quality (0-100).
    """

    needs_video = True  # a replay of the track cache has no pixels: its picture would be black

    def __init__(self, path: str, every_seconds: float = 5.0, quality: int = 85) -> None:
        self.path = Path(path)
        self.every_seconds = every_seconds
        self.quality = quality
        self._image: np.ndarray | None = None
        self._written = float("-inf")
        self._failed = False  # the last write failed (logged once per streak)

    def process(self, frame: Frame) -> Frame:
        """Remember the frame's image; write it when the last write is old enough."""
        self._image = frame.image
        if time.monotonic() - self._written >= self.every_seconds:
            self._write()
        return frame

    def _write(self) -> None:
        self._written = time.monotonic()
        ok, data = cv2.imencode(".jpg", self._image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            log.warning("could not encode the picture for %s", self.path)
            return
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data.tobytes())
            os.replace(tmp, self.path)
        except OSError as exc:  # a picture for people to look at never stops the analysis (disk full: evidence says so)
            if not self._failed:
                log.warning("could not write %s: %s", self.path, exc)
            self._failed = True
        else:
            self._failed = False

    def close(self) -> None:
        """Write the last picture seen."""
        if self._image is not None:
            self._write()
            self._image = None


def merge_tables(out: Path, folders: Mapping[str, Path], tables: Iterable[str], column: str) -> None:
    """``<folder>/<table>.parquet`` of every folder as one ``out/<table>.parquet``, its label in ``column``.

    Batch merges its videos (``video``) and a site its cameras (``camera``) this way; the
    label column comes first, tables with other columns are aligned, and each file is
    replaced at once (written beside it, then renamed).
    """
    import polars as pl

    for table in tables:
        parts = [pl.read_parquet(path).with_columns(pl.lit(label).alias(column))
                 for label, folder in folders.items() if (path := folder / f"{table}.parquet").exists()]
        if parts:
            tmp = out / f"{table}.parquet.tmp"
            pl.concat(parts, how="diagonal_relaxed").select(column, pl.exclude(column)).write_parquet(tmp)
            tmp.replace(out / f"{table}.parquet")
