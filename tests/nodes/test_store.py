"""The store node on synthetic tracked frames: trust, day sections to the metrics sink, video switches, scaling."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import supervision as sv

from vizoflow.frame import Frame
from vizoflow.nodes.analytics import AnalyticsSink
from vizoflow.nodes.store import StoreAnalytics

EPOCH = 1_761_390_000.0  # 2025-10-25T11:00:00Z
ZONES = {"shop": [[0, 0], [200, 0], [200, 100], [0, 100]]}
LINES = {"door": [[0, 100], [200, 100]]}  # walking down across y = 100 is "in"


def frame(i, people, video="cam", size=(200, 200), fps=10.0):
    """people: (track id, x, y ground point, trusted)."""
    if people:
        xy = np.array([(x, y) for _, x, y, _ in people], float)
        det = sv.Detections(xyxy=np.c_[xy[:, 0] - 5, xy[:, 1] - 40, xy[:, 0] + 5, xy[:, 1]].astype(np.float32),
                            tracker_id=np.array([p[0] for p in people]), class_id=np.zeros(len(people), int),
                            data={"trusted": np.array([p[3] for p in people]),
                                  "role": np.full(len(people), "customer")})
    else:
        det = sv.Detections.empty()
    return Frame(video=video, index=i, timestamp=i / fps, image=np.zeros((size[1], size[0], 3), np.uint8),
                 detections=det, epoch=EPOCH)


def run(node, frames):
    for f in frames:
        node.process(f)
    last = frames[-1]
    end = node.finish(Frame(video=last.video, index=last.index, timestamp=last.timestamp, image=last.image,
                            epoch=last.epoch))
    node.close()
    return end


def test_a_crossing_made_before_trust_counts_once_trusted_with_its_time_and_a_rack_never(tmp_path):
    node = StoreAnalytics(str(tmp_path), zones=ZONES, lines=LINES, publish_seconds=0.0)
    frames = [frame(i, [(1, 100, 60 + 5 * i, i >= 20),  # walks down, crosses at ~0.8 s, trusted from 2.0 s
                        (2, 30, 50, False)])          # a rack in the shop: never trusted
              for i in range(30)]
    end = run(node, frames)
    crossings = pl.read_parquet(tmp_path / "footfall.parquet")
    assert crossings["direction"].to_list() == ["in"] and crossings["track_id"].to_list() == [1]
    assert crossings["time"][0].timestamp() == EPOCH + 1.0  # the frame it was 10 px past the line, not 2.0 s
    visits = pl.read_parquet(tmp_path / "dwell.parquet")
    assert visits["track_id"].to_list() == [1] and visits["seconds"][0] == 0.8  # from 0.0 s, before trust
    [day] = end.figures.values()
    assert day["footfall_metrics"]["lines"]["door"]["in"] == 1
    assert day["occupancy_metrics"]["zones"]["shop"]["all"]["max"] == 0  # occupancy counts from trust on (left by then)


def test_the_sections_land_in_the_day_file_through_the_metrics_sink(tmp_path):
    node = StoreAnalytics(str(tmp_path), zones=ZONES, lines=LINES)
    sink = AnalyticsSink(str(tmp_path / "analytics_metrics.json"), str(tmp_path / "log.jsonl"),
                       str(tmp_path / "events.parquet"))
    frames = [frame(i, [(1, 100, 60 + 5 * i, True)]) for i in range(30)]
    for f in frames:
        sink.process(node.process(f))
    sink.finish(node.finish(Frame(video="cam", index=30, timestamp=3.0, image=frames[0].image, epoch=EPOCH)))
    node.close()
    sink.close()
    day = json.loads((tmp_path / "analytics_metrics_2025-10-25.json").read_text())
    assert day["footfall_metrics"]["lines"]["door"] == {"in": 1, "out": 0,
                                                        "hourly": {"2025-10-25T11:00+00:00": {"in": 1, "out": 0}}}
    assert day["dwell_metrics"]["zones"]["shop"]["count"] == 1
    assert day["metadata"]["version"] == "1.1" and "interaction_metrics" in day  # the v1.1 keys stay


def test_a_second_video_starts_its_own_tracks_and_its_figures_are_published(tmp_path):
    node = StoreAnalytics(str(tmp_path), zones=ZONES, lines=LINES, publish_seconds=60.0)
    for i in range(30):
        node.process(frame(i, [(1, 100, 60 + 5 * i, True)], video="a"))
    published = []
    for i in range(30):  # same track id 1 in video b: another person, who also walks down
        f = frame(i, [(1, 100, 60 + 5 * i, True)], video="b")
        node.process(f)
        published += [d["footfall_metrics"]["lines"]["door"]["in"] for d in f.figures.values()]
    end = node.finish(frame(29, [], video="b"))
    node.close()
    assert published == [1]  # video a's figures went out when b started (its clock restarts at 0)
    assert [d["footfall_metrics"]["lines"]["door"]["in"] for d in end.figures.values()] == [2]


def test_lines_drawn_on_a_smaller_frame_are_scaled_with_the_zones(tmp_path):
    node = StoreAnalytics(str(tmp_path), zones=ZONES, lines=LINES, frame_size=[200, 200])
    run(node, [frame(i, [(1, 200, 120 + 10 * i, True)], size=(400, 400)) for i in range(20)])  # y = 200 is the line
    assert pl.read_parquet(tmp_path / "footfall.parquet")["direction"].to_list() == ["in"]


def walk_down(tid, epoch, video="cam"):
    frames = [frame(i, [(tid, 100, 60 + 5 * i, True)], video=video) for i in range(30)]
    for f in frames:
        f.epoch = epoch
    return frames


def test_a_restarted_live_run_goes_on_with_the_days_figures_and_heat(tmp_path):
    first = run(StoreAnalytics(str(tmp_path), zones=ZONES, lines=LINES), walk_down(1, EPOCH))
    heat_before = pl.read_parquet(tmp_path / "heatmap.parquet")["seconds"].sum()
    # the camera process restarts ten minutes later: a new clock epoch, the same output folder
    second = run(StoreAnalytics(str(tmp_path), zones=ZONES, lines=LINES), walk_down(7, EPOCH + 600))
    [before], [after] = first.figures.values(), second.figures.values()
    assert before["footfall_metrics"]["lines"]["door"]["in"] == 1
    assert after["footfall_metrics"]["lines"]["door"]["in"] == 2  # the day's count, not the count since the restart
    assert after["dwell_metrics"]["zones"]["shop"]["count"] == 2
    saved = np.load(tmp_path / "store_heat_cam0_2025-10-25.npy")
    assert saved.sum() == pytest.approx(2 * heat_before)  # the day's heat goes on too
    assert pl.read_parquet(tmp_path / "heatmap.parquet")["seconds"].sum() == pytest.approx(heat_before)  # this run's


def test_the_same_recording_run_again_into_the_same_folder_is_not_counted_twice(tmp_path, caplog):
    caplog.set_level("INFO")
    first = run(StoreAnalytics(str(tmp_path), zones=ZONES, lines=LINES), walk_down(1, EPOCH))
    again = run(StoreAnalytics(str(tmp_path), zones=ZONES, lines=LINES), walk_down(1, EPOCH))
    assert [d["footfall_metrics"] for d in again.figures.values()] == [d["footfall_metrics"] for d in first.figures.values()]
    assert "counting them again from zero, not on top" in caplog.text
    assert np.load(tmp_path / "store_heat_cam0_2025-10-25.npy").sum() == pytest.approx(
        pl.read_parquet(tmp_path / "heatmap.parquet")["seconds"].sum())


def test_a_day_let_go_inside_one_video_is_handed_on_and_a_day_back_again_has_its_newer_counts(tmp_path):
    node = StoreAnalytics(str(tmp_path), zones=ZONES, lines=LINES, publish_seconds=1e9)
    handed = {}
    for n, day in enumerate((0, 1, 2, 0)):  # one long video whose crossings fall on three days, then the first again
        for i in range(30):
            f = frame(30 * n + i, [(n + 1, 100, 60 + 5 * i, True)])
            f.timestamp, f.epoch = 3.0 * n + i / 10, EPOCH + day * 86400 - 3.0 * n  # the clock runs on
            node.process(f)
            for d, sections in f.figures.items():
                handed[d] = sections["footfall_metrics"]["lines"]["door"]["in"]
    end = node.finish(frame(119, [], video="cam"))
    node.close()
    for d, sections in end.figures.items():
        handed[d] = sections["footfall_metrics"]["lines"]["door"]["in"]
    assert handed == {"2025-10-25": 2, "2025-10-26": 1, "2025-10-27": 1}
