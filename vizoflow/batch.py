"""Batch mode: many archived videos, one output folder each, merged tables, resumable, cached.

``python -m vizoflow +site=intel_table mode=batch "source.path=/archive/*.mp4"``

* Each video runs on its own into ``<output_dir>/<video name>/`` (the usual outputs and
  ``run.json``). A video whose ``run.json`` says ``ok`` is skipped on the next run
  unless ``batch.redo=true``, so an interrupted batch resumes where it stopped.
* With ``batch.cache`` on (default), detection and tracking results are stored in the
  track cache (:mod:`vizoflow.cache`); a later run with the same video and detector /
  tracker settings replays them and runs only the nodes that do not need the video
  itself (rules, metrics, tables): seconds instead of minutes per video.
* At the end ``tracks.parquet``, ``events.parquet`` and the store tables (footfall,
  occupancy, dwell, service, heatmap) of every video are merged into
  ``<output_dir>/`` with a ``video`` column, and events are scored against labels when
  ``eval.labels`` names a CSV (:mod:`vizoflow.evaluate`).
* A site with several cameras (``cameras:``) is an archive with a folder per camera:
  ``source.path=/archive`` reads ``/archive/<camera>/`` for every camera that does not
  name its own ``source.path``; each camera's videos run with that camera's config into
  ``<output_dir>/<camera>/<video>/``, and the site's tables gain a ``camera`` column
  (:class:`SiteBatch`). The track cache works per video as with one camera.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf, open_dict

from vizoflow.cache import CachedSource, TrackCache, TrackRecorder, cache_key, file_digest, video_frames
from vizoflow.cameras import camera_config, camera_names
from vizoflow.errors import ConfigError, VizoflowError
from vizoflow.evaluate import detected_events, label_video_names, load_labels, score_events
from vizoflow.graph import build_nodes, node_config, topological_order
from vizoflow.nodes.sinks import merge_tables
from vizoflow.nodes.sources import expand_videos
from vizoflow.nodes.store import STORE_TABLES
from vizoflow.reid import default_cache_dir

log = logging.getLogger(__name__)


@dataclass
class VideoResult:
    """What happened to one video of a batch."""

    video: str
    name: str
    status: str  # ok | skipped | failed
    frames: int = 0
    seconds: float = 0.0
    from_cache: bool = False
    error: str | None = None


def video_names(videos: list[Path], source: str) -> list[str]:
    """A stable, unique folder name per video: its path below the batch root, ``/`` as ``__``.

    The root is the folder given, or the part of a glob before its first wildcard, so
    names do not change when files are added (a resumed batch finds its folders).
    """
    if Path(source).is_file():
        return [videos[0].stem]
    magic = next((i for i, ch in enumerate(source) if ch in "*?["), None)
    if magic is None:  # a folder
        root = Path(source)
    else:  # "/a/b/*.mp4" -> /a/b ; "/a/cam*/x.mp4" -> /a
        prefix = source[:magic]
        root = Path(prefix) if prefix.endswith("/") else Path(prefix).parent
    root = Path(os.path.abspath(root))  # abspath, not resolve: symlinked videos stay below the root
    return ["__".join(Path(os.path.abspath(v)).relative_to(root).with_suffix("").parts) for v in videos]


def needs_video(node_cfg: Any) -> bool:
    """True for nodes that work on the video itself (pixels, or clips cut from it)."""
    target = node_cfg.get("_target_") if node_cfg is not None else None
    try:
        return bool(target) and bool(getattr(get_class(target), "needs_video", False))
    except Exception:  # noqa: BLE001 - an unknown class is reported by build_nodes, with its name
        return False


def recorded_prefix(cfg: DictConfig) -> list[str]:
    """The first graph entries, in order, that work on pixels (the detector, the tracker and pixel
    measures right after it): what the track cache records and a replay stands in for."""
    prefix = []
    for name in topological_order(cfg.graph):
        if not needs_video(cfg.graph[name]["node"]):
            break
        prefix.append(name)
    return prefix


def replay_graph(cfg: DictConfig) -> DictConfig:
    """The graph without the nodes that need the video (detector, tracker, clips, preview)."""
    graph = OmegaConf.create(OmegaConf.to_container(cfg.graph, resolve=False))
    skipped = [name for name in topological_order(cfg.graph) if needs_video(cfg.graph[name]["node"])]
    for name in skipped:
        graph[name] = None
    log.info("replaying tracks from the cache; not run: %s", ", ".join(skipped))
    with open_dict(cfg):
        cfg.graph = graph
    return cfg.graph


class BatchRunner:
    """Runs ``cfg`` over every video of ``cfg.source.path``; see the module docstring.

    Args:
        cfg: The composed config (``batch`` and ``eval`` sections included).
    """

    def __init__(self, cfg: DictConfig) -> None:
        if "path" not in cfg.source:
            raise ConfigError("mode=batch needs recorded video: source=file with source.path (a file, folder or glob)")
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        self.videos = expand_videos(str(cfg.source.path))
        self.names = video_names(self.videos, str(cfg.source.path))

    def run(self) -> list[VideoResult]:
        """Process (or skip) every video, merge the tables, evaluate when labels are given."""
        from vizoflow.executors import build_executor

        self.out.mkdir(parents=True, exist_ok=True)
        plain = OmegaConf.to_container(self.cfg, resolve=True)
        jobs = [(plain, str(video), str(self.out / name), name) for video, name in zip(self.videos, self.names)]
        batch = self.cfg.batch
        with build_executor(batch.executor, batch.ray_address, batch.ray_cpus) as executor:
            results = executor.map(run_video, jobs, progress=bool(self.cfg.runtime.progress))
        merge_tables(self.out, {r.name: self.out / r.name for r in results if r.status in ("ok", "skipped")},
                     SITE_TABLES, "video")
        (self.out / "batch.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
        if self.cfg.eval.labels:
            self.evaluate()
        return results

    def evaluate(self) -> pl.DataFrame:
        """Score the merged events against ``eval.labels``; writes ``evaluation.parquet`` and ``.json``."""
        labels = label_video_names(load_labels(self.cfg.eval.labels), dict(zip(self.names, self.videos)))
        labels = labels.filter(pl.col("video").is_in(self.names))  # labels of other videos are not this batch's
        events_path = self.out / "events.parquet"
        events = pl.read_parquet(events_path) if events_path.exists() else pl.DataFrame(
            schema={"video": pl.String, "kind": pl.String, "phase": pl.String, "started_at": pl.Float64,
                    "duration": pl.Float64})
        table = score_events(labels, detected_events(events), iou=float(self.cfg.eval.iou))
        table.write_parquet(self.out / "evaluation.parquet")
        (self.out / "evaluation.json").write_text(json.dumps(table.to_dicts(), indent=1))
        return table


class SiteBatch:
    """Batch over a several-camera archive: one :class:`BatchRunner` per camera, the site's tables merged.

    Args:
        cfg: The composed config of a site with ``cameras:``.
    """

    def __init__(self, cfg: DictConfig) -> None:
        if "path" not in cfg.source:
            raise ConfigError("mode=batch needs recorded video: source=file with source.path (the archive, "
                              "a folder per camera)")
        self.out = Path(cfg.output_dir)
        self.cameras: dict[str, BatchRunner] = {}
        for name in camera_names(cfg):
            camera = camera_config(cfg, name)
            own = (cfg.cameras[name].get("source") or {}).get("path")
            if own is None:  # the archive's folder of this camera, read with the site's file source
                camera.source = OmegaConf.merge(site_source(cfg), {"path": str(Path(str(cfg.source.path)) / name)})
            camera.output_dir = str(self.out / name)
            camera.camera_dir = "${output_dir}"  # each video has its folder below the camera's already
            self.cameras[name] = BatchRunner(camera)

    def run(self) -> list[VideoResult]:
        """Every camera's batch, then the site's tables with a ``camera`` column; results named ``camera/video``."""
        results = []
        for name, runner in self.cameras.items():
            for r in runner.run():
                r.name = f"{name}/{r.name}"
                results.append(r)
        merge_tables(self.out, {c: self.out / c for c in self.cameras}, SITE_TABLES, "camera")
        (self.out / "batch.json").write_text(json.dumps([asdict(r) for r in results], indent=1))
        return results


def site_source(cfg: DictConfig) -> DictConfig:
    """The site's own ``source`` (a file source in batch), without interpolations to the camera."""
    return OmegaConf.create(OmegaConf.to_container(cfg.source, resolve=True))


def batch_runner(cfg: DictConfig) -> BatchRunner | SiteBatch:
    """The batch of ``cfg``: per camera for a site with several, else over ``source.path``."""
    return SiteBatch(cfg) if camera_names(cfg) else BatchRunner(cfg)


def run_video(cfg_plain: dict[str, Any], video: str, out: str, name: str) -> VideoResult:
    """One video of a batch, in this process (an executor may run it elsewhere)."""
    from vizoflow.pipeline import run_pipeline, site_services

    cfg = OmegaConf.create(cfg_plain)
    run_json = Path(out) / "run.json"
    if not cfg.batch.redo and run_json.exists():
        try:
            if json.loads(run_json.read_text()).get("status") == "ok":
                return VideoResult(video, name, "skipped")
        except ValueError:
            pass  # unreadable: run it again
    with open_dict(cfg):
        cfg.source.path = video
        cfg.output_dir = out
        for entry in cfg.graph.values():
            if entry is not None:
                _retarget_paths(entry["node"], cfg_plain["output_dir"], out)
    started = time.perf_counter()
    try:
        source, graph, recorder, prefix = None, cfg.graph, None, []
        if cfg.batch.cache:
            cache = TrackCache(cfg.batch.cache_dir or default_cache_dir() / "tracks")
            prefix = recorded_prefix(cfg)
            recorded = {name: OmegaConf.to_container(node_config(cfg.graph[name]), resolve=True)
                        for name in prefix if name not in ("detect", "track")}  # those two are keyed as such
            key = cache_key(file_digest(video), cfg.detector, cfg.tracker, int(cfg.source.stride), recorded)
            frames = video_frames(video, int(cfg.source.stride))
            entry = cache.get(key, frames)
            if entry is not None:
                source, graph = CachedSource(entry), replay_graph(cfg)
            elif "track" not in prefix:
                log.warning("no graph entry named 'track' among the first nodes: nothing to cache")
            else:  # after the tracker and the pixel nodes that follow it, before the first that needs no pixels
                recorder = TrackRecorder(cache, key, {"video": video}, frames)
        from_cache = source is not None
        with site_services(cfg, graph, deliver=not from_cache) as services:  # a replay delivers nothing
            nodes = build_nodes(graph, services=services)
            if recorder is not None:
                nodes.insert(len(prefix), ("track_cache", recorder))
            stats = run_pipeline(cfg, source=source, nodes=nodes, extra={"from_cache": from_cache}, services=services)
    except VizoflowError as exc:
        log.error("%s failed: %s", name, exc)
        return VideoResult(video, name, "failed", seconds=time.perf_counter() - started, error=str(exc))
    return VideoResult(video, name, stats.status, stats.frames, time.perf_counter() - started, from_cache, stats.error)


def _retarget_paths(node: DictConfig, old: str, new: str) -> None:
    """Point a node's output paths (resolved under the batch folder) into the video's folder."""
    for key, value in node.items():
        if isinstance(value, str) and (value == old or value.startswith(old + "/")):  # a folder or a file in it
            node[key] = new + value[len(old):]


SITE_TABLES = ("tracks", "events", *STORE_TABLES)


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
    lines.append(f"outputs in {out}: per-video folders, tracks.parquet, events.parquet, store tables, batch.json")
    return "\n".join(lines)
