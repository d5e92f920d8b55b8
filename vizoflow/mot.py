"""Tracking quality against MOTChallenge ground truth (HOTA, MOTA, IDF1).

A thin adapter over ``trackers.eval`` (TrackEval-parity code from Roboflow): the
tracks table is written as a MOT file and scored against ``gt.txt``.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
import supervision as sv

from vizoflow.errors import ConfigError


@dataclass(frozen=True)
class TrackingScore:
    """The headline tracking metrics of one sequence, in percent (ID switches as a count)."""

    hota: float
    mota: float
    idf1: float
    id_switches: int

    def to_dict(self) -> dict[str, float | int]:
        """Plain dict for tables and JSON."""
        return asdict(self)


def write_mot(tracks: pl.DataFrame, path: Path) -> Path:
    """Write a tracks table (columns ``frame`` 0-based, ``track_id``, ``x1..y2``) as a MOT file.

    MOT frames are 1-based: frame 1 is the first decoded frame, as in ``gt.txt``.
    """
    rows = tracks.select(
        (pl.col("frame") + 1).alias("frame"), pl.col("track_id").alias("id"),
        pl.col("x1"), pl.col("y1"), (pl.col("x2") - pl.col("x1")).alias("w"),
        (pl.col("y2") - pl.col("y1")).alias("h"), pl.col("confidence").alias("conf"),
    ).with_columns(pl.lit(-1).alias("x"), pl.lit(-1).alias("y"), pl.lit(-1).alias("z")).sort("frame", "id")
    rows.write_csv(path, include_header=False)
    return path


def _first_columns(gt_path: Path, out: Path, frames: set[int] | None, n: int = 7) -> Path:
    """Copy ``frame,id,x,y,w,h,conf`` only, of the given 1-based frames (None: all).

    MOT15-style files (the shared clips) put ``-1`` in column 8, which
    ``trackers.eval`` reads as a MOT17 class id and filters out as "not a
    pedestrian"; every box in these files is a person, so the column is dropped.
    """
    rows = [line.split(",")[:n] for line in gt_path.read_text().splitlines() if line.strip()]
    lines = [",".join(row) for row in rows if frames is None or int(float(row[0])) in frames]
    out.write_text("\n".join(lines) + "\n")
    return out


def score_tracks(tracks: pl.DataFrame, gt_path: str | Path, iou: float = 0.5,
                 processed: set[int] | None = None) -> TrackingScore:
    """HOTA, MOTA, IDF1 and ID switches of ``tracks`` against a MOT ``gt.txt``.

    Args:
        tracks: Tracks table (``frame`` 0-based).
        gt_path: MOTChallenge ground truth.
        iou: Match threshold for MOTA and IDF1 (HOTA averages over thresholds).
        processed: 0-based frames the pipeline looked at (with a frame stride);
            ground truth on other frames is not scored. None: all frames.

    Raises:
        ConfigError: the ground-truth file does not exist.
    """
    gt_path = Path(gt_path)
    if not gt_path.is_file():
        raise ConfigError(f"ground truth not found: {gt_path}")
    from trackers.eval import evaluate_mot_sequence

    with tempfile.TemporaryDirectory() as tmp:
        frames = None if processed is None else {f + 1 for f in processed}
        result = evaluate_mot_sequence(_first_columns(gt_path, Path(tmp) / "gt.txt", frames),
                                       write_mot(tracks, Path(tmp) / "tracks.txt"),
                                       metrics=["CLEAR", "HOTA", "Identity"], threshold=iou)
    return TrackingScore(hota=100 * float(result.HOTA.HOTA), mota=100 * float(result.CLEAR.MOTA),
                         idf1=100 * float(result.Identity.IDF1), id_switches=int(result.CLEAR.IDSW))


def gt_boxes(gt_path: str | Path) -> dict[int, np.ndarray]:
    """Ground-truth boxes of a MOT ``gt.txt`` as ``{0-based frame: (N, 4) x1, y1, x2, y2}``.

    MOT frames are 1-based and boxes ``x, y, w, h``; the tracks table is 0-based ``xyxy``.
    """
    gt = np.loadtxt(gt_path, delimiter=",", ndmin=2)
    return {int(f) - 1: np.c_[g[:, 2], g[:, 3], g[:, 2] + g[:, 4], g[:, 3] + g[:, 5]]
            for f in np.unique(gt[:, 0]) for g in [gt[gt[:, 0] == f]]}


def person_tracks(tracks: pl.DataFrame, gt_path: str | Path, min_iou: float = 0.3, min_share: float = 0.3) -> set[int]:
    """Track ids that follow a ground-truth person: IoU >= ``min_iou`` with a ``gt.txt`` box on
    at least ``min_share`` of their frames.

    Event scoring by time alone cannot tell *who* an event is about (a rack tracked all
    clip long overlaps a passer-by's label in time); this tells events on people from
    events on things.
    """
    truth = gt_boxes(gt_path)
    hits: dict[int, list[bool]] = {}
    for frame, group in tracks.drop_nulls("track_id").group_by("frame"):
        boxes = group.select("x1", "y1", "x2", "y2").to_numpy()
        found = truth.get(int(frame[0]))
        best = sv.box_iou_batch(boxes, found).max(axis=1) if found is not None else np.zeros(len(boxes))
        for tid, score in zip(group["track_id"].to_list(), best.tolist()):
            hits.setdefault(int(tid), []).append(score >= min_iou)
    return {tid for tid, h in hits.items() if np.mean(h) >= min_share}
