"""A site's cameras: one config per camera, derived from the site's.

A site with several cameras lists them under ``cameras:``, each with what is its
own; everything else comes from the site::

    cameras:
      entrance:
        source: {url: ${oc.env:STORE42_ENTRANCE_URL}}
        frame_size: [768, 432]
        zones: {door: [[...], ...]}
        lines: {door_line: [[...], [...]]}
      checkout:
        source: {url: ${oc.env:STORE42_CHECKOUT_URL}}
        zones: {...}
        rules: {queue: {min_people: 2}}     # only where it differs from the site

A camera's config is the site's config with ``camera`` set to its name and its entry
merged on top; ``zones`` and ``lines`` *replace* the site's (geometry belongs to one
picture: a zone of one camera never applies to another), the rest is merged key by
key. Interpolations such as ``${zones}`` in the graph then resolve to the camera's
own values. ``cameras.<name>: null`` leaves a camera out (``~cameras.checkout`` or
``cameras.checkout=null`` on the command line).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from vizoflow.errors import ConfigError

CAMERA_KEYS = ("source", "zones", "lines", "frame_size", "calibration", "detect", "rules", "filters", "store", "tracker")
REPLACED = ("zones", "lines")  # the camera's own geometry, never merged with the site's
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]*$")  # goes into file names, ids and Prometheus labels


def camera_names(cfg: DictConfig) -> list[str]:
    """The site's enabled cameras in declaration order; empty for a one-camera site.

    Raises:
        ConfigError: a bad name, or an entry that is not a mapping.
    """
    cameras = OmegaConf.select(cfg, "cameras")
    if not cameras:
        return []
    names = []
    for name in cameras:
        if cameras[name] is None:
            continue
        if not NAME.match(str(name)):
            raise ConfigError(f"cameras.{name}: a camera name is letters, digits and '_' (it goes into file names, "
                              f"event ids and metric labels)")
        if not isinstance(cameras[name], DictConfig):
            raise ConfigError(f"cameras.{name} must be a mapping (source, zones, ...), got {cameras[name]!r}")
        names.append(str(name))
    return names


def camera_config(cfg: DictConfig, name: str) -> DictConfig:
    """The config one camera runs with: the site's, its own entry on top.

    Raises:
        ConfigError: the entry has a key a camera cannot set.
    """
    entry = cfg.cameras[name]
    for key in entry:
        if key not in CAMERA_KEYS:
            close = difflib.get_close_matches(str(key), CAMERA_KEYS, n=1) if key != "detector" else []
            hint = f"did you mean '{close[0]}'?" if close else f"a camera sets only: {', '.join(CAMERA_KEYS)}"
            if key == "detector":  # shared by the site's cameras; `detect` (when it looks) is a camera's own
                hint = "one detector serves every camera, set it for the site; " + hint
            raise ConfigError(f"unknown key 'cameras.{name}.{key}': {hint}")
    camera = site_config(cfg)
    camera.camera = name
    camera.camera_dir = "${output_dir}/" + name
    for key in entry:
        if key in REPLACED:
            camera[key] = entry[key]
        else:
            camera[key] = OmegaConf.merge(camera[key], entry[key]) if isinstance(camera.get(key), DictConfig) \
                else entry[key]
    return camera


def merge_camera_tables(out: Path, cameras: list[str]) -> None:
    """The store tables of every camera (``out/<camera>/<table>.parquet``), one each in ``out``.

    Runs when the cameras closed (the tables are published at close, as with one camera).
    """
    from vizoflow.nodes.sinks import merge_tables
    from vizoflow.nodes.store import STORE_TABLES  # heavy (the store's meters): only when merging

    merge_tables(out, {c: out / c for c in cameras}, STORE_TABLES, "camera")


def site_config(cfg: DictConfig) -> DictConfig:
    """The site's config without its cameras (what shared nodes are built from); ``camera`` is null,
    so a shared node takes each frame's or event's own camera."""
    site = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    del site["cameras"]
    site.camera = None
    return site
