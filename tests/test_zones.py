"""Zones drawn on one frame size, used on another: scaled, refused, re-checked."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import supervision as sv

from vizoflow.errors import ConfigError
from vizoflow.zones import Zones

SQUARE = {"till": [[100, 100], [200, 100], [200, 200], [100, 200]]}


def _feet(x: float, y: float) -> sv.Detections:
    """One box whose bottom centre (ground point) is at ``(x, y)``."""
    return sv.Detections(xyxy=np.array([[x - 5, y - 20, x + 5, y]], dtype=float))


def test_same_size_is_used_as_drawn():
    zones = Zones(SQUARE, drawn_size=[320, 240])
    zones.check_inside((320, 240))
    assert zones.polygons["till"].tolist() == SQUARE["till"]


def test_scaled_to_a_larger_frame_of_the_same_aspect(caplog):
    zones = Zones(SQUARE, drawn_size=[320, 240])
    with caplog.at_level(logging.WARNING, logger="vizoflow.zones"):
        zones.check_inside((640, 480))
    assert zones.polygons["till"].tolist() == [[200, 200], [400, 200], [400, 400], [200, 400]]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "320x240" in lines[0] and "640x480" in lines[0] and "scaled" in lines[0]
    # a ground point inside the scaled zone, not inside the drawn one
    assert zones.contains("till", _feet(300, 300)).tolist() == [True]


def test_aspect_within_one_percent_is_scaled():
    zones = Zones(SQUARE, drawn_size=[768, 432])
    zones.check_inside((1280, 720))  # 16:9 both
    zones2 = Zones(SQUARE, drawn_size=[768, 432])
    zones2.check_inside((1920, 1088))  # 1088 = 1080 rounded to the codec's 16 rows: 0.7 % off
    assert zones2.frame_size == (1920, 1088)


def test_other_aspect_is_refused_in_one_line():
    zones = Zones(SQUARE, drawn_size=[320, 240])
    with pytest.raises(ConfigError) as err:
        zones.check_inside((1280, 720))
    message = str(err.value)
    assert "\n" not in message and "320x240" in message and "1280x720" in message and "aspect" in message


def test_resolution_change_is_rechecked_without_drift(caplog):
    """A live camera reconnecting at another resolution: zones follow, from the drawn ones."""
    zones = Zones({"lane": [[33, 17], [301, 17], [301, 233], [33, 233]]}, drawn_size=(320, 240))
    zones.check_inside((320, 240))
    drawn = zones.polygons["lane"].tolist()
    cached = zones.contains("lane", _feet(100, 100))  # builds the cached PolygonZone
    assert cached.tolist() == [True]
    with caplog.at_level(logging.WARNING, logger="vizoflow.zones"):
        for size in [(640, 480), (176, 132), (1024, 768), (320, 240)]:
            zones.check_inside(size)
            zones.check_inside(size)  # same size again: nothing to do, nothing logged
    assert zones.polygons["lane"].tolist() == drawn  # back to the drawn size: no rounding drift
    assert len(caplog.records) == 3  # one line per scaled size
    zones.check_inside((640, 480))
    assert zones.contains("lane", _feet(100, 100)).tolist() == [True]
    assert zones.contains("lane", _feet(60, 30)).tolist() == [False]  # was inside at 320x240, not at 640x480
    with pytest.raises(ConfigError):
        zones.check_inside((1280, 720))  # reconnected as 16:9
    with pytest.raises(ConfigError):
        zones.check_inside((1280, 720))  # and stays refused


def test_unknown_drawn_size_keeps_the_old_check():
    zones = Zones(SQUARE)
    zones.check_inside((640, 480))
    assert zones.polygons["till"].tolist() == SQUARE["till"]
    with pytest.raises(ConfigError, match="outside the 150x150 frame"):
        zones.check_inside((150, 150))


@pytest.mark.parametrize("bad", [[320], [0, 240], ["a", 240], 320])
def test_malformed_drawn_size_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="frame_size"):
        Zones(SQUARE, drawn_size=bad)


@pytest.mark.parametrize("site", ["demo", "caviar", "intel_table", "store42"])
def test_every_site_records_the_frame_size_its_zones_were_drawn_on(site, compose_cfg):
    from omegaconf import OmegaConf

    from tests.conftest import ROOT
    from vizoflow.cameras import camera_config, camera_names
    from vizoflow.video import probe

    cfg = compose_cfg(f"+site={site}")
    configs = [camera_config(cfg, name) for name in camera_names(cfg)] or [cfg]  # store42: each camera's own
    for camera in configs:
        size = OmegaConf.to_container(camera.frame_size)
        zones = Zones(OmegaConf.to_container(camera.zones, resolve=True), drawn_size=size)
        zones.check_inside(tuple(size))  # the zones lie inside the frame they were drawn on
        if "path" in camera.source:  # recorded footage: the recorded size is the drawn one
            info = probe((ROOT / camera.source.path).resolve())
            assert [info.width, info.height] == size


def test_a_refused_size_stays_refused_and_an_unchanged_size_is_free():
    zones = Zones(SQUARE)
    with pytest.raises(ConfigError, match="outside"):
        zones.check_inside((150, 150))
    with pytest.raises(ConfigError, match="outside"):
        zones.check_inside((150, 150))  # asked again (a node calling it on every frame): still refused
    zones.check_inside((320, 240))
    zones.polygons["till"][0, 0] = 10_000  # a cheap call on the same size does not re-validate
    zones.check_inside((320, 240))
