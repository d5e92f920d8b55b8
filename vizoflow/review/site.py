"""What the review page knows of a site: its cameras' layout, its runs, its evidence. Read from the config once."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
from omegaconf import DictConfig, ListConfig, OmegaConf

from vizoflow.cameras import camera_config, camera_names
from vizoflow.evidence.service import OUTBOX_NAME
from vizoflow.review.alerts import AlertBook, OutboxReader
from vizoflow.review.folders import Run, SafeFolder, SiteRuns


def _names(value: Any) -> list[str]:
    """Zone names of a setting that holds one name, a list of them, or a mapping of them."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [*map(str, value.keys()), *(str(v) for v in value.values())]
    return [str(v) for v in value]


@dataclass(frozen=True)
class CameraLayout:
    """One camera's zones and lines as configured, and the settings that name its zones.

    Attributes:
        name: The camera's name (``camera`` of a one-camera site, else its ``cameras:`` entry).
        own: True when the camera is a ``cameras:`` entry (its YAML goes under ``cameras.<name>``).
        zones: Name to ``[[x, y], ...]`` (drawn on ``frame_size``).
        lines: Name to ``[[x1, y1], [x2, y2]]``.
        frame_size: ``[width, height]`` the geometry was drawn on; None: unknown.
        needs: Setting to the zone names it refers to (``rules.staff.zones``: ``[cashier_1]``).
    """

    name: str
    own: bool
    zones: dict[str, list[list[float]]]
    lines: dict[str, list[list[float]]]
    frame_size: list[int] | None
    needs: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def of(cls, cfg: DictConfig, name: str, own: bool) -> CameraLayout:
        """The layout of the camera ``name`` of ``cfg`` (its own config when ``own``)."""
        cam = camera_config(cfg, name) if own else cfg
        # Only these sections are resolved: a camera's URL may come from a variable the page does not need.
        plain = {key: OmegaConf.to_container(cam[key], resolve=True) if isinstance(cam.get(key), DictConfig | ListConfig)
                 else cam.get(key) for key in ("zones", "lines", "frame_size", "rules", "store", "filters")}
        rules, store, filters = plain.get("rules") or {}, plain.get("store") or {}, plain.get("filters") or {}
        needs = {
            "rules.staff.zones": _names((rules.get("staff") or {}).get("zones")),
            "rules.interaction.pairs": _names((rules.get("interaction") or {}).get("pairs")),
            "rules.unattended.zone": _names((rules.get("unattended") or {}).get("zone")),
            "rules.queue.zone": _names((rules.get("queue") or {}).get("zone")),
            "store.service_zones": _names(store.get("service_zones")),
            "filters.masks": _names(filters.get("masks")),
        }
        return cls(name=name, own=own, zones=plain.get("zones") or {}, lines=plain.get("lines") or {},
                   frame_size=plain.get("frame_size"), needs={k: v for k, v in needs.items() if v})


class LiveView:
    """A running pipeline's health and speed per camera, for the cameras page.

    Speed is frames processed a second over the last ``window`` seconds of looks at the
    page (any viewer's), and the average since the start until a second look comes.

    Args:
        board: The run's :class:`~vizoflow.status.StatusBoard`.
        single: The camera's name on a one-camera site (its numbers are the site's).
        window: Seconds of samples the speed is measured over.
    """

    def __init__(self, board: Any, single: str | None = None, window: float = 30.0) -> None:
        self.board = board
        self.single = single
        self.window = window
        self._lock = threading.Lock()
        self._samples: deque[tuple[float, dict[str, float]]] = deque()

    def _fps(self, processed: dict[str, float], uptime: float) -> dict[str, float]:
        now = time.monotonic()
        with self._lock:
            self._samples.append((now, processed))
            while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
                self._samples.popleft()  # keep one sample at least `window` old
            then, before = self._samples[0]
        if now - then >= 1.0:
            return {n: (v - before.get(n, 0.0)) / (now - then) for n, v in processed.items()}
        return {n: v / uptime for n, v in processed.items()} if uptime > 0 else {}

    def cameras(self) -> dict[str, dict[str, Any]]:
        """Camera name to ``healthy``, ``problems`` and ``fps``.

        A camera is unhealthy when a problem names it (``camera 'door' stalled``) or the site
        is unhealthy for a reason that names no camera (``pipeline stuck``, ``disk low``);
        "degraded" notes (a backlog, frames dropped) are shown but keep it healthy.
        """
        healthy, problems = self.board.health()
        snapshot = self.board.snapshot()
        numbers = self.board.cameras()
        if not numbers and self.single is not None:
            numbers = {self.single: snapshot}
        fps = self._fps({n: float(row.get("frames_processed", 0.0)) for n, row in numbers.items()},
                        float(snapshot.get("uptime_seconds", 0.0)))
        site_wide = [p for p in problems if self.single is not None or "camera '" not in p]
        serious = [p for p in site_wide if not p.startswith("degraded")]
        shown = {}
        for name in numbers:
            mine = [p for p in problems if self.single is None and f"camera '{name}'" in p]
            shown[name] = {"healthy": not any(not p.startswith("degraded") for p in mine) and (healthy or not serious),
                           "problems": mine + site_wide, "fps": round(fps[name], 1) if name in fps else None}
        return shown


class ReviewSite:
    """The site as the review page reads it.

    Args:
        name: ``site_name``.
        timezone: The site's time zone (times on the page are in it).
        runs: The site's run folders.
        evidence_dir: ``evidence.dir`` (clips and the outbox).
        pre_roll: ``evidence.pre_roll``: where in a clip its event starts.
        cameras: Each camera's layout, in config order.
        live: The running pipeline's status when the page is served by a live run.
    """

    def __init__(self, name: str, timezone: str, runs: SiteRuns, evidence_dir: Path, pre_roll: float,
                 cameras: list[CameraLayout], live: LiveView | None = None) -> None:
        self.name = name
        self.timezone = timezone
        self.runs = runs
        self.evidence = SafeFolder(evidence_dir)
        self.outbox = OutboxReader(Path(evidence_dir) / OUTBOX_NAME)
        self.pre_roll = pre_roll
        self.cameras = {c.name: c for c in cameras}
        self.live = live

    @classmethod
    def from_config(cls, cfg: DictConfig, run_dir: Path | None = None,
                    board: Any = None) -> ReviewSite:
        """The site of ``cfg``; ``run_dir``/``board``: the live run serving it."""
        serve = cfg.serve
        root = Path(serve.runs_dir) if serve.runs_dir else Path(cfg.output_dir).absolute().parent
        names = camera_names(cfg)
        layouts = [CameraLayout.of(cfg, n, own=True) for n in names] or [CameraLayout.of(cfg, str(cfg.camera), own=False)]
        live = LiveView(board, None if names else str(cfg.camera)) if board is not None else None
        return cls(name=str(cfg.site_name), timezone=str(cfg.timezone), runs=SiteRuns(root, run_dir or serve.run),
                   evidence_dir=Path(cfg.evidence.dir), pre_roll=float(cfg.evidence.pre_roll), cameras=layouts,
                   live=live)

    def alerts(self, run: Run) -> AlertBook:
        """The run's alerts with this site's evidence."""
        single = next(iter(self.cameras)) if len(self.cameras) == 1 and not next(iter(self.cameras.values())).own else None
        return AlertBook(run.path, self.outbox, camera=single)

    def latest_picture(self, run: Run, camera: str) -> Path | None:
        """The camera's ``latest.jpg`` in ``run`` (its own folder on a site with ``cameras:``; a batch: its newest video's)."""
        layout = self.cameras.get(camera)
        if layout is None:
            return None
        found = run.camera_files(camera if layout.own else None).file("latest.jpg")
        if found is None and not layout.own:
            videos = [p for v in run.sub_folders() if (p := SafeFolder(v).file("latest.jpg"))]
            found = max(videos, key=lambda p: p.stat().st_mtime, default=None)
        return found

    def heat_maps(self, run: Run, day: str) -> list[tuple[str | None, str]]:
        """The day's heat maps in ``run`` as ``(camera folder or None, file name)`` (``heatmap_<camera>_<day>.png``)."""
        found = []
        for camera, layout in self.cameras.items():
            folder = run.camera_files(camera if layout.own else None)
            names = sorted(p.name for p in folder.root.glob(f"heatmap_*_{day}.png") if folder.file(p.name))
            found += [(camera if layout.own else None, name) for name in names]
        return sorted(set(found), key=lambda f: (f[0] or "", f[1]))

    def tracks(self, run: Run | None) -> Path | None:
        """Where people stood: ``run``'s tracks table (:meth:`Run.table`), else the newest run's that has one."""
        own = run.table("tracks") if run is not None else None
        return own or next((p for r in self.runs.runs() if (p := r.table("tracks"))), None)

    def drawn_size(self, run: Run | None, camera: str) -> tuple[list[int], tuple[float, float]]:
        """The size the set-up page draws on (the configured one, else the picture's), and video px -> drawn px."""
        layout = self.cameras[camera]
        picture = self.latest_picture(run, camera) if run else None
        image = cv2.imread(str(picture)) if picture else None
        seen = [image.shape[1], image.shape[0]] if image is not None else None
        drawn = layout.frame_size or seen or [1280, 720]
        scale = (drawn[0] / seen[0], drawn[1] / seen[1]) if seen else (1.0, 1.0)
        return list(drawn), scale
