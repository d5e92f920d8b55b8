"""MOT scoring through trackers.eval on known answers."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tests.conftest import FOOTAGE
from vizoflow.errors import ConfigError
from vizoflow.mot import score_tracks

GT = FOOTAGE / "tud-campus" / "gt.txt"


def gt_as_tracks() -> pl.DataFrame:
    g = np.loadtxt(GT, delimiter=",")
    return pl.DataFrame({"frame": (g[:, 0] - 1).astype(int), "track_id": g[:, 1].astype(int),
                         "x1": g[:, 2], "y1": g[:, 3], "x2": g[:, 2] + g[:, 4], "y2": g[:, 3] + g[:, 5],
                         "confidence": np.ones(len(g))})


def test_ground_truth_scores_perfectly():
    score = score_tracks(gt_as_tracks(), GT)
    assert (score.hota, score.mota, score.idf1, score.id_switches) == pytest.approx((100, 100, 100, 0), abs=1e-6)


def test_an_identity_swap_halfway_costs_switches_and_idf1_but_not_detection():
    tracks = gt_as_tracks()
    swapped = tracks.with_columns(
        pl.when((pl.col("frame") >= 35) & (pl.col("track_id") == 4)).then(5)
        .when((pl.col("frame") >= 35) & (pl.col("track_id") == 5)).then(4)
        .otherwise(pl.col("track_id")).alias("track_id"))
    score = score_tracks(swapped, GT)
    assert score.id_switches == 2 and 80 < score.idf1 < 100 and score.mota == pytest.approx(100 - 200 / 359, abs=1e-6)


def test_with_a_stride_only_processed_frames_are_scored():
    even = gt_as_tracks().filter(pl.col("frame") % 2 == 0)
    assert score_tracks(even, GT).mota < 60  # odd frames count as misses
    assert score_tracks(even, GT, processed=set(range(0, 71, 2))).mota == pytest.approx(100)


def test_missing_ground_truth_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="ground truth not found"):
        score_tracks(gt_as_tracks(), tmp_path / "gt.txt")


def test_person_tracks_follow_ground_truth_boxes_and_things_do_not(tmp_path):
    from vizoflow.mot import person_tracks

    gt = tmp_path / "gt.txt"  # one person walking right, frames 1-10 (MOT: 1-based)
    gt.write_text("".join(f"{f},1,{10 * f},20,30,60,1,-1,-1,-1\n" for f in range(1, 11)))
    rows = []
    for f in range(10):  # frame is 0-based in the tracks table
        x = 10 * (f + 1)
        rows.append({"frame": f, "track_id": 5, "x1": x + 2.0, "y1": 21.0, "x2": x + 31.0, "y2": 79.0})  # on the person
        rows.append({"frame": f, "track_id": 9, "x1": 300.0, "y1": 20.0, "x2": 330.0, "y2": 80.0})  # a rack
        if f < 2:  # a track on the person for 2 of its 10 frames, then stuck elsewhere
            rows.append({"frame": f, "track_id": 7, "x1": x, "y1": 20.0, "x2": x + 30.0, "y2": 80.0})
    for f in range(2, 10):
        rows.append({"frame": f, "track_id": 7, "x1": 200.0, "y1": 20.0, "x2": 230.0, "y2": 80.0})
    assert person_tracks(pl.DataFrame(rows), gt) == {5}
