"""Batch mode on real clips: per-video folders, merged tables, resume, the track cache, evaluation, sweeps."""

from __future__ import annotations

import json

import polars as pl

from tests.conftest import BATCH_CLIPS as CLIPS
from tests.conftest import run_cli


def without_evidence(data):
    """Analytics minus what only a run with video has (clips) or what differs per run (metadata)."""
    if isinstance(data, dict):
        return {k: without_evidence(v) for k, v in data.items() if k not in ("metadata", "video_evidence")}
    if isinstance(data, list):
        return [without_evidence(v) for v in data]
    return data


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
    assert "2 processed, 0 already done, 0 failed" in first.stderr
    assert len(list((root / "cache").glob("*.parquet"))) == 2 and len(list((root / "cache").glob("*.json"))) == 2


def test_events_are_scored_against_the_labels(caviar_batch):
    root, _, first = caviar_batch
    table = pl.read_parquet(root / "first" / "evaluation.parquet")
    row = table.filter(pl.col("kind") == "unattended").row(0, named=True)
    assert row["labels"] == 2  # the caviar labels; intel's are not in this batch
    assert row["tp"] + row["fn"] == 2 and row["tp"] + row["fp"] == row["detected"]
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
        run = json.loads((root / "replay" / name / "run.json").read_text())
        assert run["from_cache"] and "detect" not in run["nodes"] and "segment" not in run["nodes"]


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


def test_ray_executor_gives_the_same_results_as_local(caviar_batch):
    root, common, _ = caviar_batch
    result = run_cli(*common, "batch.executor=ray", "batch.ray_cpus=2", f"output_dir={root}/ray")
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
