"""The CLI as a user runs it, on real footage from ../shared."""

from __future__ import annotations

import json
import re

import av
import cv2
import numpy as np
import polars as pl
import pytest
import supervision as sv

from tests.conftest import FOOTAGE, clip, detector_conf, run_cli

TRACK_COLUMNS = {"camera": pl.String, "video": pl.String, "frame": pl.Int64, "timestamp": pl.Float64, "track_id": pl.Int64,
                 "person_id": pl.Int64, "x1": pl.Float32, "y1": pl.Float32, "x2": pl.Float32, "y2": pl.Float32,
                 "confidence": pl.Float32, "role": pl.String, "trusted": pl.Boolean}


def recall_at_iou(tracks: pl.DataFrame, gt: np.ndarray, iou: float = 0.5) -> float:
    """Share of ground-truth boxes (MOT ``gt.txt`` rows) matched by a tracked box in the same frame."""
    hits = 0
    for f in np.unique(gt[:, 0]).astype(int):
        g = gt[gt[:, 0] == f]
        truth = np.c_[g[:, 2], g[:, 3], g[:, 2] + g[:, 4], g[:, 3] + g[:, 5]]
        boxes = tracks.filter(pl.col("frame") == f - 1).select("x1", "y1", "x2", "y2").to_numpy()
        if len(boxes):
            hits += int((sv.box_iou_batch(truth, boxes).max(axis=1) >= iou).sum())
    return hits / len(gt)


@pytest.fixture(scope="module")
def tud_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tud")
    result = run_cli("+site=demo", f"source.path={clip('tud-campus')}", f"output_dir={out}",
                     f"evidence.dir={out}/segments", "runtime.progress=false",
                     "detect.fps=null", "detect.motion=false")  # every frame detected: ground truth has every frame
    assert result.returncode == 0, result.stderr
    return out


def test_tracks_table_has_documented_columns_and_types(tud_run):
    tracks = pl.read_parquet(tud_run / "tracks.parquet")
    assert dict(tracks.schema) == TRACK_COLUMNS
    assert tracks["video"].unique().to_list() == ["video"]
    assert tracks["frame"].min() >= 0 and tracks["frame"].max() <= 70  # 0-based, 71 frames
    assert tracks["timestamp"].max() == pytest.approx(tracks["frame"].max() / 25, abs=1e-6)
    assert ((tracks["x2"] > tracks["x1"]) & (tracks["x2"] <= 640 + 1) & (tracks["y2"] <= 480 + 1)).all()


def test_detection_recall_and_id_count_on_tud_campus(tud_run):
    tracks = pl.read_parquet(tud_run / "tracks.parquet")
    gt = np.loadtxt(FOOTAGE / "tud-campus" / "gt.txt", delimiter=",")
    # What the numbers depend on, pinned: the shared INT8 YOLO11n at imgsz 640, conf 0.25, run in f32
    # (not the CPU's default precision, which is bf16 on some CPUs), and DeepSORT on every frame.
    run = json.loads((tud_run / "run.json").read_text())
    assert run["config"]["detector"]["model"] is None and run["inference"]["detector_precision"] == "f32"
    assert (run["config"]["detector"]["imgsz"], run["config"]["detector"]["conf"]) == (640, detector_conf())
    assert run["config"]["tracker"]["_target_"].endswith("DeepSortTracker")
    assert run["config"]["detect"]["fps"] is None and tracks["frame"].n_unique() >= 60
    # Measured 0.82 (a plain loop gets ~0.80); the margin covers other CPUs' INT8 kernels.
    assert recall_at_iou(tracks, gt) >= 0.75
    gt_ids = len(np.unique(gt[:, 1]))
    assert gt_ids <= tracks["track_id"].n_unique() <= 3 * gt_ids  # measured 19 for 8 people


def test_run_json_records_config_versions_and_speed(tud_run):
    run = json.loads((tud_run / "run.json").read_text())
    assert run["status"] == "ok" and run["frames"] == 71 and run["fps"] > 0
    assert run["config"]["source"]["path"].endswith("tud-campus/video.mp4")
    assert run["versions"]["ultralytics"] != "not installed"
    assert {"detect", "track", "tracks", "preview"} <= set(run["nodes"])


def test_demo_site_writes_the_outputs_and_says_what_it_found_and_where(demo_run):
    for name in ("tracks.parquet", "preview.mp4", "run.json", "analytics_metrics.json", "events.parquet"):
        assert (demo_run / name).stat().st_size > 0, name
    stderr = (demo_run / "stderr.txt").read_text()
    assert f"outputs in {demo_run}" in stderr
    found = re.findall(r"^  (\w+) +[\d.]+ - +[\d.]+ s  ", stderr, flags=re.MULTILINE)  # one line per event
    assert "events: 3" in stderr and sorted(found) == ["interaction", "queue", "queue"]
    assert pl.read_parquet(demo_run / "tracks.parquet").height > 100
    run = json.loads((demo_run / "run.json").read_text())
    assert run["inference"]["precision"] == "f32"
    assert run["inference"]["detector_precision"] == run["inference"]["embedder_precision"] == "f32"
    assert run["inference"]["cpu"]


def test_demo_day_file_holds_the_store_figures_with_a_heat_map_beside_it(demo_run):
    [day_file] = demo_run.glob("analytics_metrics_*.json")
    day = json.loads(day_file.read_text())
    assert day["metadata"]["version"] == "1.1" and day["interaction_metrics"]["interaction_times"]
    lane = day["occupancy_metrics"]["zones"]["lane_1"]["customer"]
    assert lane["max"] >= 2  # two to three customers stand at lane 1 all clip long (data/labels/README.md)
    # Two customers stay at lane 1 all clip long; measured 2 visits, 1 under other CPU kernels
    # (ONEDNN_MAX_CPU_ISA=AVX512_CORE) at 5 looks a second, where one is trusted only late.
    assert day["dwell_metrics"]["zones"]["lane_1"]["count"] >= 1
    service = day["service_metrics"]["per_zone"]["lane_1"]
    # The cashier serves both customers of the service (one event for both). Measured: 2 served at the
    # shipped threshold; with the detector's scores 0.01 higher (another CPU's kernels) and 5 looks a
    # second, the second customer's track is trusted only after the service and 1 is counted.
    assert service["served"] >= 1 and service["visits"] >= service["served"]
    served = pl.read_parquet(demo_run / "service.parquet").filter(pl.col("served"))
    interactions = {e["event_id"] for e in day["interaction_metrics"]["interaction_times"]}
    assert set(served["event_id"].to_list()) <= interactions  # every service is one of the day's interactions
    assert day["footfall_metrics"]["lines"]["checkout_exit"]["out"] == 1  # the customer who paid walks off
    heat = demo_run / f"heatmap_checkout_{day_file.stem[-10:]}.png"
    image = cv2.imread(str(heat))
    assert image is not None and image.shape == (240, 640, 3)  # the frame and the heat beside it


def decoded(path, every: int) -> tuple[int, dict[int, np.ndarray]]:
    """(frame count, every ``every``-th frame as RGB int16 so that differences do not wrap)."""
    kept, n = {}, 0
    with av.open(str(path)) as container:
        for n, f in enumerate(container.decode(video=0), start=1):
            if (n - 1) % every == 0:
                kept[n - 1] = f.to_ndarray(format="rgb24").astype(np.int16)
    return n, kept


@pytest.mark.slow
def test_demo_preview_has_every_frame_with_the_tracked_boxes_drawn(demo_run):
    """preview.mp4 decodes to every one of the source's frames, with a line drawn on each box of tracks.parquet."""
    (count, preview), (expected, source) = decoded(demo_run / "preview.mp4", 1), decoded(clip("ucf-checkout"), 1)
    assert count == expected == 355 and preview[0].shape == source[0].shape
    tracks = pl.read_parquet(demo_run / "tracks.parquet")
    analysed = sorted(set(tracks["frame"].to_list()))  # the detector looks at 5 frames a second of 30
    assert 50 <= len(analysed) <= 75, len(analysed)
    on_line, background = [], []
    for i in analysed[::4]:
        diff = np.abs(preview[i] - source[i]).sum(axis=2)  # per pixel, summed over R, G, B
        h, w = diff.shape
        background.append(np.median(diff))
        for x1, y1, x2, y2 in tracks.filter(pl.col("frame") == i).select("x1", "y1", "x2", "y2").iter_rows():
            x1, y1, x2, y2 = max(int(x1), 0), max(int(y1), 0), min(int(x2), w - 1), min(int(y2), h - 1)
            if x2 - x1 < 16 or y2 - y1 < 16:
                continue
            ring = np.concatenate([diff[y1:y2 + 1, x1], diff[y1:y2 + 1, x2], diff[y1, x1:x2 + 1], diff[y2, x1:x2 + 1]])
            on_line.append(np.median(ring) / max(background[-1], 1.0))
    # Measured: frames differ from the source by a median 17-27 (re-encoding), box outlines by 158-300:
    # the preview is the source's frames with a line on every tracked box.
    assert max(background) < 60, background
    assert len(on_line) >= 50
    assert np.mean(np.array(on_line) > 3) >= 0.9, np.percentile(on_line, [0, 10, 50])


@pytest.mark.slow  # the CLI in a subprocess
@pytest.mark.parametrize(("args", "words"), [
    (["source.path=/no/such/video.mp4"], "video file not found: /no/such/video.mp4"),
    (["+site=nosuchsite"], "Could not find 'site/nosuchsite'"),
    (["detector.confidence=0.5"], "detector.confidence"),
    (["graph.track.after=[detct]"], "graph node 'track': 'after' names 'detct', which is no node"),
])
def test_user_errors_end_in_one_line_and_non_zero_exit(tmp_path, args, words):
    result = run_cli("+site=demo", f"output_dir={tmp_path}", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vizoflow: error:") and words in lines[0], result.stderr


@pytest.mark.slow  # the CLI in a subprocess
def test_corrupt_video_fails_in_one_line(tmp_path):
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    result = run_cli("+site=demo", f"source.path={bad}", f"output_dir={tmp_path / 'out'}")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "corrupt.mp4" in result.stderr and not (tmp_path / "out" / "tracks.parquet").exists()
