"""After a Hydra multirun: one tidy table of every sweep point's evaluation, and a P/R plot.

``python -m vizoflow --multirun +site=intel_table mode=batch eval.labels=data/labels/shared.csv
rules.unattended.seconds=3,5,10,20,30`` (``--multirun`` first: Hydra takes it before the overrides)

Each job writes ``evaluation.parquet`` into its folder; this callback reads them all,
adds one column per overridden value, and writes ``sweep.parquet`` and ``sweep.png``
(precision and recall per kind against the first swept value) into the sweep folder.

Hydra makes the callback at the start of every run, before :func:`vizoflow.memory.tune_malloc`,
so polars (whose import starts its thread pool) is imported only when a sweep is tabulated.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)

METRIC_COLUMNS = {"kind", "labels", "detected", "tp", "fp", "fn", "precision", "recall", "f1", "job"}


def _value(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def collect(sweep_dir: Path) -> pl.DataFrame:
    """Every job's evaluation rows with its overrides as columns (``key`` -> value), job order."""
    import polars as pl

    parts = []
    for evaluation in sorted(sweep_dir.glob("*/evaluation.parquet"), key=lambda p: (len(p.parent.name), p.parent.name)):
        overrides = yaml.safe_load((evaluation.parent / ".hydra" / "overrides.yaml").read_text()) or []
        values = dict(o.lstrip("+~").split("=", 1) for o in overrides if "=" in o)
        table = pl.read_parquet(evaluation)
        parts.append(table.with_columns(*[pl.lit(_value(v)).alias(k) for k, v in values.items()],
                                        pl.lit(evaluation.parent.name).alias("job")))
    if not parts:
        return pl.DataFrame()
    table = pl.concat(parts, how="diagonal_relaxed")
    constant = [c for c in table.columns if c not in METRIC_COLUMNS and table[c].n_unique() == 1]
    return table.drop(constant)  # the same in every job: not part of the sweep


def swept_keys(table: pl.DataFrame) -> list[str]:
    """Override columns whose value changes between jobs."""
    return [c for c in table.columns if c not in METRIC_COLUMNS and table[c].n_unique() > 1]


def plot(table: pl.DataFrame, key: str, path: Path) -> Path:
    """Precision and recall per kind against ``key``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind in table["kind"].unique(maintain_order=True):
        rows = table.filter(table["kind"] == kind).sort(key)
        ax.plot(rows[key], rows["precision"], "o-", label=f"{kind} precision")
        ax.plot(rows[key], rows["recall"], "s--", label=f"{kind} recall")
    ax.set_xlabel(key)
    ax.set_ylim(-0.05, 1.05)
    ax.set_ylabel("precision / recall")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


class SweepCollector(Callback):
    """Hydra callback (``hydra.callbacks.sweep_table``); does nothing for single runs."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        import polars as pl

        sweep_dir = Path(config.hydra.sweep.dir)
        table = collect(sweep_dir)
        if table.is_empty():
            log.info("no evaluation.parquet in %s: nothing to tabulate (mode=batch with eval.labels makes them)",
                     sweep_dir)
            return
        keys = swept_keys(table)
        table = table.select(*keys, *[c for c in table.columns if c not in keys])
        table.write_parquet(sweep_dir / "sweep.parquet")
        with pl.Config(tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True, float_precision=3,
                       tbl_rows=100):
            print(f"\nsweep over {', '.join(keys) or 'nothing'} ({sweep_dir}/sweep.parquet):")
            print(table.drop("job"))
        if keys:
            plot(table, keys[0], sweep_dir / "sweep.png")
            print(f"plot: {sweep_dir / 'sweep.png'}")
