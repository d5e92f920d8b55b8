"""Track cache keys, hits, misses and invalidation (the end-to-end identity test is in test_batch.py)."""

from __future__ import annotations

import numpy as np
import polars as pl
import supervision as sv

from vizoflow.cache import CachedSource, TrackCache, TrackRecorder, cache_key, file_digest
from vizoflow.frame import Frame

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
    recorder.finish(stream[-1])
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


def test_an_interrupted_run_or_half_written_entry_is_a_miss(tmp_path):
    cache = TrackCache(tmp_path)
    recorder = TrackRecorder(cache, "k", {})
    recorder.process(frame(0, [[1, 2, 3, 4]], [1]))
    recorder.close()  # no finish(): stopped before the end of the video
    assert cache.get("k") is None and not list(tmp_path.iterdir())
    pl.DataFrame({"frame": [0]}).write_parquet(tmp_path / "j.parquet")
    (tmp_path / "j.json").write_text("{not json")
    assert cache.get("j") is None
