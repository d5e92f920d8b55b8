"""Shared fixtures: paths to the shared footage, composed configs, synthetic videos."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from vizoflow.cli import CONF_DIR
from vizoflow.video import H264Writer

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FOOTAGE = SHARED / "footage"

os.environ.setdefault("YOLO_OFFLINE", "1")

# The perturbation check (README, "Precision"): ``pytest --detector-conf-shift=0.01`` moves the
# detector's confidence threshold in every run on footage, as another CPU's INT8 kernels move
# scores near it. Kept in the environment so that CLI subprocesses see it too.
CONF_SHIFT_ENV = "VIZO_TEST_DETECTOR_CONF_SHIFT"
DEFAULT_CONF = float(yaml.safe_load((CONF_DIR / "detector" / "yolo.yaml").read_text())["conf"])


def conf_shift() -> float:
    """How far this test session moves the detector's threshold (0: not at all)."""
    return float(os.environ.get(CONF_SHIFT_ENV, "0"))


def detector_conf() -> float:
    """The detector's confidence threshold in this test session (the default, moved by the shift)."""
    return round(DEFAULT_CONF + conf_shift(), 4)


def detector_overrides() -> list[str]:
    """Config overrides that apply this session's threshold (none without a shift)."""
    return [f"detector.conf={detector_conf()}"] if conf_shift() else []


def pytest_addoption(parser):
    parser.addoption("--detector-conf-shift", type=float, default=None,
                     help="move the detector's confidence threshold by this much in every run on footage "
                          "(the perturbation check; README, 'Precision')")


def pytest_configure(config):
    shift = config.getoption("--detector-conf-shift")
    if shift is not None:
        os.environ[CONF_SHIFT_ENV] = str(shift)


def pytest_report_header(config):
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "native")
    return f"vizoflow: detector conf {detector_conf()}, oneDNN kernels {isa}"


def clip(name: str) -> Path:
    """Path of a shared clip; fails loudly (not skips) when the shared folder is missing."""
    path = FOOTAGE / name / "video.mp4"
    assert path.is_file(), f"shared footage missing: {path} (CI needs ../shared beside the checkout)"
    return path


@pytest.fixture
def compose_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """Compose ``conf/config.yaml`` with overrides, outputs under ``tmp_path``."""

    def _compose(*overrides: str) -> DictConfig:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose("config", overrides=[f"output_dir={tmp_path}", *detector_overrides(), *overrides])

    return _compose


def write_video(path: Path, frames: int, fps: float = 10.0, size: tuple[int, int] = (64, 48)) -> Path:
    """Synthetic H.264 clip whose frame ``i`` has grey level ``64 + 4 * i`` (so frames are identifiable)."""
    writer = H264Writer(path, fps=fps, crf=0, preset="ultrafast")
    w, h = size
    for i in range(frames):
        writer.write(np.full((h, w, 3), (64 + 4 * i) % 256, dtype=np.uint8), i / fps)
    writer.close()
    return path


BATCH_CLIPS = ("caviar-shop-front", "tud-campus")


@pytest.fixture(scope="session")
def caviar_batch(tmp_path_factory):
    """The caviar site in batch mode over an archive of two shared clips (symlinks), with a
    private track cache and the shared labels: ``(root, common CLI args, first result)``.
    Unattended at 2 s, a test setting: at the site's 30 s nothing in these clips is an event.
    The detector looks at every frame: at 5 looks a second whether the shopper's 2 s event is
    found is decided by a 0.01 change of detector scores (measured), and these tests are about
    batch runs and their scoring, not the detector's rate."""
    root = tmp_path_factory.mktemp("batch")
    (root / "archive").mkdir()
    for name in BATCH_CLIPS:
        (root / "archive" / f"{name}.mp4").symlink_to(clip(name))
    common = ["+site=caviar", "rules.unattended.seconds=2", "mode=batch", f"source.path={root}/archive",
              f"batch.cache_dir={root}/cache", f"evidence.dir={root}/segments", "runtime.progress=false",
              f"eval.labels={ROOT / 'data' / 'labels' / 'shared.csv'}", "detect.fps=null", "detect.motion=false"]
    first = run_cli(*common, f"output_dir={root}/first")
    assert first.returncode == 0, first.stderr
    return root, common, first


@pytest.fixture(scope="session")
def caviar_sweep(caviar_batch) -> Path:
    """A three-point sweep of the unattended threshold over ``caviar_batch``, from the track cache."""
    root, common, _ = caviar_batch
    sweep = run_cli("--multirun", *common, f"hydra.sweep.dir={root}/sweep", "rules.unattended.seconds=1,2,4")
    assert sweep.returncode == 0, sweep.stderr
    return root / "sweep"


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """``make demo``'s run (site demo, ucf-checkout), once per session, into a private folder."""
    out = tmp_path_factory.mktemp("demo")
    result = run_cli("+site=demo", f"output_dir={out}", f"evidence.dir={out}/segments", "runtime.progress=false")
    assert result.returncode == 0, result.stderr
    (out / "stderr.txt").write_text(result.stderr)
    return out


def user_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """A user's environment for a subprocess: offline, and without a developer's ``HYDRA_FULL_ERROR``."""
    full_env = {**os.environ, "YOLO_OFFLINE": "1", **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    return full_env


def run_cli(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``python -m vizoflow`` as a user would and capture its output."""
    return subprocess.run([sys.executable, "-m", "vizoflow", *args, *detector_overrides()], cwd=cwd,
                          env=user_env(env), capture_output=True, text=True, timeout=timeout)


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in an interpreter of its own and check that it ended well.

    For checks of what changes a process for good (malloc's settings) or of what a fresh
    process does at start (the threads it has).
    """
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=user_env(), capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done


# Fixtures that run the detector over real footage, a live RTSP camera or a Ray/batch run:
# every test that uses one is ``slow``. ``pytest -m "not slow"`` is the quick developer
# loop (under a minute); the default run (CI, ``make test``) runs everything.
SLOW_FIXTURES = frozenset({"caviar_batch", "caviar_sweep", "demo_run", "tud_run", "intel_run", "demo_once",
                           "camera", "annexb", "tud_frames"})
# Slow tests in modules that do not mark them: they load the detector or re-id model, or start
# the CLI in a subprocess (seconds each), or run the detector over a clip.
SLOW_TESTS = frozenset({
    "tests/test_cache.py::test_a_batch_stopped_by_ctrl_c_caches_nothing_and_the_next_run_processes_every_frame",
    "tests/test_reid.py::test_features_equal_the_pytorch_embedders",
    "tests/test_reid.py::test_bf16_features_stay_close_or_fall_back_to_f32",
    "tests/test_reid.py::test_the_model_is_exported_once_then_reused",
    "tests/test_inference.py::test_the_setting_reaches_the_embedder",
    "tests/test_inference.py::test_the_setting_reaches_the_detector",
    "tests/nodes/test_live.py::test_store42_without_the_camera_url_is_a_one_line_error",
})


# Fixtures whose results depend on the detector's scores on real footage: their tests are
# ``footage`` too, the ones `make check-kernels` runs again under other CPU kernels and with the
# detector threshold moved by +-0.01 (README, "Precision").
FOOTAGE_FIXTURES = frozenset({"caviar_batch", "caviar_sweep", "demo_run", "tud_run", "intel_run", "demo_once",
                              "tud_frames", "tud_store", "detector"})


def pytest_collection_modifyitems(config, items):
    """Mark ``slow`` every test that needs one of :data:`SLOW_FIXTURES` (others carry the marker themselves),
    and ``footage`` every test that needs one of :data:`FOOTAGE_FIXTURES`."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if SLOW_FIXTURES & fixtures or item.nodeid.split("[")[0] in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
        if FOOTAGE_FIXTURES & fixtures:
            item.add_marker(pytest.mark.footage)
            item.add_marker(pytest.mark.slow)
