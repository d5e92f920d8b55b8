"""Score detected events against labelled ones: precision, recall, F1 per kind, temporal-IoU matching.

Labels are a CSV with a header and one row per true event::

    video,kind,start,end,ids
    intel-one-by-one,unattended,7.4,19.0,

``video`` names the video as the batch names it (its stem, or the folder name for
``<clip>/video.mp4``, or its path below the batch folder); ``kind`` is
``interaction``, ``unattended`` or ``queue``; ``start`` and ``end`` are seconds from
the start of the video; ``ids`` (optional, ``;``-separated) is for the reader only,
because track ids are not ground-truth ids.

A detected event matches a label of the same video and kind when their time
intervals overlap with IoU >= the threshold; each label and each detection is used
at most once (pairs taken by decreasing IoU). Precision is undefined (null) without
detections, recall without labels; F1 = 2TP / (2TP + FP + FN), null when both are empty.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from vizoflow.errors import ConfigError

KINDS = ("interaction", "unattended", "queue")
REQUIRED = ("video", "kind", "start", "end")


def load_labels(path: str | Path) -> pl.DataFrame:
    """Read and check a labels CSV.

    Raises:
        ConfigError: missing file or column, unknown kind, end before start (names the row).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"labels file not found: {path}")
    try:
        table = pl.read_csv(path, schema_overrides={"video": pl.String, "kind": pl.String, "ids": pl.String},
                            comment_prefix="#")
    except Exception as exc:  # noqa: BLE001 - polars raises several types for a bad CSV
        raise ConfigError(f"labels {path}: not a readable CSV: {exc}") from None
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise ConfigError(f"labels {path}: missing column(s) {', '.join(missing)} (need {', '.join(REQUIRED)}[, ids])")
    try:
        table = table.with_columns(pl.col("start").cast(pl.Float64), pl.col("end").cast(pl.Float64))
    except Exception:  # noqa: BLE001
        raise ConfigError(f"labels {path}: start and end must be seconds (numbers)") from None
    for i, row in enumerate(table.iter_rows(named=True), start=2):
        if row["kind"] not in KINDS:
            raise ConfigError(f"labels {path} line {i}: kind {row['kind']!r} is not one of {', '.join(KINDS)}")
        if row["start"] is None or row["end"] is None or row["end"] < row["start"]:
            raise ConfigError(f"labels {path} line {i}: need 0 <= start <= end, got {row['start']}..{row['end']}")
    return table.select(*REQUIRED)


def detected_events(events: pl.DataFrame) -> pl.DataFrame:
    """The finished events of an ``events.parquet`` (with a ``video`` column) as ``video, kind, start, end``."""
    ends = events.filter(pl.col("phase") == "end")
    return ends.select("video", "kind", pl.col("started_at").alias("start"),
                       (pl.col("started_at") + pl.col("duration")).alias("end"))


def temporal_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Intersection over union of two time intervals (0 when they do not overlap)."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else float(a == b)


def _matches(truth: list[tuple[float, float]], found: list[tuple[float, float]], threshold: float) -> int:
    pairs = sorted(((temporal_iou(t, f), i, j) for i, t in enumerate(truth) for j, f in enumerate(found)),
                   reverse=True)
    used_t, used_f = set(), set()
    for iou, i, j in pairs:
        if iou < threshold:  # threshold > 0 (score_events checks), so no match without overlap
            break
        if i not in used_t and j not in used_f:
            used_t.add(i)
            used_f.add(j)
    return len(used_t)


def score_events(labels: pl.DataFrame, detected: pl.DataFrame, iou: float = 0.5,
                 kinds: tuple[str, ...] | None = None) -> pl.DataFrame:
    """One row per kind: ``kind, labels, detected, tp, fp, fn, precision, recall, f1``.

    Args:
        labels: ``video, kind, start, end`` (see :func:`load_labels`).
        detected: Same columns (see :func:`detected_events`).
        iou: Temporal IoU needed for a match.
        kinds: Kinds to report (default: every kind present in either table).
    """
    if not 0 < iou <= 1:
        raise ConfigError(f"eval.iou must be in (0, 1], got {iou}")
    kinds = kinds or tuple(k for k in KINDS if k in set(labels["kind"]) | set(detected["kind"]))
    rows = []
    for kind in kinds:
        lab, det = labels.filter(pl.col("kind") == kind), detected.filter(pl.col("kind") == kind)
        tp = 0
        for video in set(lab["video"]) & set(det["video"]):
            truth = [(r["start"], r["end"]) for r in lab.filter(pl.col("video") == video).iter_rows(named=True)]
            found = [(r["start"], r["end"]) for r in det.filter(pl.col("video") == video).iter_rows(named=True)]
            tp += _matches(truth, found, iou)
        fp, fn = det.height - tp, lab.height - tp
        rows.append({"kind": kind, "labels": lab.height, "detected": det.height, "tp": tp, "fp": fp, "fn": fn,
                     "precision": tp / det.height if det.height else None,
                     "recall": tp / lab.height if lab.height else None,
                     "f1": 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else None})
    schema = {"kind": pl.String, "labels": pl.Int64, "detected": pl.Int64, "tp": pl.Int64, "fp": pl.Int64,
              "fn": pl.Int64, "precision": pl.Float64, "recall": pl.Float64, "f1": pl.Float64}
    return pl.DataFrame(rows, schema=schema)


def label_video_names(labels: pl.DataFrame, videos: dict[str, Path]) -> pl.DataFrame:
    """Rename label ``video`` values to the batch's names: a label may name a video by its batch
    name, stem, file name, parent folder, or a trailing part of its path."""
    aliases: dict[str, str] = {}
    for name, path in videos.items():
        path = Path(path)
        for alias in (name, path.stem, path.name, path.parent.name, f"{path.parent.name}/{path.name}"):
            aliases.setdefault(alias, name)
    return labels.with_columns(pl.col("video").replace(aliases))
