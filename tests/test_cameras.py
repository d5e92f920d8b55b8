"""A camera's config: the site's, with the camera's own geometry and overrides on top."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from vizoflow.cameras import camera_config, camera_names, site_config
from vizoflow.errors import ConfigError
from vizoflow.pipeline import camera_zones

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
    assert list(camera_zones(door).polygons) == ["entry"]  # what the camera's nodes get (uses: [zones])
    assert list(camera_zones(till).polygons) == ["lane"]
    assert door.graph.queue.settings.min_people == 2  # settings: ${rules.queue} means the camera's values
    assert (door.source.path, till.source.path) == ("door.mp4", "till.mp4")
    assert door.graph.store.node.camera == "door" and door.graph.store.node.output_dir.endswith("/door")
    assert till.graph.tracks.node.camera == "till"
    site = site_config(cfg)
    assert "cameras" not in site and site.camera is None and site.graph.tracks.node.camera is None


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
    with pytest.raises(ConfigError, match="one detector serves every camera.*a camera sets only: source, zones"):
        camera_config(cfg, "till")
    del cfg.cameras.till.detector
    cfg.cameras.till.detect = {"fps": None}  # when the detector looks is a camera's own: a corridor counter at full rate
    assert camera_config(cfg, "till").detect.fps is None and cfg.detect.fps == 5


@pytest.mark.slow  # the detector over two real clips
def test_two_recorded_cameras_in_one_run_keep_their_own_zones_and_share_one_metrics_file(compose_cfg, tmp_path):
    """Zones of one camera never see the other's people: different zone names per camera, checked in the day file."""
    import json

    import polars as pl

    from tests.conftest import clip
    from vizoflow.pipeline import run_pipeline

    cfg = compose_cfg(f"evidence.dir={tmp_path}/segments", "runtime.progress=false", "graph.preview=null",
                      "tracker=bytetrack", "source.stride=3", "source.path=unused",
                      f"+cameras.campus.source.path={clip('tud-campus')}",
                      "+cameras.campus.zones={path: [[0,240],[640,240],[640,480],[0,480]]}",
                      f"+cameras.shop.source.path={clip('caviar-shop-front')}",
                      "+cameras.shop.zones={floor: [[0,0],[384,0],[384,288],[0,288]]}")
    stats = run_pipeline(cfg)
    assert stats.status == "ok" and {c: r["frames"] > 20 for c, r in stats.cameras.items()} == {"campus": True,
                                                                                                "shop": True}
    day = json.loads((tmp_path / "analytics_metrics.json").read_text())
    zones = {camera: set(section["zones"]) for camera, section in day["occupancy_metrics"]["cameras"].items()}
    assert zones == {"campus": {"camera", "path"}, "shop": {"camera", "floor"}}
    assert day["occupancy_metrics"]["cameras"]["campus"]["zones"]["path"]["all"]["max"] >= 1
    dwell = pl.read_parquet(tmp_path / "dwell.parquet")
    assert set(dwell.filter(pl.col("camera") == "campus")["zone"]) <= {"path"}
    assert set(dwell.filter(pl.col("camera") == "shop")["zone"]) <= {"floor"}
    tracks = pl.read_parquet(tmp_path / "tracks.parquet")
    assert set(tracks["camera"]) == {"campus", "shop"}
    assert list((tmp_path / "campus").glob("heatmap_campus_*.png"))  # a camera's own files in its folder
