"""Detector weights resolution and the detector on a real frame."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import SHARED, clip
from vizoflow.errors import ConfigError
from vizoflow.nodes import detect
from vizoflow.nodes.detect import YoloDetector, resolve_model
from vizoflow.nodes.sources import VideoFileSource


def test_configured_value_wins(monkeypatch):
    monkeypatch.setenv("VIZO_MODEL", "/somewhere/else")
    assert resolve_model("yolo11s.pt") == "yolo11s.pt"


def test_env_then_shared_model(monkeypatch, tmp_path):
    monkeypatch.setenv("VIZO_MODEL", str(tmp_path))
    assert resolve_model(None) == str(tmp_path)
    monkeypatch.delenv("VIZO_MODEL")
    assert resolve_model(None) == str((SHARED / "models" / "yolo11n_int8_openvino_model").resolve())


def test_nothing_found_lists_what_was_tried(monkeypatch, tmp_path):
    monkeypatch.setenv("VIZO_MODEL", str(tmp_path / "gone"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(detect, "PROJECT_ROOT", tmp_path)
    with pytest.raises(ConfigError) as info:
        resolve_model(None)
    message = str(info.value)
    assert "detector.model (not set)" in message
    assert f"$VIZO_MODEL={tmp_path / 'gone'} (does not exist)" in message
    assert "yolo11n_int8_openvino_model (not found)" in message


def test_unloadable_model_is_a_config_error(tmp_path):
    bogus = tmp_path / "weights.pt"
    bogus.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="cannot load detector model"):
        YoloDetector(model=str(bogus))


def test_finds_only_people_on_a_real_frame():
    frame = next(iter(VideoFileSource(str(clip("tud-campus")))))
    YoloDetector().process(frame)
    det = frame.detections
    assert len(det) >= 4  # six people are in the first frame, some occluded
    assert set(det.class_id.tolist()) == {0}
    assert np.all((det.confidence >= 0.25) & (det.confidence <= 1))
