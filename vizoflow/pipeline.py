"""The one place that turns a config into a running pipeline.

:func:`run_pipeline` builds the source and the node graph from the composed config
(``vizoflow/conf/config.yaml`` with a site on top), runs them with the :class:`~vizoflow.runtime.Runtime`
(frames flow source -> detect -> track -> appearance -> identity -> people -> roles ->
rules -> store -> clips -> analytics, in the graph's order; clips and analytics hand
their part to the site's evidence service), and writes ``run.json``. Every mode that runs
frames goes through it: ``mode=run`` (files or a live camera), ``mode=batch`` (one call per
video, or a replay of the track cache), tests and benchmarks.

A site with several cameras (``cameras:``, see :mod:`vizoflow.cameras`) runs them in
this one process: every camera gets its own source and its own node of each graph
entry, except the entries marked ``shared: true`` (the detector first of all), which
are built once and see every camera's frames; :class:`~vizoflow.mux.CameraMux` hands
the runtime a round of the newest frame of each camera at a time.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from vizoflow.cameras import camera_config, camera_names, merge_camera_tables, site_config
from vizoflow.errors import ConfigError, VizoflowError
from vizoflow.files import write_json_atomic
from vizoflow.graph import build_nodes, check_required, shared_entries, topological_order, uses
from vizoflow.inference import cpu_facts
from vizoflow.memory import HeapTrimmer
from vizoflow.mux import CameraMux
from vizoflow.runtime import PerCamera, RunStats, Runtime
from vizoflow.status import StatusBoard, StatusReporter
from vizoflow.zones import Zones

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


def serves_page(cfg: DictConfig) -> int | None:
    """The port a run serves its review page on (``mode=run`` with ``serve.port``), checked; None: no page."""
    if OmegaConf.select(cfg, "mode") != "run" or OmegaConf.select(cfg, "serve.port") is None:
        return None
    from vizoflow.review.server import serve_port

    return serve_port(cfg)


@contextmanager
def review_page(cfg: DictConfig, out: Path, board: StatusBoard) -> Iterator[Any]:
    """The review page beside a run while it lasts, when ``serve.port`` is set (its own run shown first).

    Only ``mode=run`` serves it: a batch runs the pipeline once per video, and its videos
    would take turns at the port.

    Yields:
        The :class:`~vizoflow.review.server.ReviewServer`, or None.
    """
    port = serves_page(cfg)
    if port is None:
        yield None
        return
    from vizoflow.review.server import ReviewServer, review_app

    with ReviewServer(review_app(cfg, run_dir=out, board=board), str(cfg.serve.host), port) as server:
        print(f"vizoflow: review page on {server.url}", file=sys.stderr, flush=True)
        yield server


def build_source(cfg: DictConfig) -> Any:
    """Instantiate ``cfg.source`` after checking its required values."""
    check_required(cfg.source, "source.")
    try:
        return instantiate(cfg.source, _convert_="all")
    except Exception as exc:  # noqa: BLE001 - unwrap Hydra's InstantiationException; anything else becomes a ConfigError
        cause = exc.__cause__ or exc
        if isinstance(cause, VizoflowError):
            raise cause from None
        raise ConfigError(f"cannot build source {cfg.source.get('_target_')}: {cause}") from None


@contextmanager
def site_services(cfg: DictConfig, graph: DictConfig | None = None, deliver: bool = True) -> Iterator[dict[str, Any]]:
    """The services the graph's entries use (``uses:``), started for one run and closed after it.

    Args:
        cfg: The composed config.
        graph: The graph that runs, if not ``cfg.graph`` (a replay leaves nodes out).
        deliver: Whether the evidence service delivers (a replay of the track cache does not).
    """
    wanted = uses(cfg.graph if graph is None else graph)
    services: dict[str, Any] = {}
    if "zones" in wanted:
        services["zones"] = camera_zones(cfg)
    if "embedders" in wanted:
        from vizoflow.reid import EmbedderPool

        services["embedders"] = EmbedderPool()
    if "evidence" in wanted:
        from vizoflow.evidence import Evidence

        services["evidence"] = Evidence.from_config(cfg, deliver=deliver)
    try:
        yield services
    finally:
        for service in services.values():
            getattr(service, "close", lambda: None)()


def camera_zones(cfg: DictConfig) -> Zones:
    """One camera's zones (``zones:`` drawn on ``frame_size``): one object its nodes share
    (``uses: [zones]``), so they are checked, scaled and logged once, not once per node."""
    drawn = OmegaConf.to_container(cfg.frame_size, resolve=True) if cfg.frame_size is not None else None
    return Zones(OmegaConf.to_container(cfg.zones, resolve=True), drawn_size=drawn)  # type: ignore[arg-type]


def build_site(cfg: DictConfig, services: dict[str, Any] | None = None) -> tuple[CameraMux, list[tuple[str, Any]]]:
    """Sources and nodes of a site with several cameras: shared entries once, the rest per camera.

    Every config is checked before anything heavy is built, so a typo in the second
    camera fails before the detector loads.
    """
    names = camera_names(cfg)
    configs = {name: camera_config(cfg, name) for name in names}
    order = topological_order(cfg.graph)
    shared = shared_entries(cfg.graph)
    sources: dict[str, Any] = {}
    built: list[Any] = []
    try:
        for name, camera in configs.items():  # cheap (a camera connects when read), and names a missing URL
            check_required(camera.source, f"cameras.{name}.source.")
            sources[name] = build_source(camera)
        shared_nodes = dict(build_nodes(site_config(cfg).graph, only=shared, services=services))
        built += shared_nodes.values()
        own = {}
        for name, camera in configs.items():
            own_services = {**(services or {}), "zones": camera_zones(camera)}  # a camera's zones are its own
            own[name] = dict(build_nodes(camera.graph, only=set(order) - shared, services=own_services))
            built += own[name].values()
    except BaseException:
        for thing in [*built, *sources.values()]:
            getattr(thing, "close", lambda: None)()
        raise
    nodes = [(entry, shared_nodes[entry] if entry in shared else PerCamera({c: own[c][entry] for c in names}))
             for entry in order]
    return CameraMux(sources, per_camera=cfg.runtime.batch_size), nodes


def run_pipeline(cfg: DictConfig, source: Any = None, nodes: list[tuple[str, Any]] | None = None,
                 extra: dict[str, Any] | None = None, services: dict[str, Any] | None = None) -> RunStats:
    """Build source and graph from ``cfg`` (unless given), run them, and write ``run.json``.

    The services the graph uses (the evidence service) are started here, beside the
    status server, unless given with ready ``nodes`` (then their owner closes them).

    Args:
        cfg: The composed config.
        source: A ready source instead of ``cfg.source`` (the track cache).
        nodes: Ready ``(name, node)`` pairs instead of ``cfg.graph``.
        extra: More fields for ``run.json``.
        services: The services ``nodes`` were built with (their status is shown).
    """
    with ExitStack() as stack:
        if services is None:
            services = stack.enter_context(site_services(cfg)) if nodes is None else {}
        return _run(cfg, source, nodes, extra, services)


def detect_ahead(cfg: DictConfig, nodes: Sequence[tuple[str, Any]]) -> int:
    """How many of the first nodes run a batch ahead (``runtime.detect_ahead``): up to the ``detect`` entry.

    0 where the graph has no ``detect`` entry (a replay of the track cache has no detector).
    """
    names = [name for name, _ in nodes]
    return names.index("detect") + 1 if cfg.runtime.detect_ahead and "detect" in names else 0


def _run(cfg: DictConfig, source: Any, nodes: list[tuple[str, Any]] | None, extra: dict[str, Any] | None,
         services: dict[str, Any]) -> RunStats:
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    page_port = serves_page(cfg)  # a wrong port or a missing password ends the run before any model loads
    if source is None and nodes is None and camera_names(cfg):
        source, nodes = build_site(cfg, services)
    source = build_source(cfg) if source is None else source
    nodes = build_nodes(cfg.graph, services=services) if nodes is None else nodes
    trimmer = HeapTrimmer(cfg.runtime.trim_seconds)
    board = StatusBoard(source, [*nodes, *services.items(), ("memory", trimmer)], stall_seconds=cfg.status.stall_seconds)
    watched = bool(cfg.status.interval) or cfg.status.port is not None or page_port is not None
    runtime = Runtime(source, nodes, batch_size=cfg.runtime.batch_size, progress=cfg.runtime.progress,
                      on_batch=board.on_batch if watched else None, ahead=detect_ahead(cfg, nodes))
    started = time.time()
    from vizoflow.nodes.live import LiveSource  # where dates come from: run.json and analytics metadata
    time_source = "wall clock" if isinstance(source, LiveSource) else getattr(source, "start_time_source", None)
    for collector in (getattr(node, "collector", None) for _, node in nodes):
        if time_source is not None and callable(getattr(collector, "set_start_time_source", None)):
            collector.set_start_time_source(time_source)
    try:
        with graceful_signals(runtime.stop), StatusReporter(board, cfg.status.interval, cfg.status.port, cfg.status.host), \
                review_page(cfg, out, board), trimmer:
            runtime.run()
    finally:
        if isinstance(source, CameraMux):  # each camera's store tables, published at its close, into the site's
            merge_camera_tables(out, source.cameras)
        write_json_atomic(out / "run.json", {
            **runtime.stats.to_dict(),
            "started": started,
            "config": redact(OmegaConf.to_container(cfg, resolve=True)),
            "versions": versions(),
            "inference": inference_info(cfg, nodes),
            "start_time_source": time_source,
            "timezone": cfg.timezone,
            **({"clock_epoch": source.epoch} if isinstance(source, LiveSource) else {}),  # live timestamps + this = time
            **({"clock_epochs": source.epochs} if isinstance(source, CameraMux) else {}),
            **(extra or {}),
        })
    return runtime.stats
