"""``python -m vizoflow``: parse the config (Hydra) and dispatch on ``mode``.

How a frame flows is declared in ``conf/config.yaml`` (``graph:``) and run by
:mod:`vizoflow.pipeline`; each mode lives in its own module (:mod:`vizoflow.modes.run`,
:mod:`vizoflow.batch`, :mod:`vizoflow.modes.snapshot`, :mod:`vizoflow.modes.outbox`,
:mod:`vizoflow.review.server`).
Errors a user can fix (bad path, bad config, unknown option) end in one line on
stderr and exit code 2; ``HYDRA_FULL_ERROR=1`` shows the full traceback instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from vizoflow.clock import SiteClock
from vizoflow.config_keys import check_config_files
from vizoflow.errors import ConfigError, VizoflowError
from vizoflow.memory import tune_malloc

FULL_ERROR_FLAG = "VIZOFLOW_FULL_ERROR"  # the user's own HYDRA_FULL_ERROR, before main() sets it
CONF_DIR = Path(__file__).resolve().parent / "conf"  # inside the package: an installed wheel has it too


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def app(cfg: DictConfig) -> None:
    """Hydra entry point; dispatches on ``cfg.mode``.

    User-fixable errors are reported here, inside the job, so Hydra does not add its
    own "Error executing job" line; they leave as ``SystemExit(2)``. Site and
    experiment files are checked for unknown keys first (Hydra lets a file add keys
    silently, so a typo there would leave a default in force without a word), and
    every value for its type, in every mode.
    """
    try:
        check_config_files(HydraConfig.get(), cfg)
        SiteClock(cfg.timezone)  # an unknown time zone is named before anything starts
        tune_malloc(cfg.runtime.malloc_arenas, cfg.runtime.mmap_threshold_kb)  # before any thread (a multirun's first job)
        mode = cfg.mode
        if mode == "run":
            from vizoflow.modes.run import run

            print(run(cfg), file=sys.stderr)
        elif mode == "batch":
            from vizoflow.batch import batch_runner, batch_summary

            runner = batch_runner(cfg)
            results = runner.run()
            print(batch_summary(results, runner.out, cfg), file=sys.stderr)
            if any(r.status == "failed" for r in results):
                raise SystemExit(1)
        elif mode == "snapshot":
            from vizoflow.modes.snapshot import snapshot

            print(f"zones drawn on the first frame: {snapshot(cfg)}", file=sys.stderr)
        elif mode == "outbox":
            from vizoflow.modes.outbox import outbox_status

            print(outbox_status(cfg))
        elif mode == "serve":
            from vizoflow.review.server import serve

            serve(cfg)
        else:
            raise ConfigError(f"unknown mode '{mode}' (choose: run, batch, snapshot, outbox, serve)")
    except (VizoflowError, OmegaConfBaseException) as exc:
        if os.environ.get(FULL_ERROR_FLAG) == "1":
            raise
        print(f"vizoflow: error: {one_line(str(exc))}", file=sys.stderr)
        raise SystemExit(2) from None


def one_line(message: str) -> str:
    """Fold a multi-line library message into one line."""
    parts = [p.strip() for p in message.strip().splitlines() if p.strip()]
    return "; ".join(parts).replace(":;", ":")


def main() -> int:
    """Run the app; turn user-fixable errors into one line and exit code 2."""
    full = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ[FULL_ERROR_FLAG] = "1" if full else "0"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let composition errors reach us instead of Hydra's printer
    os.environ.setdefault("YOLO_OFFLINE", "1")
    try:
        app()
    except Exception as exc:  # Hydra composition errors: unknown group, option or key
        if full or not type(exc).__module__.startswith(("hydra", "omegaconf")):
            raise
        print(f"vizoflow: error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vizoflow: interrupted", file=sys.stderr)
        return 130
    return 0
