"""One precision for every OpenVINO model: the setting reaches the detector and the embedder.

OpenVINO runs bf16 by itself on CPUs that have it; a CPU without bf16 compiles a bf16
request in f32. The expected precision is therefore read from the CPU's capabilities,
so these tests check the right thing on both kinds of machine.
"""

from __future__ import annotations

from pathlib import Path

import openvino
import pytest

from vizoflow.errors import ConfigError
from vizoflow.inference import check_precision, compiled_precision, cpu_config, cpu_facts
from vizoflow.nodes.detect import SharedOutputs, YoloDetector
from vizoflow.reid import OpenVinoEmbedder


def expected(precision: str) -> str:
    """What OpenVINO should run for a request on this CPU."""
    facts = cpu_facts()
    if precision == "auto":
        return facts["openvino_default_precision"]
    if precision == "bf16" and not facts["bf16_supported"]:
        return "f32"  # OpenVINO falls back without an error
    return precision


def test_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="inference.precision must be one of f32, bf16, auto, got 'fp16'"):
        check_precision("fp16")


def test_config_pins_the_hint_except_for_auto():
    assert cpu_config("f32", PERFORMANCE_HINT="LATENCY") == {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    assert cpu_config("bf16", INFERENCE_PRECISION_HINT="f32")["INFERENCE_PRECISION_HINT"] == "bf16"
    assert "INFERENCE_PRECISION_HINT" not in cpu_config("auto")


def test_cpu_facts_are_consistent():
    facts = cpu_facts()
    assert facts["cpu"]
    if not facts["bf16_supported"]:
        assert facts["openvino_default_precision"] == "f32"


@pytest.mark.parametrize("precision", ["f32", "bf16", "auto"])
def test_the_setting_reaches_the_embedder(precision, tmp_path_factory):
    embedder = OpenVinoEmbedder(cache_dir=tmp_path_factory.getbasetemp() / "reid-cache", precision=precision)
    assert embedder.precision == expected(precision)


@pytest.mark.parametrize("precision", ["f32", "bf16", "auto"])
def test_the_setting_reaches_the_detector(precision):
    detector = YoloDetector(precision=precision)
    assert detector.precision == expected(precision)
    backend = detector._model.predictor.model.backend
    xml = next(Path(detector.model_path).glob("*.xml"))
    recompiled = backend.compile_model(openvino.Core().read_model(str(xml)))  # as Ultralytics recompiles per shape
    assert isinstance(recompiled, SharedOutputs) and compiled_precision(recompiled) == expected(precision)
    assert detector.run_info() == {"detector_precision": expected(precision)}
