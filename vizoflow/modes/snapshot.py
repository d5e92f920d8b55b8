"""``mode=snapshot``: the source's first frame with every zone drawn, to check polygons before going live."""

from __future__ import annotations

from pathlib import Path

import cv2
from omegaconf import DictConfig, OmegaConf

from vizoflow.errors import ConfigError, VizoflowError
from vizoflow.nodes.annotate import Annotator
from vizoflow.pipeline import build_source
from vizoflow.zones import Zones


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
