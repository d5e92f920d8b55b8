"""The detector's reused input against Ultralytics' own preprocessing, on real frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from tests.conftest import clip
from vizoflow.nodes.detect import YoloDetector
from vizoflow.nodes.letterbox import MAX_SHAPES, LetterboxInput
from vizoflow.nodes.sources import VideoFileSource


def first_frame(name: str) -> np.ndarray:
    return next(iter(VideoFileSource(str(clip(name))))).image


@pytest.fixture(scope="module")
def yolo() -> YoloDetector:
    return YoloDetector()


@pytest.mark.slow  # loads the detector
def test_the_detector_uses_the_reused_input(yolo):
    assert isinstance(yolo._model.predictor.preprocess, LetterboxInput)


@pytest.mark.slow
def test_the_input_is_ultralytics_input_bit_for_bit_on_frames_of_every_shape(yolo):
    predictor = yolo._model.predictor
    ultralytics = type(predictor).preprocess.__get__(predictor)  # the method the reused input replaces
    checkout, shop, campus = first_frame("ucf-checkout"), first_frame("intel-one-by-one"), first_frame("tud-campus")
    portrait = np.ascontiguousarray(shop[:, 100:331])  # taller than wide, odd width
    square = cv2.resize(campus, (640, 640))  # no resize, no padding
    batches = [[checkout], [shop], [campus], [portrait], [square], [checkout, shop, portrait], [checkout]]
    reused = LetterboxInput(640)
    for images in batches:
        want = ultralytics(images)
        got = reused(images)
        assert got.shape == want.shape == (len(images), 3, 640, 640)
        assert got.dtype == want.dtype == torch.float32
        assert torch.equal(got, want), [image.shape for image in images]


@pytest.mark.slow
def test_detections_are_the_same_with_ultralytics_input(yolo):
    frames = [first_frame("ucf-checkout"), first_frame("tud-campus")]
    predictor = yolo._model.predictor
    reused = predictor.preprocess
    ours = [r.boxes.data.clone() for r in yolo._model.predict(frames, **yolo._args)]
    predictor.preprocess = type(predictor).preprocess.__get__(predictor)
    try:
        theirs = [r.boxes.data.clone() for r in yolo._model.predict(frames, **yolo._args)]
    finally:
        predictor.preprocess = reused
    assert [len(b) for b in ours] == [len(b) for b in theirs] and min(len(b) for b in ours) > 0
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))


def test_a_frame_the_size_of_the_input_is_only_scaled():
    image = np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3)
    got = LetterboxInput(32)([image])[0]
    assert torch.equal(got[0], torch.from_numpy(image[..., 2].astype(np.float32)) / 255)
    assert torch.equal(got[2], torch.from_numpy(image[..., 0].astype(np.float32)) / 255)


def test_padding_is_ultralytics_grey_above_and_below_a_wide_frame():
    got = LetterboxInput(64)([np.zeros((16, 64, 3), np.uint8)])[0]
    assert got.shape == (3, 64, 64)
    assert torch.all(got[:, :24] == torch.tensor(114.0) / 255) and torch.all(got[:, 24:40] == 0)
    assert torch.all(got[:, 40:] == torch.tensor(114.0) / 255)



def test_frames_of_ever_new_sizes_keep_a_bounded_number_of_buffers():
    reused = LetterboxInput(64)
    for width in range(20, 60):
        reused([np.zeros((10, width, 3), np.uint8)])
    assert len(reused._resized) <= MAX_SHAPES
