"""Helpers shared by the benchmark scripts: run a vizoflow setting in-process, score it."""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from hydra import compose, initialize_config_dir
from omegaconf import open_dict

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
FOOTAGE = ROOT.parent / "shared" / "footage"
sys.path[:0] = [str(ROOT), str(BENCH)]  # run as `python bench/x.py` from anywhere

from vizoflow.cli import CONF_DIR  # noqa: E402
from vizoflow.graph import build_nodes  # noqa: E402
from vizoflow.mot import TrackingScore, score_tracks  # noqa: E402
from vizoflow.pipeline import build_source, site_services  # noqa: E402
from vizoflow.runtime import Runtime  # noqa: E402

# The settings compared. "stock" is exactly the baseline's components; "today" is the
# pipeline before the detect gate and the reuse of appearance features.
EVERY_FRAME = ["detect.fps=null", "detect.motion=false"]
TODAY = [*EVERY_FRAME, "tracker.embed_refresh_seconds=null"]
SETTINGS: dict[str, list[str]] = {
    "deepsort stock embedder": ["tracker.embedder=mobilenet", *TODAY],
    "today: every frame, every feature new": TODAY,
    "features reused 1 s, every frame": EVERY_FRAME,
    "64x128 embedder, every frame": [*TODAY, "tracker.embed_width=64", "tracker.embed_height=128"],
    "96x192 embedder, every frame": [*TODAY, "tracker.embed_width=96", "tracker.embed_height=192"],
    "bf16 embedder, every frame": [*TODAY, "tracker.precision=bf16"],
    "deepsort (default): detect 5 fps + motion": [],
    "features fresh at any touch of another box (IoU > 0.05)": ["tracker.embed_near_iou=0.05"],
    "detect 5 fps, no motion gating": ["detect.motion=false"],
    "detect 10 fps + motion": ["detect.fps=10"],
    "bytetrack, every frame": ["tracker=bytetrack", *EVERY_FRAME],
    "bytetrack": ["tracker=bytetrack"],
}


@dataclass
class Measured:
    """One run of one setting on one clip."""

    frames: int
    seconds: float
    node_seconds: dict[str, float] = field(default_factory=dict)
    tracks: pl.DataFrame | None = None
    processed: set[int] | None = None
    video_seconds: float = 0.0
    events: int = 0  # events found (full graph only)
    appearance: dict[str, float] = field(default_factory=dict)  # the tracker's features computed and reused

    @property
    def fps(self) -> float:
        """Frames of the video covered per second (a stride of 2 covers two per processed frame)."""
        return self.frames / self.seconds

    def overhead(self) -> float:
        """Share of the run spent outside detector and tracker (source waits, other nodes, glue)."""
        inside = self.node_seconds.get("detect", 0.0) + self.node_seconds.get("track", 0.0)
        return max(0.0, 1.0 - inside / self.seconds)


def zone_of(video: Path) -> list[list[int]]:
    """Lower half of the picture: the zone both the baseline and vizoflow count people in."""
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        w, h = stream.codec_context.width, stream.codec_context.height
    return [[0, h // 2], [w, h // 2], [w, h], [0, h]]


def run_vizoflow(video: Path, overrides: list[str], full_graph: bool = False) -> Measured:
    """Run vizoflow on ``video``: detect, track, zone count and the tracks table.

    With ``full_graph`` every default node runs too (rules, metrics, evidence), as
    ``python -m vizoflow`` would, except the preview video.
    """
    with tempfile.TemporaryDirectory() as out:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=[f"output_dir={out}", f"source.path={video}",
                                               f"evidence.dir={out}/segments", "runtime.progress=false",
                                               "graph.preview=null", *overrides])
        if not full_graph:
            for name in list(cfg.graph):
                if name not in ("gate", "detect", "track", "appearance", "identity", "people", "roles", "tracks"):
                    cfg.graph[name] = None
        with open_dict(cfg):
            cfg.graph.count = {"node": {"_target_": "zone_count.ZoneCount", "polygon": zone_of(video)},
                               "after": ["track"]}
        with site_services(cfg) as services:
            nodes = build_nodes(cfg.graph, services=services)
            source = build_source(cfg)
            video_seconds = source.total_frames / source.fps
            runtime = Runtime(source, nodes, batch_size=cfg.runtime.batch_size, progress=False)
            stats = runtime.run()
        tracks = pl.read_parquet(Path(out) / "tracks.parquet")
        events = Path(out) / "events.parquet"
        found = pl.read_parquet(events)["event_id"].n_unique() if events.exists() else 0
        stride = int(cfg.source.stride)
        looked = dict(nodes)["count"].frames  # frames the detector looked at (stride and detect gate)
        appearance = getattr(dict(nodes)["track"], "status", dict)()
    total = stats.frames * stride
    return Measured(frames=total, seconds=stats.seconds, node_seconds=dict(stats.node_seconds), tracks=tracks,
                    processed=looked if len(looked) < total else None, video_seconds=video_seconds, events=found,
                    appearance=appearance)


def score(measured: Measured, clip: str, ids: str = "track_id") -> TrackingScore | None:
    """Tracking quality against the clip's ``gt.txt``, or None when it has none.

    ``ids``: ``track_id`` scores the tracker's ids, ``person_id`` the identity layer's.
    """
    gt = FOOTAGE / clip / "gt.txt"
    if not gt.exists() or measured.tracks is None:
        return None
    return score_tracks(measured.tracks.with_columns(track_id=measured.tracks[ids]), gt, processed=measured.processed)
