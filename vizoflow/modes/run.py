"""``mode=run``: the graph over the source (files, or a live camera until stopped), then a summary."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from vizoflow.pipeline import run_pipeline
from vizoflow.runtime import RunStats


def run(cfg: DictConfig) -> str:
    """Run the pipeline of ``cfg`` and return the lines to print: speed, node costs, events, outputs."""
    return summarize(run_pipeline(cfg), Path(cfg.output_dir))


def summarize(stats: RunStats, out: Path) -> str:
    """Final lines for the terminal: speed, per-node cost, where the outputs are."""
    lines = [f"vizoflow: {stats.status}: {stats.frames} frames in {stats.seconds:.1f} s ({stats.fps:.1f} frames/s)"]
    for name, row in stats.node_table().items():
        lines.append(f"  {name:<12} {row['ms_per_frame']:8.2f} ms/frame  {100 * row['share']:5.1f}%")
    lines += events_summary(out / "events.parquet")
    files = sorted(p.name for p in out.iterdir() if p.is_file() and not p.name.endswith((".partial", ".tmp")))
    lines.append(f"outputs in {out}: {', '.join(files)}")
    return "\n".join(lines)


def events_summary(path: Path, limit: int = 20) -> list[str]:
    """One line per ended event of a run (the first ``limit``), so a user sees what was found."""
    if not path.exists():
        return []
    import polars as pl

    ends = pl.read_parquet(path).filter(pl.col("phase") == "end").sort("started_at")
    lines = [f"events: {ends.height}"]
    for row in ends.head(limit).iter_rows(named=True):
        who = (f"staff {row['staff_id']}, customer {row['customer_id']}" if row["kind"] == "interaction"
               else "people " + ", ".join(str(t) for t in row["track_ids"]))
        lines.append(f"  {row['kind']:<12} {row['started_at']:7.1f} - {row['started_at'] + row['duration']:7.1f} s  {who}")
    if ends.height > limit:
        lines.append(f"  ... {ends.height - limit} more in {path.name}")
    return lines
