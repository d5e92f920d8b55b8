"""Batch mode on real clips: per-video folders, merged tables, resume, the track cache, evaluation, sweeps."""

from __future__ import annotations

import json

import polars as pl
import pytest

from tests.conftest import BATCH_CLIPS as CLIPS
from tests.conftest import ROOT, run_cli

LABELS = ROOT / "data" / "labels" / "shared.csv"


def without_evidence(data):
    """Analytics minus what only a run with video has (clips) or what differs per run (metadata)."""
    if isinstance(data, dict):
        return {k: without_evidence(v) for k, v in data.items() if k not in ("metadata", "video_evidence")}
    if isinstance(data, list):
        return [without_evidence(v) for v in data]
    return data


def interval_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


def greedy_matches(truth, found, iou: float = 0.5) -> int:
    """One-to-one matches at temporal IoU >= ``iou``, best pairs first."""
    pairs = sorted(((interval_iou(t, f), i, j) for i, t in enumerate(truth) for j, f in enumerate(found)), reverse=True)
    used_t, used_f = set(), set()
    for value, i, j in pairs:
        if value >= iou and i not in used_t and j not in used_f:
            used_t.add(i)
            used_f.add(j)
    return len(used_t)


def statuses(out):
    return {r["name"]: (r["status"], r["from_cache"]) for r in json.loads((out / "batch.json").read_text())}


def test_each_video_gets_its_folder_and_tables_are_merged_with_a_video_column(caviar_batch):
    root, _, first = caviar_batch
    out = root / "first"
    assert statuses(out) == {name: ("ok", False) for name in CLIPS}
    for name in CLIPS:
        assert json.loads((out / name / "run.json").read_text())["status"] == "ok"
    tracks = pl.read_parquet(out / "tracks.parquet")
    assert tracks.columns[0] == "video" and set(tracks["video"]) == set(CLIPS)
    assert tracks.filter(pl.col("video") == "tud-campus")["frame"].max() == 70
    events = pl.read_parquet(out / "events.parquet")
    assert set(events["video"]) <= set(CLIPS) and events.filter(pl.col("phase") == "end").height >= 1
    occupancy = pl.read_parquet(out / "occupancy.parquet")  # the store's tables are merged as well
    assert occupancy.columns[0] == "video" and set(occupancy["video"]) == set(CLIPS)
    assert "2 processed, 0 already done, 0 failed" in first.stderr
    assert len(list((root / "cache").glob("*.parquet"))) == 2 and len(list((root / "cache").glob("*.json"))) == 2


def test_events_are_scored_against_the_labels(caviar_batch):
    root, _, first = caviar_batch
    table = pl.read_parquet(root / "first" / "evaluation.parquet")
    row = table.filter(pl.col("kind") == "unattended").row(0, named=True)
    assert row["labels"] == 2  # the caviar labels; intel's are not in this batch
    # Scored again here, by hand, from the merged events table and the label file.
    labels = [(float(a), float(b)) for v, kind, a, b, *_ in
              (line.split(",") for line in LABELS.read_text().splitlines() if line and not line.startswith(("#", "video")))
              if v == "caviar-shop-front" and kind == "unattended"]
    ends = pl.read_parquet(root / "first" / "events.parquet").filter(
        (pl.col("phase") == "end") & (pl.col("kind") == "unattended") & (pl.col("video") == "caviar-shop-front"))
    found = [(r["started_at"], r["started_at"] + r["duration"]) for r in ends.iter_rows(named=True)]
    unattended_in_other_videos = pl.read_parquet(root / "first" / "events.parquet").filter(
        (pl.col("phase") == "end") & (pl.col("kind") == "unattended") & (pl.col("video") != "caviar-shop-front")).height
    tp = greedy_matches(labels, found)
    assert len(labels) == 2 and tp >= 1  # the shopper who walks out is found (see test_events_end_to_end)
    assert (row["detected"], row["tp"]) == (len(found) + unattended_in_other_videos, tp), (row, labels, found)
    assert (row["fp"], row["fn"]) == (row["detected"] - tp, 2 - tp)
    assert row["recall"] == pytest.approx(tp / 2)
    assert "events against" in first.stderr and "unattended" in first.stderr


def test_a_second_run_skips_finished_videos(caviar_batch):
    root, common, _ = caviar_batch
    again = run_cli(*common, f"output_dir={root}/first")
    assert again.returncode == 0, again.stderr
    assert statuses(root / "first") == {name: ("skipped", False) for name in CLIPS}
    assert "0 processed, 2 already done" in again.stderr


def test_a_rerun_from_the_cache_gives_identical_results_without_the_video(caviar_batch):
    root, common, _ = caviar_batch
    replay = run_cli(*common, f"output_dir={root}/replay")
    assert replay.returncode == 0, replay.stderr
    assert statuses(root / "replay") == {name: ("ok", True) for name in CLIPS}
    for table in ("events", "tracks"):
        a, b = (pl.read_parquet(root / run / f"{table}.parquet") for run in ("first", "replay"))
        assert a.equals(b), table
    for name in CLIPS:
        a, b = (without_evidence(json.loads((root / run / name / "analytics_metrics.json").read_text()))
                for run in ("first", "replay"))
        assert a == b
        assert a["occupancy_metrics"]["zones"]["walkway"]["customer"]["max"] >= 1  # store figures, not empty ones
        for table in ("footfall", "occupancy", "dwell", "service", "heatmap"):  # store tables: the same numbers
            first, replayed = (pl.read_parquet(root / run / name / f"{table}.parquet") for run in ("first", "replay"))
            assert first.equals(replayed), (name, table)
        run = json.loads((root / "replay" / name / "run.json").read_text())
        assert run["from_cache"] and "detect" not in run["nodes"] and "clips" not in run["nodes"]


def test_a_sweep_from_the_cache_makes_one_row_per_point_and_a_plot(caviar_sweep):
    root = caviar_sweep.parent
    table = pl.read_parquet(root / "sweep" / "sweep.parquet")
    assert table.columns[0] == "rules.unattended.seconds"
    assert table.filter(pl.col("kind") == "unattended")["rules.unattended.seconds"].to_list() == [1.0, 2.0, 4.0]
    detected = table.filter(pl.col("kind") == "unattended")["detected"].to_list()
    assert detected == sorted(detected, reverse=True)  # a longer threshold never finds more events
    assert (root / "sweep" / "sweep.png").stat().st_size > 1000
    for job in ("0", "1", "2"):
        assert all(r["from_cache"] for r in json.loads((root / "sweep" / job / "batch.json").read_text()))


RAY_STARTUP_TIMEOUT = "The current node timed out during startup"


def run_ray(*args: str):
    """``run_cli`` with ``batch.executor=ray``, tried again (up to twice) only when Ray's own local start-up
    times out: Ray waits a fixed 30 s for its raylet, which a loaded 2-core machine can exceed."""
    for _ in range(3):
        result = run_cli(*args, "batch.executor=ray")
        if RAY_STARTUP_TIMEOUT not in result.stderr:
            break
    return result


def test_ray_executor_gives_the_same_results_as_local(caviar_batch):
    root, common, _ = caviar_batch
    result = run_ray(*common, "batch.ray_cpus=2", f"output_dir={root}/ray")
    assert result.returncode == 0, result.stderr
    assert statuses(root / "ray") == {name: ("ok", True) for name in CLIPS}
    for table in ("events", "tracks", "evaluation"):
        a, b = (pl.read_parquet(root / run / f"{table}.parquet") for run in ("first", "ray"))
        assert a.equals(b), table


def test_video_names_are_paths_below_the_batch_root_and_stable(tmp_path):
    from vizoflow.batch import video_names

    for sub in ("cam1", "cam2"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "video.mp4").write_bytes(b"")
    videos = sorted(tmp_path.glob("*/video.mp4"))
    assert video_names(videos, f"{tmp_path}/*/video.mp4") == ["cam1__video", "cam2__video"]
    assert video_names(videos, f"{tmp_path}/cam*/*.mp4") == ["cam1__video", "cam2__video"]
    assert video_names(videos[:1], f"{tmp_path}/cam1") == ["video"]
    assert video_names(videos[:1], str(videos[0])) == ["video"]


@pytest.mark.slow
def test_a_ray_worker_runs_the_detector_and_fills_a_fresh_cache(caviar_batch, tmp_path):
    """Not a replay: a Ray task decodes tud-campus (71 frames), detects, tracks and writes the cache entry."""
    import numpy as np

    from tests.conftest import FOOTAGE, clip
    from tests.test_end_to_end import recall_at_iou

    root, common, _ = caviar_batch
    (tmp_path / "archive").mkdir()
    (tmp_path / "archive" / "tud-campus.mp4").symlink_to(clip("tud-campus"))
    args = [a for a in common if not a.startswith(("source.path=", "batch.cache_dir=", "evidence.dir="))]
    result = run_ray(*args, f"source.path={tmp_path}/archive", f"batch.cache_dir={tmp_path}/cache",
                     f"evidence.dir={tmp_path}/segments", "graph.preview=null", "batch.ray_cpus=1",
                     f"output_dir={tmp_path}/out")
    assert result.returncode == 0, result.stderr
    assert statuses(tmp_path / "out") == {"tud-campus": ("ok", False)}
    run = json.loads((tmp_path / "out" / "tud-campus" / "run.json").read_text())
    assert run["status"] == "ok" and run["frames"] == 71 and not run["from_cache"]
    assert run["nodes"]["detect"]["ms_per_frame"] > 1 and run["nodes"]["track"]["ms_per_frame"] > 0  # really ran
    assert len(list((tmp_path / "cache").glob("*.parquet"))) == 1  # the worker filled the fresh cache
    tracks = pl.read_parquet(tmp_path / "out" / "tracks.parquet")
    assert tracks["frame"].min() <= 15 and tracks["frame"].max() >= 65  # confirmed after 3 looks at 5 a second
    gt = np.loadtxt(FOOTAGE / "tud-campus" / "gt.txt", delimiter=",")
    looked = gt[np.isin(gt[:, 0] - 1, tracks["frame"].unique().to_numpy())]  # gt is 1-based; frames the detector saw
    # The people are found: measured 0.65. Tracks are confirmed on their 3rd look, 0.4 s of this 2.8 s clip
    # at 5 looks a second (0.82 with every frame detected, tests/test_end_to_end.py).
    assert recall_at_iou(tracks.drop("video"), looked) >= 0.55
    local = pl.read_parquet(root / "first" / "tracks.parquet").filter(pl.col("video") == "tud-campus")
    assert abs(tracks.height - local.height) <= 0.1 * local.height  # what a local run finds, give or take


def test_a_several_camera_archive_runs_each_camera_folder_with_its_config_and_merges_with_a_camera_column(
        caviar_batch, tmp_path):
    """An archive with a folder per camera; the track cache of the one-camera batch serves it per video."""
    root, common, _ = caviar_batch
    archive = tmp_path / "archive"
    for camera, name in (("front", "caviar-shop-front"), ("campus", "tud-campus")):
        (archive / camera).mkdir(parents=True)
        (archive / camera / f"{name}.mp4").symlink_to(root / "archive" / f"{name}.mp4")
    args = [a for a in common if not a.startswith("source.path=")]
    done = run_cli(*args, f"source.path={archive}", "+cameras.front.rules.unattended.seconds=60", "+cameras.campus={}",
                   f"output_dir={tmp_path}/out")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    assert statuses(out) == {"front/caviar-shop-front": ("ok", True), "campus/tud-campus": ("ok", True)}
    assert json.loads((out / "front" / "caviar-shop-front" / "run.json").read_text())["status"] == "ok"
    tracks = pl.read_parquet(out / "tracks.parquet")
    assert tracks.columns[0] == "camera" and set(tracks["camera"]) == {"front", "campus"}
    events = pl.read_parquet(out / "events.parquet")
    single = pl.read_parquet(root / "first" / "events.parquet")
    for table in ("tracks", "occupancy"):  # the campus folder ran the campus clip with the site's settings
        mine, one = (pl.read_parquet(run / f"{table}.parquet") for run in (out, root / "first"))
        campus = mine.filter(pl.col("camera") == "campus").drop("camera", "video")
        assert campus.height > 0 and campus.equals(one.filter(pl.col("video") == "tud-campus").drop("camera", "video"))
    # the front camera's own rule (unattended after 60 s) applies to it alone: none in a 12-s clip
    assert events.filter((pl.col("camera") == "front") & (pl.col("kind") == "unattended")).height == 0
    assert single.filter((pl.col("video") == "caviar-shop-front") & (pl.col("kind") == "unattended")).height > 0
    assert set(pl.read_parquet(out / "occupancy.parquet")["camera"]) == {"front", "campus"}
