"""Track cache keys, hits, misses and invalidation (the end-to-end identity test is in test_batch.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import supervision as sv

from tests.conftest import clip, run_cli, write_video
from vizoflow.cache import CachedSource, TrackCache, TrackRecorder, cache_key, file_digest, video_frames
from vizoflow.frame import Frame
from vizoflow.nodes.sources import VideoFileSource
from vizoflow.runtime import Runtime

DETECTOR = {"_target_": "vizoflow.nodes.detect.YoloDetector", "model": None, "conf": 0.25, "device": "cpu"}
TRACKER = {"_target_": "vizoflow.nodes.track.DeepSortTracker", "max_age": 30, "cache_dir": None}


def test_key_follows_content_and_settings_not_paths_or_devices(tmp_path):
    a, b, c = tmp_path / "a.mp4", tmp_path / "b.mp4", tmp_path / "c.mp4"
    a.write_bytes(b"video bytes")
    b.write_bytes(b"video bytes")   # a renamed copy
    c.write_bytes(b"video bytes!")  # an edited file
    assert file_digest(a) == file_digest(b) != file_digest(c)
    key = cache_key(file_digest(a), DETECTOR, TRACKER, 1)
    assert cache_key(file_digest(b), DETECTOR, TRACKER, 1) == key
    assert cache_key(file_digest(c), DETECTOR, TRACKER, 1) != key
    assert cache_key(file_digest(a), {**DETECTOR, "conf": 0.3}, TRACKER, 1) != key
    assert cache_key(file_digest(a), DETECTOR, {**TRACKER, "max_age": 31}, 1) != key
    assert cache_key(file_digest(a), DETECTOR, TRACKER, 2) != key
    assert cache_key(file_digest(a), {**DETECTOR, "device": "cuda"}, {**TRACKER, "cache_dir": "/x"}, 1) == key


def frame(i: int, boxes: list[list[float]], ids: list[int]) -> Frame:
    det = sv.Detections(xyxy=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
                        confidence=np.full(len(ids), 0.75, dtype=np.float32), tracker_id=np.asarray(ids, dtype=int))
    return Frame(video="clip", index=i, timestamp=i / 10, image=np.zeros((48, 64, 3), np.uint8), detections=det,
                 epoch=1_700_000_000.0)


def test_recorded_frames_replay_exactly_including_empty_frames(tmp_path):
    cache = TrackCache(tmp_path / "cache")
    assert cache.get("k") is None  # miss
    stream = [frame(0, [[1, 2, 3, 4]], [7]), frame(2, [], []), frame(4, [[1, 2, 3, 4], [5, 6, 7.5, 8]], [7, 9])]
    recorder = TrackRecorder(cache, "k", {"video": "/v/clip.mp4"})
    for f in stream:
        recorder.process(f)
    recorder.end_of_stream()
    recorder.close()
    entry = cache.get("k")  # hit
    assert entry is not None and entry.meta["width"] == 64 and entry.meta["frames"] == 3
    replay = list(CachedSource(entry))
    assert [(f.index, f.timestamp, f.epoch, f.video, f.size) for f in replay] == \
        [(f.index, f.timestamp, f.epoch, f.video, f.size) for f in stream]
    for got, want in zip(replay, stream):
        assert np.array_equal(got.detections.xyxy, want.detections.xyxy)
        assert np.array_equal(got.detections.tracker_id, want.detections.tracker_id)
        assert np.array_equal(got.detections.confidence, want.detections.confidence)
    assert not replay[0].image.flags.writeable  # no pixels to draw on


def test_appearance_features_replay_with_their_boxes(tmp_path):
    """The identity layer re-identifies people by the tracker's features: a replay must carry them."""
    cache = TrackCache(tmp_path / "cache")
    stream = [frame(0, [[1, 2, 3, 4], [5, 6, 7, 8]], [7, 9]), frame(1, [], []), frame(2, [[1, 2, 3, 4]], [7])]
    rng = np.random.default_rng(0)
    for f in stream:
        f.detections.data["embedding"] = rng.random((len(f.detections), 1280), dtype=np.float32)
    recorder = TrackRecorder(cache, "k", {"video": "/v/clip.mp4"})
    for f in stream:
        recorder.process(f)
    recorder.end_of_stream()
    recorder.close()
    replay = list(CachedSource(cache.get("k")))
    for got, want in zip(replay, stream):
        if len(want.detections):
            assert np.array_equal(got.detections.data["embedding"], want.detections.data["embedding"])


class Stream:
    """A finite source of numbered frames, with the ``close()`` the runtime calls."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __iter__(self):
        return (frame(i, [[1, 2, 3, 4]], [1]) for i in range(self.n))

    def close(self) -> None:
        pass


class StopAt:
    """Asks the runtime to stop at frame ``index``, as the Ctrl-C handler does."""

    def __init__(self, index: int) -> None:
        self.index, self.runtime = index, None

    def process(self, f: Frame) -> Frame:
        if f.index == self.index:
            self.runtime.stop()
        return f


def run_recorded(cache: TrackCache, n: int, stop_at: int | None = None, frames: int | None = None):
    """Run ``n`` frames through the real runtime with a recorder (and a stopper)."""
    stopper = StopAt(stop_at if stop_at is not None else -1)
    runtime = Runtime(Stream(n), [("track_cache", TrackRecorder(cache, "k", {}, frames)), ("stop", stopper)],
                      batch_size=2, progress=False)
    stopper.runtime = runtime
    return runtime.run()


def test_a_run_stopped_midway_stores_nothing_though_the_runtime_finishes_every_node(tmp_path):
    cache = TrackCache(tmp_path)
    stats = run_recorded(cache, 10, stop_at=3)
    assert stats.status == "stopped" and stats.frames == 4
    assert cache.get("k") is None and not list(tmp_path.iterdir())
    assert run_recorded(cache, 10).status == "ok"
    entry = cache.get("k", frames=10)
    assert entry is not None and entry.meta["frames"] == 10


def test_a_recording_shorter_than_the_container_says_is_not_stored(tmp_path):
    cache = TrackCache(tmp_path)
    assert run_recorded(cache, 6, frames=10).status == "ok"  # the source ended early, the container says 10
    assert cache.get("k") is None and not list(tmp_path.iterdir())


def test_an_entry_with_fewer_frames_than_the_video_is_refused(tmp_path):
    """An entry left by a stopped run of an older vizoflow must not be replayed as the whole video."""
    cache = TrackCache(tmp_path)
    cache.put("k", pl.DataFrame({"frame": [0]}), {"video": "v.mp4", "frames": 576})
    assert cache.get("k", frames=1394) is None
    assert cache.get("k", frames=576) is not None and cache.get("k") is not None


def test_frames_of_a_whole_run_follow_the_container_and_the_stride(tmp_path):
    video = write_video(tmp_path / "v.mp4", 11)
    assert (video_frames(video), video_frames(video, 2), video_frames(video, 5)) == (11, 6, 3)
    assert len(list(VideoFileSource(str(video), stride=2))) == video_frames(video, 2)


def test_a_half_written_entry_is_a_miss(tmp_path):
    cache = TrackCache(tmp_path)
    pl.DataFrame({"frame": [0]}).write_parquet(tmp_path / "j.parquet")
    assert cache.get("j") is None  # no JSON yet
    (tmp_path / "j.json").write_text("{not json")
    assert cache.get("j") is None

def video_run(out: Path) -> dict:
    """``run.json`` of the single video of a batch run into ``out``."""
    return json.loads((out / "video" / "run.json").read_text())


@pytest.mark.slow
def test_a_batch_stopped_by_ctrl_c_caches_nothing_and_the_next_run_processes_every_frame(tmp_path):
    """The real path: the CLI's own SIGINT handler stops a batch midway (the runtime then
    finishes every node, so rules end their events), and nothing of it may reach the cache."""
    video = clip("tud-campus")  # 71 frames
    common = ["mode=batch", f"source.path={video}", f"batch.cache_dir={tmp_path}/cache",
              f"evidence.dir={tmp_path}/segments", "runtime.progress=false", "graph.preview=null"]
    ctrl_c = "+graph.ctrl_c={node:{_target_:tests.custom_nodes.InterruptAfter,frames:20},after:[track]}"
    stopped = run_cli(*common, ctrl_c, f"output_dir={tmp_path}/A")
    assert "SIGINT received" in stopped.stderr, stopped.stderr
    first = video_run(tmp_path / "A")
    assert first["status"] == "stopped" and 20 <= first["frames"] < 71
    assert not list((tmp_path / "cache").glob("*.json")), "an interrupted run left a cache entry"

    again = run_cli(*common, f"output_dir={tmp_path}/B")
    assert again.returncode == 0, again.stderr
    assert "from track cache" not in again.stderr
    assert video_run(tmp_path / "B")["status"] == "ok" and video_run(tmp_path / "B")["frames"] == 71

    replay = run_cli(*common, f"output_dir={tmp_path}/C")  # the whole video is cached now
    assert replay.returncode == 0 and "ok" in replay.stderr and "71 frames" in replay.stderr
    assert "from track cache" in replay.stderr and video_run(tmp_path / "C")["frames"] == 71
