"""One numeric precision for every OpenVINO model vizoflow compiles.

OpenVINO's CPU plugin picks its own inference precision: ``f32`` on most CPUs, but
``bf16`` on CPUs with ``avx512_bf16`` or AMX (e.g. AMD EPYC Genoa, Intel Sapphire
Rapids), silently. bf16 keeps 8 bits of mantissa: detector scores and embedder
features move enough to change tracks and events, so the same footage gave
different alerts on different machines. vizoflow therefore pins the precision of
the detector and the embedder to one setting, ``f32`` by default, and records the
precision each compiled model actually runs in (``run.json``).
"""

from __future__ import annotations

import functools
from typing import Any

from vizoflow.errors import ConfigError

PRECISIONS = ("f32", "bf16", "auto")  # auto: OpenVINO's own choice for this CPU


def check_precision(precision: str) -> str:
    """Validate a precision name; returns it.

    Raises:
        ConfigError: not one of :data:`PRECISIONS`.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"inference.precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def cpu_config(precision: str, **extra: Any) -> dict[str, Any]:
    """OpenVINO CPU compile config for ``precision`` plus ``extra`` properties."""
    config = dict(extra)
    if check_precision(precision) != "auto":
        config["INFERENCE_PRECISION_HINT"] = precision
    return config


def _short(element_type: Any) -> str:
    """``f32`` / ``bf16`` / ``f16`` for an OpenVINO element type (its own name otherwise)."""
    name = getattr(element_type, "get_type_name", lambda: str(element_type))()
    return {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}.get(name, name)


def compiled_precision(compiled: Any) -> str:
    """The precision a compiled OpenVINO model really runs in (``f32``, ``bf16``, ...).

    A CPU without bf16 compiles a ``bf16`` request in f32 without an error; this reads
    what OpenVINO chose, so that case shows in ``run.json``.
    """
    return _short(compiled.get_property("INFERENCE_PRECISION_HINT"))


@functools.cache
def cpu_facts() -> dict[str, Any]:
    """CPU name, whether OpenVINO can run bf16 on it, and its default precision."""
    import openvino as ov

    core = ov.Core()
    capabilities = list(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    return {"cpu": str(core.get_property("CPU", "FULL_DEVICE_NAME")),
            "bf16_supported": "BF16" in capabilities,
            "openvino_default_precision": _short(core.get_property("CPU", "INFERENCE_PRECISION_HINT"))}
