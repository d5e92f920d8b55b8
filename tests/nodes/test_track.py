"""Tracker adapters: DeepSORT with either embedder gives the same tracks; ByteTrack; bad names."""

from __future__ import annotations

import numpy as np
import pytest
import supervision as sv

from tests.conftest import FOOTAGE, clip
from vizoflow.errors import ConfigError
from vizoflow.frame import Frame
from vizoflow.nodes.track import ByteTrack, DeepSortTracker
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


def test_unknown_embedder_is_a_config_error():
    with pytest.raises(ConfigError, match="tracker.embedder"):
        DeepSortTracker(embedder="resnet9000")
