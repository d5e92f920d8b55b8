"""The command line's start: what runs before malloc is tuned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_python

# Counts the process's threads (the kernel's, so native ones too) on an empty interpreter and
# when the CLI calls tune_malloc, which must come before any thread: an arena, once made, stays.
THREADS_AT_TUNE = r"""
import json, os, sys
def threads():
    return len(os.listdir("/proc/self/task"))
bare = threads()
import vizoflow.cli as cli
seen = []
def spy(arenas, threshold):
    seen.append(threads())
    return {}
cli.tune_malloc = spy
sys.argv = ["vizoflow", "mode=nope", "hydra.run.dir=RUN_DIR", "hydra.output_subdir=null"]
try:
    cli.main()
except SystemExit as exc:
    print(json.dumps({"bare": bare, "seen": seen, "exit": exc.code}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_no_thread_starts_before_malloc_is_tuned(tmp_path: Path) -> None:
    done = run_python(THREADS_AT_TUNE.replace("RUN_DIR", str(tmp_path / "run")))
    assert done.stdout, done.stderr  # empty if the CLI ended without its error
    result = json.loads(done.stdout.splitlines()[-1])  # the last line: Hydra may log to stdout before it
    assert result["exit"] == 2, done.stderr  # the unknown mode, named after tune_malloc ran
    assert "unknown mode 'nope'" in done.stderr
    assert result["seen"] == [result["bare"]], f"threads on an empty interpreter, then when malloc was tuned: {result}"
