"""Tracker adapters: DeepSORT with either embedder gives the same tracks; ByteTrack; bad names."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from tests.conftest import FOOTAGE, clip
from vizoflow.errors import ConfigError
from vizoflow.frame import Frame
from vizoflow.nodes.track import AppearanceReuse, ByteTrack, DeepSortTracker
from vizoflow.video import decode


@pytest.fixture(scope="module")
def tud_frames():
    """tud-campus frames with the ground-truth boxes as detections (no detector needed)."""
    gt = np.loadtxt(FOOTAGE / "tud-campus" / "gt.txt", delimiter=",")
    frames = []
    for index, t, image in decode(clip("tud-campus")):
        g = gt[gt[:, 0] == index + 1]
        frames.append((index, t, image, np.c_[g[:, 2], g[:, 3], g[:, 2] + g[:, 4], g[:, 3] + g[:, 5]]))
    return frames


def run(tracker, frames, video="tud"):
    out = []
    for index, t, image, boxes in frames:
        det = sv.Detections(xyxy=boxes.astype(float), confidence=np.full(len(boxes), 0.9))
        f = tracker.process(Frame(video=video, index=index, timestamp=t, image=image, detections=det))
        out.append((f.detections.xyxy.round(1).tolist(), f.detections.tracker_id.tolist()))
    return out


def test_openvino_and_stock_embedders_give_identical_tracks(tud_frames, tmp_path):
    frames = tud_frames[:25]
    ours = run(DeepSortTracker(embedder="openvino", cache_dir=str(tmp_path)), frames)
    stock = run(DeepSortTracker(embedder="mobilenet"), frames)
    assert ours == stock
    assert sum(len(ids) for _, ids in ours) > 50  # tracks confirmed after n_init, boxes passed through


def test_bytetrack_keeps_ids_on_clean_boxes_and_restarts_per_video(tud_frames):
    tracker = ByteTrack()
    first = run(tracker, tud_frames[:10])
    ids = {i for _, frame_ids in first for i in frame_ids}
    assert first[0][1] == [] and len(first[-1][1]) == len(tud_frames[9][3])  # confirmed after a few frames
    gt = np.loadtxt(FOOTAGE / "tud-campus" / "gt.txt", delimiter=",")
    assert len(ids) == len(np.unique(gt[gt[:, 0] <= 10, 1]))  # one id per person: no switches on clean boxes
    again = run(tracker, tud_frames[:10], video="other")
    assert again == first  # a new video starts from scratch: same ids again


def test_a_near_iou_that_leaves_no_reuse_is_a_config_error():
    with pytest.raises(ConfigError, match="tracker.embed_near_iou"):
        AppearanceReuse(near_iou=0.5)


def test_unknown_embedder_is_a_config_error():
    with pytest.raises(ConfigError, match="tracker.embedder"):
        DeepSortTracker(embedder="resnet9000")


class FakeTrack:
    """What AppearanceReuse reads of a deep-sort-realtime track (whose ids are text)."""

    def __init__(self, track_id, box, feature):
        self.track_id, self._box, self.features, self.time_since_update = str(track_id), np.asarray(box, float), [feature], 0

    def is_confirmed(self):
        return True

    def to_ltrb(self):
        return self._box


def test_a_detection_only_its_track_can_be_reuses_the_tracks_feature_until_the_refresh():
    reuse = AppearanceReuse(refresh_seconds=1.0)
    alone, pair_a, pair_b = FakeTrack(1, [0, 0, 10, 20], np.ones(3)), FakeTrack(2, [50, 0, 60, 20], np.zeros(3)), \
        FakeTrack(3, [54, 0, 64, 20], np.zeros(3))
    side_a, side_b = FakeTrack(4, [100, 0, 110, 20], np.ones(3)), FakeTrack(5, [108, 0, 118, 20], np.ones(3))
    boxes = np.array([[1, 0, 11, 20], [51, 0, 61, 20], [55, 0, 65, 20], [100, 0, 110, 20], [108, 0, 118, 20]], float)
    tracks = [alone, pair_a, pair_b, side_a, side_b]
    assert all(f is None for f in reuse.plan(boxes, tracks, 0.0))  # no feature computed yet: all fresh
    reuse.computed_for([1, 2, 3, 4, 5], 0.0)
    plan = reuse.plan(boxes, tracks, 0.5)
    assert plan[0] is alone.features[-1]  # alone: the track's own feature
    assert plan[1] is None and plan[2] is None  # two people overlapping (IoU 0.43): appearance decides, so fresh
    assert plan[3] is side_a.features[-1] and plan[4] is side_b.features[-1]  # boxes touching (IoU 0.11): places tell
    assert reuse.plan(boxes, tracks, 1.2)[0] is None  # a second later it is refreshed
    assert (reuse.computed, reuse.reused) == (12, 3)
    touchy = AppearanceReuse(near_iou=0.05)  # any touch is near
    touchy.computed_for([1, 2, 3, 4, 5], 0.0)
    assert [f is None for f in touchy.plan(boxes, tracks, 0.5)] == [False, True, True, True, True]
    far = np.array([[30, 0, 40, 20]], float)  # a box that is no track's last one
    assert reuse.plan(far, [alone], 0.5) == [None]


def test_the_fast_appearance_memory_gives_the_librarys_tracks(tud_frames, tmp_path):
    from deep_sort_realtime.deep_sort.nn_matching import NearestNeighborDistanceMetric

    from vizoflow.nodes.cosine import NearestCosineMetric

    ours = DeepSortTracker(cache_dir=str(tmp_path), nn_budget=5)  # a small budget: the rings wrap
    library = DeepSortTracker(cache_dir=str(tmp_path), nn_budget=5)
    assert isinstance(ours._tracker.tracker.metric, NearestCosineMetric)
    library._tracker.tracker.metric = NearestNeighborDistanceMetric("cosine", 0.2, 5)
    tracked = run(ours, tud_frames)
    assert tracked == run(library, tud_frames)
    assert len({i for _, ids in tracked for i in ids}) >= 8  # the clip's people, through its occlusions
