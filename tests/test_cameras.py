"""A camera's config: the site's, with the camera's own geometry and overrides on top."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from vizoflow.cameras import camera_config, camera_names, site_config
from vizoflow.errors import ConfigError

SITE = ["+cameras.door.source.path=door.mp4", "+cameras.door.zones={entry: [[0,0],[10,0],[10,10]]}",
        "+cameras.door.rules.queue.min_people=2", "+cameras.till.source.path=till.mp4",
        "+cameras.till.zones={lane: [[0,0],[5,0],[5,5]]}", "+zones.site_zone=[[0,0],[1,0],[1,1]]",
        "rules.queue.min_seconds=7"]


def test_each_camera_gets_its_own_zones_name_and_overrides_and_the_graph_resolves_to_them(compose_cfg):
    cfg = compose_cfg(*SITE)
    assert camera_names(cfg) == ["door", "till"]
    door, till = camera_config(cfg, "door"), camera_config(cfg, "till")
    assert list(door.zones) == ["entry"] and list(till.zones) == ["lane"]  # replaced, never the site's or the other's
    assert door.rules.queue.min_people == 2 and till.rules.queue.min_people == 3  # merged over the site's
    assert door.rules.queue.min_seconds == till.rules.queue.min_seconds == 7
    assert list(door.graph.roles.node.zones) == ["entry"]  # ${zones} in the graph means the camera's zones
    assert list(till.graph.queue.node.zones) == ["lane"]
    assert (door.source.path, till.source.path) == ("door.mp4", "till.mp4")
    assert door.graph.store.node.camera == "door" and door.graph.store.node.output_dir.endswith("/door")
    assert till.graph.tracks.node.camera == "till"
    site = site_config(cfg)
    assert "cameras" not in site and site.camera is None and site.graph.deliver.node.camera is None


def test_a_camera_set_to_null_is_left_out_and_no_cameras_is_a_one_camera_site(compose_cfg):
    assert camera_names(compose_cfg(*SITE, "cameras.till=null")) == ["door"]
    assert camera_names(compose_cfg()) == []


def test_a_key_a_camera_cannot_set_is_named_with_the_closest_one(compose_cfg):
    cfg = compose_cfg(*SITE)
    OmegaConf.set_struct(cfg, False)
    cfg.cameras.door.zonse = {}
    with pytest.raises(ConfigError, match=r"unknown key 'cameras.door.zonse': did you mean 'zones'\?"):
        camera_config(cfg, "door")
    cfg.cameras.till.detector = {"conf": 0.3}  # one detector for the site: not a camera's own
    with pytest.raises(ConfigError, match="a camera sets only: source, zones"):
        camera_config(cfg, "till")
