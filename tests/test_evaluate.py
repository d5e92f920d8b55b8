"""Event scoring on hand-made label/prediction pairs with known answers."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from vizoflow.errors import ConfigError
from vizoflow.evaluate import label_video_names, load_labels, score_events, temporal_iou

ROOT = Path(__file__).resolve().parents[1]


def events(*rows: tuple[str, str, float, float]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema={"video": pl.String, "kind": pl.String, "start": pl.Float64,
                                            "end": pl.Float64}, orient="row")


def row(table: pl.DataFrame, kind: str) -> dict:
    return table.filter(pl.col("kind") == kind).row(0, named=True)


def test_temporal_iou():
    assert temporal_iou((0, 10), (5, 15)) == pytest.approx(5 / 15)
    assert temporal_iou((0, 10), (0, 10)) == 1.0
    assert temporal_iou((0, 1), (2, 3)) == 0.0
    assert temporal_iou((3, 3), (3, 3)) == 1.0  # identical instants


def test_matches_count_once_and_need_the_iou_threshold():
    labels = events(("a", "unattended", 0, 10), ("a", "unattended", 20, 30), ("a", "unattended", 40, 50))
    found = events(("a", "unattended", 1, 10),    # IoU 0.9 -> TP
                   ("a", "unattended", 2, 9),     # same label again -> FP (each label once)
                   ("a", "unattended", 20, 40),   # IoU 0.5 with 20-30 -> TP at 0.5
                   ("b", "unattended", 40, 50))   # other video -> FP; label 40-50 missed -> FN
    r = row(score_events(labels, found, iou=0.5), "unattended")
    assert (r["tp"], r["fp"], r["fn"]) == (2, 2, 1)
    assert r["precision"] == 0.5 and r["recall"] == pytest.approx(2 / 3) and r["f1"] == pytest.approx(4 / 7)
    r = row(score_events(labels, found, iou=0.6), "unattended")
    assert (r["tp"], r["fp"], r["fn"]) == (1, 3, 2)


def test_overlapping_events_take_the_best_pairs():
    labels = events(("v", "queue", 0, 10), ("v", "queue", 8, 20))
    found = events(("v", "queue", 7, 20), ("v", "queue", 0, 9))
    r = row(score_events(labels, found), "queue")
    assert (r["tp"], r["fp"], r["fn"]) == (2, 0, 0) and r["f1"] == 1.0


def test_no_predictions_no_labels_and_neither():
    labels = events(("v", "unattended", 0, 10))
    none = events()
    r = row(score_events(labels, none), "unattended")
    assert (r["tp"], r["fn"], r["precision"], r["recall"], r["f1"]) == (0, 1, None, 0.0, 0.0)
    r = row(score_events(none, labels), "unattended")
    assert (r["fp"], r["precision"], r["recall"], r["f1"]) == (1, 0.0, None, 0.0)
    r = row(score_events(none, none, kinds=("queue",)), "queue")
    assert (r["precision"], r["recall"], r["f1"]) == (None, None, None)
    assert score_events(none, none).is_empty()


def test_labels_file_is_checked_and_names_map_to_batch_names(tmp_path):
    labels = load_labels(ROOT / "data" / "labels" / "shared.csv")
    assert labels.height == 12 and set(labels["kind"]) == {"unattended", "interaction", "queue"}
    named = label_video_names(labels, {"intel-one-by-one__video": Path("/x/intel-one-by-one/video.mp4")})
    assert named.filter(pl.col("video") == "intel-one-by-one__video").height == 6
    bad = tmp_path / "bad.csv"
    bad.write_text("video,kind,start,end\nv,loitering,1,2\n")
    with pytest.raises(ConfigError, match="line 2: kind 'loitering'"):
        load_labels(bad)
    bad.write_text("video,kind,start,end\nv,queue,5,2\n")
    with pytest.raises(ConfigError, match="line 2: need 0 <= start <= end"):
        load_labels(bad)
    bad.write_text("video,start,end\nv,1,2\n")
    with pytest.raises(ConfigError, match="missing column"):
        load_labels(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_labels(tmp_path / "none.csv")
    with pytest.raises(ConfigError, match="eval.iou"):
        score_events(labels, labels, iou=0)
