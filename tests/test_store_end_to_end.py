"""Store figures end to end on a shared clip with MOT ground truth (tud-campus): the CLI's line
counts and dwell visits against the ground-truth tracks measured with the same lines and zones.

The geometry and the truth it gives are in ``data/labels/analytics.yaml`` (how it was chosen:
``data/labels/README.md``); ``bench/analytics.py`` scores every labelled clip into docs/analytics.md.
"""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import FOOTAGE, ROOT, clip, run_cli
from vizoflow.analytics.truth import store_tables_of_gt

pytestmark = pytest.mark.slow  # the detector and DeepSORT over tud-campus (71 frames)

LABELS = yaml.safe_load((ROOT / "data" / "labels" / "analytics.yaml").read_text())


@pytest.fixture(scope="module")
def tud_store(tmp_path_factory):
    spec = LABELS["tud-campus"]
    root = tmp_path_factory.mktemp("tud_store")
    site = {"site_name": "tud_store", "source": {"path": str(clip("tud-campus"))}, "frame_size": spec["frame_size"],
            "zones": spec["zones"], "lines": spec["lines"]}
    (root / "conf" / "site").mkdir(parents=True)
    (root / "conf" / "site" / "tud_store.yaml").write_text("# @package _global_\n" + yaml.safe_dump(site))
    done = run_cli("--config-dir", str(root / "conf"), "+site=tud_store", f"output_dir={root}/run",
                   f"evidence.dir={root}/segments", "graph.preview=null", "runtime.progress=false")
    assert done.returncode == 0, done.stderr
    import polars as pl

    found = {name: pl.read_parquet(root / "run" / f"{name}.parquet") for name in ("footfall", "dwell")}
    truth = store_tables_of_gt(FOOTAGE / "tud-campus" / "gt.txt", root / "truth", spec["fps"], spec["frame_size"],
                               spec["zones"], spec["lines"])
    return spec, found, truth


def in_out(table, line):
    rows = table.filter(table["line"] == line)["direction"].to_list()
    return rows.count("in"), rows.count("out")


def test_line_counts_match_the_ground_truth(tud_store):
    spec, found, truth = tud_store
    for line in spec["lines"]:
        expected = spec["truth"]["crossings"][line]
        assert in_out(truth["footfall"], line) == (expected["in"], expected["out"])  # the labels file agrees
        assert in_out(found["footfall"], line) == (expected["in"], expected["out"]), line


def test_dwell_visits_match_the_ground_truth_in_number_and_total_time(tud_store):
    spec, found, truth = tud_store
    for zone in spec["zones"]:
        true = truth["dwell"].filter(truth["dwell"]["zone"] == zone)["seconds"].to_list()
        seen = found["dwell"].filter((found["dwell"]["zone"] == zone) & (found["dwell"]["role"] == "customer"))
        assert sorted(round(s, 2) for s in true) == sorted(spec["truth"]["visits"][zone])
        assert seen.height == len(true), zone
        assert sum(seen["seconds"].to_list()) == pytest.approx(sum(true), rel=0.10), zone
