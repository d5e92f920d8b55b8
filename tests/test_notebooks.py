"""The notebooks run top to bottom on real outputs (the demo batch and a sweep), and are committed clean."""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT

NOTEBOOKS = ROOT / "notebooks"


@pytest.mark.parametrize("name", ["metrics_overview", "threshold_sweep"])
def test_notebook_executes_on_real_outputs(name, caviar_batch, caviar_sweep, monkeypatch):
    root, _, _ = caviar_batch
    monkeypatch.setenv("VIZO_RUN_DIR", str(root / "first"))
    monkeypatch.setenv("VIZO_SWEEP_DIR", str(caviar_sweep))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    if name == "metrics_overview":
        assert f"run: {root / 'first'}" in text and "events have their clip linked" in text
    else:
        assert "swept: ['rules.unattended.seconds']" in text


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
