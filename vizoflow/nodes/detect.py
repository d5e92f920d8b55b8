"""Person detection with Ultralytics YOLO."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np
import supervision as sv

from vizoflow.errors import ConfigError
from vizoflow.frame import Frame
from vizoflow.inference import check_precision, compiled_precision, cpu_config

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
    checkout = [PROJECT_ROOT] if (PROJECT_ROOT / "pyproject.toml").exists() else []  # not in an installed wheel
    for base in (Path.cwd(), *checkout):
        candidate = (base / SHARED_MODEL).resolve()
        if candidate.exists():
            return str(candidate)
        tried.append(f"{candidate} (not found)")
    raise ConfigError("no detector weights found; tried: " + "; ".join(tried)
                      + ". Set detector.model=<path or Ultralytics model name> or VIZO_MODEL.")


class SharedOutputs:
    """An OpenVINO compiled model whose outputs are views of its request's memory.

    OpenVINO copies every output into a new array unless told not to: 2.8 MB for the
    detector's 84 x 8400 output, a fresh mapping and about 690 page faults a look.
    Ultralytics turns the output into boxes (new tensors) before the next look, so
    nothing reads the view after the request is reused. Everything else is the
    compiled model's own.

    Args:
        compiled: The ``openvino.CompiledModel`` Ultralytics calls.
    """

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled

    def __call__(self, inputs: Any) -> Any:
        return self.compiled(inputs, share_outputs=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.compiled, name)


class YoloDetector:
    """Ultralytics YOLO, person class only, into ``frame.detections``.

    Args:
        model: Weights path or Ultralytics model name; see :func:`resolve_model`.
        imgsz: Inference size in pixels (the shared INT8 model is static at 640).
        conf: Minimum detection confidence.
        iou: NMS IoU threshold.
        device: Ultralytics device string (``cpu``).
        precision: Inference precision of an OpenVINO model: ``f32`` (default, the same
            results on every CPU), ``bf16`` or ``auto`` (OpenVINO's choice, bf16 on CPUs
            that have it); see :mod:`vizoflow.inference`. Other formats run as they do.
    """

    needs_video = True  # works on pixels: left out when replaying the track cache

    def __init__(self, model: str | None = None, imgsz: int = 640, conf: float = 0.25, iou: float = 0.7,
                 device: str = "cpu", precision: str = "f32") -> None:
        os.environ.setdefault("YOLO_OFFLINE", "1")
        from ultralytics import YOLO  # heavy import, only when a detector is built

        if not 0.0 <= conf <= 1.0:
            raise ConfigError(f"detector.conf must be in [0, 1], got {conf}")
        self.model_path = resolve_model(model)
        try:
            self._model = YOLO(self.model_path, task="detect")
        except Exception as exc:  # noqa: BLE001 - Ultralytics raises many types for a bad path/name: a ConfigError
            raise ConfigError(f"cannot load detector model {self.model_path}: {exc}") from None
        self._args = {"imgsz": imgsz, "conf": conf, "iou": iou, "classes": [PERSON], "device": device, "verbose": False}
        # Ultralytics compiles an OpenVINO model when it first predicts, with OpenVINO's
        # default precision: predict once on a blank frame, then recompile pinned.
        self._model.predict(np.zeros((imgsz, imgsz, 3), dtype=np.uint8), **self._args)
        self.precision = self._pin_precision(check_precision(precision))
        self._reuse_input()

    def _reuse_input(self) -> None:
        """Letterbox into one reused tensor (:class:`LetterboxInput`) where that gives Ultralytics' input exactly.

        That is an OpenVINO model with a fixed square input in f32 (the shared model).
        Other models (``.pt`` with rectangular inputs, fp16) keep Ultralytics' own steps.
        """
        from vizoflow.nodes.letterbox import LetterboxInput  # imports Ultralytics: only once a detector is built

        predictor: Any = self._model.predictor
        size = getattr(predictor, "imgsz", None)
        if (self.precision == "not openvino" or getattr(predictor.model, "fp16", True)
                or getattr(predictor.model, "dynamic", True) or size is None or len(set(size)) != 1):
            return
        predictor.preprocess = LetterboxInput(int(size[0]))

    def _pin_precision(self, precision: str) -> str:
        """Recompile Ultralytics' OpenVINO model at ``precision``; returns the precision it runs in.

        Ultralytics keeps a ``compile_model`` partial (it recompiles per input shape on
        some CPUs); it is replaced too, so every later compile keeps the precision, and
        its outputs are shared (:class:`SharedOutputs`).
        """
        backend: Any = getattr(getattr(self._model.predictor, "model", None), "backend", None)
        compile_fn = getattr(backend, "compile_model", None)
        if not isinstance(compile_fn, functools.partial) or not hasattr(backend, "ov_compiled_model"):
            return "not openvino"
        core = compile_fn.func.__self__
        config = cpu_config(precision, **compile_fn.keywords.get("config", {}))
        pinned = functools.partial(compile_fn.func, device_name=compile_fn.keywords["device_name"], config=config)
        backend.compile_model = lambda model: SharedOutputs(pinned(model))
        path = Path(self.model_path)
        xml = path if path.is_file() else next(path.glob("*.xml"))
        backend.ov_compiled_model = backend.compile_model(core.read_model(str(xml)))
        return compiled_precision(backend.ov_compiled_model)

    def run_info(self) -> dict[str, str]:
        """For ``run.json``: the precision the detector really runs in."""
        return {"detector_precision": self.precision}

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

