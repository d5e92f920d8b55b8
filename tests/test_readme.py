"""The README's examples do what it says they do."""

from __future__ import annotations

import re
import sys

import polars as pl
import pytest
import yaml
from omegaconf import OmegaConf, open_dict

from tests.conftest import ROOT, clip
from vizoflow.graph import build_nodes
from vizoflow.pipeline import run_pipeline, site_services

README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    """The README's section ``## title``, up to the next ``## ``."""
    start = README.index(f"## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end >= 0 else None]


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


@pytest.mark.slow  # the detector over a short clip
def test_the_own_node_example_counts_the_trusted_people_of_every_frame(compose_cfg, tmp_path, monkeypatch):
    """README "Adding your own node": its class, its YAML, run over real footage; the counts are
    the trusted boxes of each analysed frame in tracks.parquet (what it says the node sees)."""
    text = section("Adding your own node")
    [source] = code_blocks(text, "python")
    [entry] = code_blocks(text, "yaml")
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "counter.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("mypkg", None)
    cfg = compose_cfg(f"source.path={clip('tud-campus')}", f"evidence.dir={tmp_path}/segments", "graph.preview=null",
                      "runtime.progress=false")
    with open_dict(cfg):
        cfg.graph.count = OmegaConf.create(yaml.safe_load(entry)["graph"]["count"])
    captured = {}
    with site_services(cfg) as services:
        nodes = build_nodes(cfg.graph, services=services)
        captured.update(nodes)
        run_pipeline(cfg, nodes=nodes, services=services)
    counter = captured["count"]
    assert counter.label == "shoppers" and [name for name, _ in nodes][-1] == "count"
    tracks = pl.read_parquet(tmp_path / "tracks.parquet")
    trusted = tracks.filter(pl.col("trusted")).group_by("frame").len()
    per_frame = dict(zip(trusted["frame"].to_list(), trusted["len"].to_list()))
    assert set(per_frame) <= set(counter.counts) and 10 <= len(counter.counts) < 71  # the analysed frames of 71
    expected = {i: per_frame.get(i, 0) for i in counter.counts}
    assert counter.counts == expected and sum(expected.values()) > 0
    assert tracks.height > sum(expected.values())  # untrusted boxes exist and were not counted
