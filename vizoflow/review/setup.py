"""The set-up page's work: where people's box bottoms fall, and zones and lines as site YAML that vizoflow accepts.

Installers draw a staff zone where they see the cashier stand, but the rules test the
bottom-centre of each box (the ground point), which behind a counter is the counter's
edge, not the cashier's feet. So the page shows the ground points of a recent run, by
role, and counts them in each zone; a zone that a rule needs and that no ground point
falls in is named.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from vizoflow.analytics.footfall import Line
from vizoflow.cameras import NAME
from vizoflow.errors import ConfigError
from vizoflow.review.site import CameraLayout
from vizoflow.zones import Zones

log = logging.getLogger(__name__)

MAX_POINTS = 3000  # ground points sent to the page: enough to see where people stand


def ground_points(tracks: Path, camera: str, scale: tuple[float, float] = (1.0, 1.0),
                  limit: int = MAX_POINTS) -> list[dict[str, Any]]:
    """Bottom-centres of the camera's trusted boxes in a ``tracks.parquet``, evenly thinned to ``limit``.

    Only the thinned rows are read (a run of days has millions). A table without the
    columns (an older run) or one that cannot be read gives no points, with a warning:
    the page still draws.

    Args:
        tracks: The table.
        camera: Its ``camera`` value to keep.
        scale: Multiplies video pixels into the pixels the zones are drawn on.
        limit: Most points returned.

    Returns:
        ``{"x", "y", "role"}`` per point (``role`` None where the table has none).
    """
    import polars as pl

    try:
        columns = pl.read_parquet_schema(tracks)
        if not {"camera", "x1", "x2", "y2"} <= set(columns):
            log.warning("%s has no box columns: no ground points shown", tracks)
            return []
        trusted = pl.col("trusted").fill_null(True) if "trusted" in columns else pl.lit(True)
        role = pl.col("role") if "role" in columns else pl.lit(None, dtype=pl.String)
        rows = pl.scan_parquet(tracks).filter((pl.col("camera") == camera) & trusted)
        count = rows.select(pl.len()).collect().item()
        table = (rows.gather_every(max(1, -(-count // limit)))
                 .select(((pl.col("x1") + pl.col("x2")) / 2 * scale[0]).round(1).alias("x"),
                         (pl.col("y2") * scale[1]).round(1).alias("y"), role.alias("role")).collect())
    except (pl.exceptions.PolarsError, OSError) as exc:
        log.warning("cannot read ground points from %s: %s", tracks, exc)
        return []
    return table.to_dicts()


class GroundPoints:
    """Ground points per camera from a site's newest tracks table, kept until the table changes.

    Args:
        limit: Most points per camera.
    """

    def __init__(self, limit: int = MAX_POINTS) -> None:
        self.limit = limit
        self._cache: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        self._lock = threading.Lock()  # the server's worker threads share it

    def get(self, tracks: Path | None, camera: str, scale: tuple[float, float]) -> list[dict[str, Any]]:
        """The points of ``camera`` in ``tracks`` (None: no table, no points)."""
        if tracks is None:
            return []
        try:
            key = (str(tracks), tracks.stat().st_mtime_ns, camera, scale)
        except OSError:
            return []
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        points = ground_points(tracks, camera, scale, self.limit)
        with self._lock:
            if len(self._cache) >= 16:
                self._cache.clear()
            self._cache[key] = points
        return points


def _key(name: str) -> str:
    """A YAML mapping key that reads back as the string ``name`` (``no``, ``null``, ``1`` are quoted)."""
    return name if yaml.safe_load(name) == name else json.dumps(name)


def _number(value: Any) -> float | int:
    value = round(float(value), 1)
    return int(value) if value.is_integer() else value


def _points(points: Any, what: str) -> list[list[float | int]]:
    try:
        return [[_number(x), _number(y)] for x, y in points]
    except (TypeError, ValueError):
        raise ConfigError(f"{what}: points must be [[x, y], ...] numbers") from None


class Layout:
    """Zones and lines drawn on the set-up page for one camera, checked as vizoflow checks them.

    Args:
        camera: The camera's configured layout (its name, whether it is a ``cameras:`` entry, what needs which zone).
        zones: Name to ``[[x, y], ...]``.
        lines: Name to two ``[x, y]`` points.
        frame_size: ``[width, height]`` they were drawn on.

    Raises:
        ConfigError: a name is not a plain name, a polygon or line is malformed, or a shape reaches outside the frame.
    """

    def __init__(self, camera: CameraLayout, zones: Mapping[str, Sequence[Sequence[float]]],
                 lines: Mapping[str, Sequence[Sequence[float]]], frame_size: Sequence[int]) -> None:
        self.camera = camera
        for name in [*zones, *lines]:
            if not NAME.match(str(name)):
                raise ConfigError(f"'{name}': a zone or line name is letters, digits and _, starting with a letter or digit")
        if set(zones) & set(lines):
            raise ConfigError(f"{', '.join(sorted(set(zones) & set(lines)))}: a zone and a line cannot share a name")
        self.zones = {str(n): _points(p, f"zone '{n}'") for n, p in zones.items()}
        self.lines = {str(n): _points(p, f"line '{n}'") for n, p in lines.items()}
        try:
            w, h = (int(v) for v in frame_size)
        except (TypeError, ValueError):
            raise ConfigError(f"frame_size must be [width, height], got {frame_size!r}") from None
        self.frame_size = [w, h]
        checked = Zones(self.zones, drawn_size=self.frame_size)  # vizoflow's own zone checks
        checked.check_inside((w, h))
        for name, points in self.lines.items():
            Line(name, points)
            if any(not (0 <= x <= w and 0 <= y <= h) for x, y in points):
                raise ConfigError(f"line '{name}' reaches outside the {w}x{h} frame")

    def missing(self) -> list[str]:
        """Settings of the site that name a zone this layout no longer has (the site would not start)."""
        return [f"{setting} names {', '.join(absent)}, which is not drawn"
                for setting, names in self.camera.needs.items()
                if (absent := [n for n in names if n not in self.zones])]

    def inside(self, points: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
        """Per zone, how many of ``points`` (ground points) fall in it, by role."""
        import cv2

        counts: dict[str, dict[str, int]] = {}
        for name, polygon in self.zones.items():
            poly = np.asarray(polygon, dtype=np.float32)
            row: dict[str, int] = {}
            for p in points:
                if cv2.pointPolygonTest(poly, (float(p["x"]), float(p["y"])), False) >= 0:
                    role = str(p.get("role") or "unknown")
                    row[role] = row.get(role, 0) + 1
            counts[name] = row
        return counts

    def warnings(self, points: list[dict[str, Any]]) -> list[str]:
        """What an installer should look at: missing zones, and zones a rule needs with no ground point in them."""
        notes = self.missing()
        if points:
            counts = self.inside(points)
            needed = {n for names in self.camera.needs.values() for n in names if n in self.zones}
            notes += [f"zone '{n}' is used by the rules but no box bottom of the last run falls in it "
                      "(the rules test where a box ends, e.g. the counter's edge, not where the head is)"
                      for n in sorted(needed) if not counts.get(n)]
        return notes

    def yaml(self) -> str:
        """The site YAML to paste: ``frame_size``, ``zones`` and ``lines`` (under ``cameras.<name>`` for a camera entry)."""
        pad = "    " if self.camera.own else ""
        out = ["cameras:", f"  {self.camera.name}:"] if self.camera.own else []
        out.append(f"{pad}frame_size: {json.dumps(self.frame_size)}   # the frames these were drawn on")
        out.append(f"{pad}zones:" + ("" if self.zones else " {}"))
        out += [f"{pad}  {_key(name)}: {json.dumps(points)}" for name, points in self.zones.items()]
        out.append(f"{pad}lines:" + ("" if self.lines else " {}"))
        out += [f"{pad}  {_key(name)}: {json.dumps(points)}" for name, points in self.lines.items()]
        return "\n".join(out) + "\n"
