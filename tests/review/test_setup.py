from pathlib import Path

import polars as pl
import pytest
import yaml

from vizoflow.errors import ConfigError
from vizoflow.review.setup import Layout, ground_points
from vizoflow.review.site import CameraLayout

TILL = CameraLayout(name="till", own=False, zones={}, lines={}, frame_size=[320, 240],
                    needs={"rules.staff.zones": ["cashier"], "rules.queue.zone": ["lane"]})
SQUARE = [[10, 10], [100, 10], [100, 100], [10, 100]]


def test_the_yaml_of_a_one_camera_site_is_top_level_and_loads_back():
    layout = Layout(TILL, {"cashier": SQUARE, "lane": [[150, 20], [300, 20.25], [300, 200]]},
                    {"door": [[5, 230], [5, 120]]}, [320, 240])
    loaded = yaml.safe_load(layout.yaml())
    assert loaded == {"frame_size": [320, 240], "zones": {"cashier": SQUARE, "lane": [[150, 20], [300, 20.2], [300, 200]]},
                      "lines": {"door": [[5, 230], [5, 120]]}}
    assert layout.missing() == []


def test_the_yaml_of_a_camera_entry_goes_under_its_name():
    own = CameraLayout(name="entrance", own=True, zones={}, lines={}, frame_size=None)
    loaded = yaml.safe_load(Layout(own, {}, {"door": [[0, 0], [10, 10]]}, [64, 48]).yaml())
    assert loaded == {"cameras": {"entrance": {"frame_size": [64, 48], "zones": {}, "lines": {"door": [[0, 0], [10, 10]]}}}}


@pytest.mark.parametrize(("zones", "lines", "message"), [
    ({"bad name": SQUARE}, {}, "letters, digits and _"),
    ({"../x": SQUARE}, {}, "letters, digits and _"),
    ({"a": [[1, 1], [2, 2]]}, {}, "at least 3"),
    ({"a": [[1, 1], [2, "x"], [3, 3]]}, {}, "numbers"),
    ({"a": [[1, 1], [500, 2], [3, 3]]}, {}, "outside"),
    ({}, {"door": [[1, 1], [1, 1]]}, "distinct"),
    ({}, {"door": [[1, 1], [400, 1]]}, "outside"),
    ({"door": SQUARE}, {"door": [[1, 1], [2, 2]]}, "share a name"),
])
def test_what_vizoflow_would_refuse_is_refused_here(zones, lines, message):
    with pytest.raises(ConfigError, match=message):
        Layout(TILL, zones, lines, [320, 240])


def test_zones_the_rules_name_must_be_drawn_and_hold_ground_points():
    layout = Layout(TILL, {"cashier": SQUARE}, {}, [320, 240])
    assert layout.missing() == ["rules.queue.zone names lane, which is not drawn"]
    points = [{"x": 50, "y": 50, "role": "staff"}, {"x": 60, "y": 60, "role": "customer"}, {"x": 200, "y": 200, "role": None}]
    assert layout.inside(points) == {"cashier": {"staff": 1, "customer": 1}}
    assert not any("cashier" in w and "no box bottom" in w for w in layout.warnings(points))
    away = Layout(TILL, {"cashier": [[250, 150], [260, 150], [260, 160]], "lane": SQUARE}, {}, [320, 240])
    assert any("zone 'cashier'" in w and "no box bottom" in w for w in away.warnings(points))


def test_ground_points_are_box_bottoms_of_trusted_boxes_of_the_camera(tmp_path: Path):
    path = tmp_path / "tracks.parquet"
    pl.DataFrame({"camera": ["till", "till", "till", "door"], "x1": [10.0, 20.0, 0.0, 5.0], "x2": [30.0, 40.0, 2.0, 7.0],
                  "y2": [100.0, 110.0, 50.0, 60.0], "role": ["staff", "customer", "customer", "staff"],
                  "trusted": [True, None, False, True]}).write_parquet(path)
    points = ground_points(path, "till", scale=(0.5, 0.5))
    assert points == [{"x": 10.0, "y": 50.0, "role": "staff"}, {"x": 15.0, "y": 55.0, "role": "customer"}]
    assert len(ground_points(path, "till", limit=1)) == 1


def test_names_yaml_would_read_as_something_else_are_quoted():
    zones = {name: SQUARE for name in ["no", "null", "1", "on", "cashier"]}
    loaded = yaml.safe_load(Layout(TILL, zones, {}, [320, 240]).yaml())
    assert list(loaded["zones"]) == ["no", "null", "1", "on", "cashier"]


def test_an_older_or_broken_tracks_table_gives_no_points(tmp_path: Path):
    old = tmp_path / "old.parquet"
    pl.DataFrame({"camera": ["till"], "x1": [1.0], "x2": [3.0], "y2": [9.0]}).write_parquet(old)  # no role, no trust
    assert ground_points(old, "till") == [{"x": 2.0, "y": 9.0, "role": None}]
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    assert ground_points(tmp_path / "broken.parquet", "till") == []
    pl.DataFrame({"frame": [1]}).write_parquet(tmp_path / "other.parquet")
    assert ground_points(tmp_path / "other.parquet", "till") == []
