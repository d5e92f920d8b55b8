"""``python -m vizoflow``: a Hydra app that builds the graph and runs it.

Errors a user can fix (bad path, bad config, unknown option) end in one line on
stderr and exit code 2; ``HYDRA_FULL_ERROR=1`` shows the full traceback instead.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vizoflow.clock import SiteClock
from vizoflow.config_keys import check_config_files
from vizoflow.errors import ConfigError, VizoflowError
from vizoflow.files import write_json_atomic
from vizoflow.graph import build_nodes, check_required
from vizoflow.inference import cpu_facts
from vizoflow.nodes.annotate import Annotator
from vizoflow.runtime import Runtime, RunStats
from vizoflow.status import StatusBoard, StatusReporter
from vizoflow.zones import Zones

FULL_ERROR_FLAG = "VIZOFLOW_FULL_ERROR"  # the user's own HYDRA_FULL_ERROR, before main() sets it
CONF_DIR = Path(__file__).resolve().parents[1] / "conf"  # editable install: conf/ beside the package
SECRET_KEY = re.compile(r"(api_?key|secret|token|password)", re.IGNORECASE)
PACKAGES = ("vizoflow", "ultralytics", "openvino", "torch", "deep-sort-realtime", "supervision", "av",
            "hydra-core", "polars", "pyarrow", "numpy", "opencv-python")


def redact(value: Any, key: str = "") -> Any:
    """Copy of a plain config tree with secret-looking values replaced by ``***``."""
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    if SECRET_KEY.search(key) and value not in (None, ""):
        return "***"
    return value


def versions() -> dict[str, str]:
    """Installed versions of the packages that shape results."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


@contextmanager
def graceful_signals(stop: Callable[[], None]) -> Iterator[None]:
    """First SIGINT/SIGTERM asks the run to stop cleanly; a second one exits at once."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():  # e.g. a Ray worker: signals are not ours
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        if received:
            os._exit(128 + signum)
        received.append(signum)
        print(f"\nvizoflow: {signal.Signals(signum).name} received, finishing (again to exit at once)",
              file=sys.stderr, flush=True)
        stop()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def inference_info(cfg: DictConfig, nodes: list[tuple[str, Any]]) -> dict[str, Any]:
    """For ``run.json``: the precision asked for, what each model runs in, and the CPU.

    Results depend on the precision OpenVINO really used (bf16 on some CPUs), so a run
    records it; a replay from the track cache has no models and records the request.
    """
    info: dict[str, Any] = {"precision": OmegaConf.select(cfg, "inference.precision"), **cpu_facts()}
    for _, node in nodes:
        if callable(getattr(node, "run_info", None)):
            info.update(node.run_info())
    return info


def build_source(cfg: DictConfig) -> Any:
    """Instantiate ``cfg.source`` after checking its required values."""
    check_required(cfg.source, "source.")
    try:
        return instantiate(cfg.source, _convert_="all")
    except Exception as exc:  # unwrap Hydra's InstantiationException
        cause = exc.__cause__ or exc
        if isinstance(cause, VizoflowError):
            raise cause from None
        raise ConfigError(f"cannot build source {cfg.source.get('_target_')}: {cause}") from None


def run_pipeline(cfg: DictConfig, source: Any = None, nodes: list[tuple[str, Any]] | None = None,
                 extra: dict[str, Any] | None = None) -> RunStats:
    """Build source and graph from ``cfg`` (unless given), run them, and write ``run.json``.

    Args:
        cfg: The composed config.
        source: A ready source instead of ``cfg.source`` (the track cache).
        nodes: Ready ``(name, node)`` pairs instead of ``cfg.graph``.
        extra: More fields for ``run.json``.
    """
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = build_source(cfg) if source is None else source
    nodes = build_nodes(cfg.graph) if nodes is None else nodes
    board = StatusBoard(source, nodes, stall_seconds=cfg.status.stall_seconds)
    watched = bool(cfg.status.interval) or cfg.status.port is not None  # else nobody reads the board
    runtime = Runtime(source, nodes, batch_size=cfg.runtime.batch_size, progress=cfg.runtime.progress,
                      on_batch=board.on_batch if watched else None)
    started = time.time()
    from vizoflow.nodes.live import LiveSource  # where dates come from: run.json and analytics metadata
    time_source = "wall clock" if isinstance(source, LiveSource) else getattr(source, "start_time_source", None)
    for collector in (getattr(node, "collector", None) for _, node in nodes):
        if time_source is not None and callable(getattr(collector, "set_start_time_source", None)):
            collector.set_start_time_source(time_source)
    try:
        with graceful_signals(runtime.stop), StatusReporter(board, cfg.status.interval, cfg.status.port, cfg.status.host):
            runtime.run()
    finally:
        write_json_atomic(out / "run.json", {
            **runtime.stats.to_dict(),
            "started": started,
            "config": redact(OmegaConf.to_container(cfg, resolve=True)),
            "versions": versions(),
            "inference": inference_info(cfg, nodes),
            "start_time_source": time_source,
            "timezone": cfg.timezone,
            **({"clock_epoch": source.epoch} if isinstance(source, LiveSource) else {}),  # live timestamps + this = time
            **(extra or {}),
        })
    return runtime.stats


def snapshot(cfg: DictConfig) -> Path:
    """Save the source's first frame with every zone and its name drawn, to check polygons."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = build_source(cfg)
    try:
        frame = next(iter(source), None)
    finally:
        source.close()
    if frame is None:
        raise ConfigError("the source gave no frame to draw zones on")
    drawn = OmegaConf.to_container(cfg.frame_size) if cfg.get("frame_size") else None
    zones = Zones(OmegaConf.to_container(cfg.zones, resolve=True), drawn_size=drawn)  # type: ignore[arg-type]
    zones.check_inside(frame.size)
    path = out / "snapshot.png"
    if not cv2.imwrite(str(path), Annotator(zones).draw_zones(frame.image.copy())):
        raise VizoflowError(f"could not write {path}")
    return path


def outbox_status(cfg: DictConfig) -> str:
    """Counts per state; with ``+retry=true`` also deliver what is pending now."""
    from vizoflow.nodes.evidence import build_courier
    from vizoflow.nodes.metrics import EvidenceLinker, MetricsCollector
    from vizoflow.outbox import Outbox

    path = Path(cfg.evidence.dir) / "outbox.sqlite"
    if not path.exists():
        raise ConfigError(f"no outbox at {path} (evidence.dir={cfg.evidence.dir})")
    outbox = Outbox(path)
    try:
        if cfg.get("retry", False):
            outbox.retry_failed()
            ev = cfg.evidence
            clock = SiteClock(cfg.timezone)
            build_courier(outbox, cfg.site_name, cfg.camera, ev.upload_url, ev.incident_url, ev.video_url_template,
                          path.parent, ev.attempts, ev.backoff, clock=clock).drain()
            reported = outbox.due(("reported",), now=float("inf"))
            target = next((i.event["metrics_path"] for i in reported if i.event.get("metrics_path")), None)
            collector = MetricsCollector(target, clock=clock) if target and Path(target).parent.is_dir() else None
            if collector is not None and collector.days():  # the linker finds each item's own metrics files
                EvidenceLinker(outbox, collector).link()
        lines = [f"outbox {path}: " + ", ".join(f"{state} {n}" for state, n in outbox.counts().items())]
        lines += [f"  {i.state:<12} {i.event_id} part {i.part}: {i.last_error}" for i in outbox.all() if i.last_error]
        return "\n".join(lines)
    finally:
        outbox.close()


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
               else "tracks " + ", ".join(str(t) for t in row["track_ids"]))
        lines.append(f"  {row['kind']:<12} {row['started_at']:7.1f} - {row['started_at'] + row['duration']:7.1f} s  {who}")
    if ends.height > limit:
        lines.append(f"  ... {ends.height - limit} more in {path.name}")
    return lines


def batch_summary(results: list[Any], out: Path, cfg: DictConfig) -> str:
    """Per-video lines, totals, and the evaluation table when there is one."""
    lines = [f"  {r.name:<28} {r.status:<8} {r.frames:6d} frames {r.seconds:7.1f} s"
             + (" (from track cache)" if r.from_cache else "") + (f": {r.error}" if r.error else "") for r in results]
    done = sum(r.status == "ok" for r in results)
    lines.insert(0, f"vizoflow batch: {done} processed, {sum(r.status == 'skipped' for r in results)} already done, "
                    f"{sum(r.status == 'failed' for r in results)} failed")
    evaluation = out / "evaluation.parquet"
    if cfg.eval.labels and evaluation.exists():
        import polars as pl

        with pl.Config(tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True, float_precision=3):
            lines.append(f"events against {cfg.eval.labels} (temporal IoU >= {cfg.eval.iou}):")
            lines.append(str(pl.read_parquet(evaluation)))
    lines.append(f"outputs in {out}: per-video folders, tracks.parquet, events.parquet, batch.json")
    return "\n".join(lines)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def app(cfg: DictConfig) -> None:
    """Hydra entry point; dispatches on ``cfg.mode``.

    User-fixable errors are reported here, inside the job, so Hydra does not add its
    own "Error executing job" line; they leave as ``SystemExit(2)``. Site and
    experiment files are checked for unknown keys first: Hydra lets a file add keys
    silently, so a typo there would leave a default in force without a word.
    """
    try:
        check_config_files(HydraConfig.get())
        SiteClock(cfg.timezone)  # an unknown time zone is named before anything starts
        mode = cfg.mode
        if mode == "run":
            stats = run_pipeline(cfg)
            print(summarize(stats, Path(cfg.output_dir)), file=sys.stderr)
        elif mode == "batch":
            from vizoflow.batch import BatchRunner

            runner = BatchRunner(cfg)
            results = runner.run()
            print(batch_summary(results, runner.out, cfg), file=sys.stderr)
            if any(r.status == "failed" for r in results):
                raise SystemExit(1)
        elif mode == "snapshot":
            print(f"zones drawn on the first frame: {snapshot(cfg)}", file=sys.stderr)
        elif mode == "outbox":
            print(outbox_status(cfg))
        else:
            raise ConfigError(f"unknown mode '{mode}' (choose: run, batch, snapshot, outbox)")
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
