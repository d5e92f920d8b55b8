"""Person detection with Ultralytics YOLO."""

from __future__ import annotations

import os
from pathlib import Path

import supervision as sv

from vizoflow.errors import ConfigError
from vizoflow.frame import Frame

PERSON = 0
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHARED_MODEL = Path("..") / "shared" / "models" / "yolo11n_int8_openvino_model"


def resolve_model(model: str | None) -> str:
    """Pick the detector weights: config value, else ``$VIZO_MODEL``, else the shared model.

    A configured value that is not a local path is passed to Ultralytics as a model
    name (``yolo11s.pt``), which needs network access to download.

    Raises:
        ConfigError: nothing configured and no shared model found; lists what was tried.
    """
    if model:
        return str(model)
    tried = ["detector.model (not set)"]
    env = os.environ.get("VIZO_MODEL")
    if env:
        if Path(env).exists():
            return env
        tried.append(f"$VIZO_MODEL={env} (does not exist)")
    else:
        tried.append("$VIZO_MODEL (not set)")
    for base in (Path.cwd(), PROJECT_ROOT):
        candidate = (base / SHARED_MODEL).resolve()
        if candidate.exists():
            return str(candidate)
        tried.append(f"{candidate} (not found)")
    raise ConfigError("no detector weights found; tried: " + "; ".join(tried)
                      + ". Set detector.model=<path or Ultralytics model name> or VIZO_MODEL.")


class YoloDetector:
    """Ultralytics YOLO, person class only, into ``frame.detections``.

    Args:
        model: Weights path or Ultralytics model name; see :func:`resolve_model`.
        imgsz: Inference size in pixels (the shared INT8 model is static at 640).
        conf: Minimum detection confidence.
        iou: NMS IoU threshold.
        device: Ultralytics device string (``cpu``).
    """

    needs_video = True  # works on pixels: left out when replaying the track cache

    def __init__(self, model: str | None = None, imgsz: int = 640, conf: float = 0.25, iou: float = 0.7,
                 device: str = "cpu") -> None:
        os.environ.setdefault("YOLO_OFFLINE", "1")
        from ultralytics import YOLO  # heavy import, only when a detector is built

        if not 0.0 <= conf <= 1.0:
            raise ConfigError(f"detector.conf must be in [0, 1], got {conf}")
        self.model_path = resolve_model(model)
        try:
            self._model = YOLO(self.model_path, task="detect")
        except Exception as exc:  # Ultralytics raises many types for a bad path/name
            raise ConfigError(f"cannot load detector model {self.model_path}: {exc}") from None
        self._args = {"imgsz": imgsz, "conf": conf, "iou": iou, "classes": [PERSON], "device": device, "verbose": False}

    def process_batch(self, frames: list[Frame]) -> list[Frame]:
        """Detect people on several frames in one call."""
        results = self._model.predict([f.image for f in frames], **self._args)
        for frame, result in zip(frames, results, strict=True):
            detections = sv.Detections.from_ultralytics(result)
            frame.detections = detections[detections.class_id == PERSON]
        return frames

    def process(self, frame: Frame) -> Frame:
        """Detect people on one frame."""
        return self.process_batch([frame])[0]

