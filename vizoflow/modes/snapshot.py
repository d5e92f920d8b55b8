"""``mode=snapshot``: the source's first frame with every zone drawn, to check polygons before going live."""

from __future__ import annotations

from pathlib import Path

import cv2
from omegaconf import DictConfig

from vizoflow.errors import ConfigError, VizoflowError
from vizoflow.nodes.annotate import Annotator
from vizoflow.pipeline import build_source, camera_zones


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
    zones = camera_zones(cfg)
    zones.check_inside(frame.size)
    path = out / "snapshot.png"
    if not cv2.imwrite(str(path), Annotator(zones).draw_zones(frame.image.copy())):
        raise VizoflowError(f"could not write {path}")
    return path
