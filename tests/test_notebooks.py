"""The notebooks run top to bottom on real outputs (the demo batch and a sweep), and are committed clean."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import polars as pl
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT

NOTEBOOKS = ROOT / "notebooks"


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory) -> str:
    """A kernel spec that runs this interpreter (the project's venv), whatever ``python3`` a machine has."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "vizoflow-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "vizoflow tests", "language": "python"}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(root))
        yield "vizoflow-test"


def linked_counts(run_dir: Path) -> tuple[int, int]:
    """(linked, events) over every day file ``analytics_metrics_*.json`` below ``run_dir``, counted here, not by the notebook."""
    linked = total = 0
    for path in run_dir.glob("**/analytics_metrics_*.json"):
        data = json.loads(path.read_text())
        for section, key in (("interaction_metrics", "interaction_times"), ("unattended_metrics", "unattended_events"),
                             ("queue_metrics", "queue_events")):
            for entry in data.get(section, {}).get(key, []):
                total += 1
                linked += bool((entry.get("video_evidence") or {}).get("video_url"))
    return linked, total


@pytest.mark.slow
@pytest.mark.parametrize("name", ["metrics_overview", "threshold_sweep", "store_analytics"])
def test_notebook_executes_on_real_outputs(name, caviar_batch, caviar_sweep, kernel_name, monkeypatch):
    root, _, _ = caviar_batch
    monkeypatch.setenv("VIZO_RUN_DIR", str(root / "first"))
    monkeypatch.setenv("VIZO_SWEEP_DIR", str(caviar_sweep))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print('kernel python:', sys.executable)"))
    NotebookClient(nb, timeout=300, kernel_name=kernel_name, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    lines = text.splitlines()
    assert f"kernel python: {sys.executable}" in lines
    if name == "metrics_overview":
        linked, total = linked_counts(root / "first")
        assert total > 0 and linked == total  # offline delivery links every clip of the batch
        assert f"run: {root / 'first'}" in lines and f"{linked} of {total} events have their clip linked" in lines
    elif name == "store_analytics":
        first = root / "first"
        visits = pl.read_parquet(first / "dwell.parquet").filter(pl.col("role") == "customer")  # merged: both videos
        maps = list(first.rglob("heatmap_*.png"))
        assert visits.height > 0 and f"dwell visits: {visits.height}" in lines  # counted here, not by the notebook
        assert len(maps) == 2 and f"heat maps: {len(maps)}" in lines  # one per video of the batch (one day each)
    else:
        sweep = pl.read_parquet(caviar_sweep / "sweep.parquet")
        assert sweep.height > 0 and "swept: ['rules.unattended.seconds']" in text


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
