"""The set-up page's work: where people's box bottoms fall, and zones and lines as site YAML that vizoflow accepts.

Installers draw a staff zone where they see the cashier stand, but the rules test the
bottom-centre of each box (the ground point), which behind a counter is the counter's
edge, not the cashier's feet. So the page shows the ground points of a recent run, by
role, and counts them in each zone; a zone that a rule needs and that no ground point
falls in is named.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vizoflow.analytics.footfall import Line
from vizoflow.cameras import NAME
from vizoflow.errors import ConfigError
from vizoflow.review.site import CameraLayout
from vizoflow.zones import Zones

MAX_POINTS = 3000  # ground points sent to the page: enough to see where people stand


def ground_points(tracks: Path, camera: str, scale: tuple[float, float] = (1.0, 1.0),
                  limit: int = MAX_POINTS) -> list[dict[str, Any]]:
    """Bottom-centres of the camera's trusted boxes in a ``tracks.parquet``, evenly thinned to ``limit``.

    Args:
        tracks: The table.
        camera: Its ``camera`` value to keep.
        scale: Multiplies video pixels into the pixels the zones are drawn on.
        limit: Most points returned.

    Returns:
        ``{"x", "y", "role"}`` per point.
    """
    import polars as pl

    table = (pl.scan_parquet(tracks).filter((pl.col("camera") == camera) & pl.col("trusted").fill_null(True))
             .select(((pl.col("x1") + pl.col("x2")) / 2 * scale[0]).round(1).alias("x"),
                     (pl.col("y2") * scale[1]).round(1).alias("y"), pl.col("role")).collect())
    if table.height > limit:
        table = table.gather_every(-(-table.height // limit))
    return table.to_dicts()


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
        out += [f"{pad}  {name}: {json.dumps(points)}" for name, points in self.zones.items()]
        out.append(f"{pad}lines:" + ("" if self.lines else " {}"))
        out += [f"{pad}  {name}: {json.dumps(points)}" for name, points in self.lines.items()]
        return "\n".join(out) + "\n"
