import json
import os
import re
from pathlib import Path

import pytest

from vizoflow.review.charts import DayCharts

HOUR = "2026-12-05T{:02d}:00+05:30"


def day_file(tmp_path: Path, **sections) -> Path:
    path = tmp_path / "analytics_metrics_2026-12-05.json"
    path.write_text(json.dumps(sections))
    return path


def bars(svg: str) -> int:
    """Bars matplotlib drew (each a path with a fill, inside the axes' patch group)."""
    return len(re.findall(r'<g id="patch_\d+">', svg))


def test_each_hour_with_figures_gets_bars(tmp_path: Path):
    path = day_file(tmp_path,
                    footfall_metrics={"lines": {"door": {"hourly": {HOUR.format(9): {"in": 4, "out": 1},
                                                                       HOUR.format(17): {"in": 0, "out": 6}}}}},
                    occupancy_metrics={"zones": {"shop": {"all": {"hourly": {HOUR.format(9): {"mean": 2.5, "max": 4}}}}}},
                    service_metrics={"hourly": {HOUR.format(9): {"wait": {"median_seconds": 12.0},
                                                                  "service": {"median_seconds": 40.0}}}},
                    daily_summary={"2026-12-05": {"hourly": {HOUR.format(9): {"interactions": 2, "unattended": 1,
                                                                                "queues": 0}}}})
    charts = {c.key: c for c in DayCharts.read(path).all()}
    assert set(charts) == {"footfall", "occupancy", "service", "events"}
    for chart in charts.values():
        assert chart.svg.startswith("<svg") and chart.svg.rstrip().endswith("</svg>")
    # 24 hours x (in, out) bars, plus the axes' background and the legend's patches
    assert bars(charts["footfall"].svg) >= 48
    assert "door" in charts["footfall"].title


def test_a_day_without_figures_draws_nothing(tmp_path: Path):
    charts = DayCharts.read(day_file(tmp_path)).all()
    assert [c.svg for c in charts] == [None, None, None, None]


def test_the_repeated_autumn_hour_adds_its_counts_and_keeps_the_larger_mean():
    day = DayCharts({})
    hourly = {"2026-10-25T02:00+02:00": {"in": 3, "mean": 2.0}, "2026-10-25T02:00+01:00": {"in": 4, "mean": 1.0}}
    from vizoflow.review.charts import _series

    assert _series(hourly, lambda r: r.get("in"))[2] == 7
    assert _series(hourly, lambda r: r.get("mean"), counts=False)[2] == 2.0
    assert day.all()[0].svg is None


def test_a_damaged_day_file_is_named_or_drawn_as_far_as_it_goes(tmp_path: Path):
    bad = tmp_path / "analytics_metrics_2026-12-05.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="analytics_metrics_2026-12-05.json cannot be read"):
        DayCharts.read(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="is not an analytics file"):
        DayCharts.read(bad)
    odd = DayCharts({"footfall_metrics": {"lines": {"door": {"hourly": {"garbage": 1, HOUR.format(9): {"in": "x"},
                                                                         HOUR.format(10): {"in": 2}}}}},
                     "occupancy_metrics": [1], "service_metrics": {"hourly": "x"}})
    assert odd.footfall().svg is not None and odd.occupancy().svg is None and odd.service().svg is None


def test_charts_are_drawn_again_only_when_the_day_file_changes(tmp_path: Path):
    from vizoflow.review.charts import ChartCache

    path = day_file(tmp_path, footfall_metrics={"lines": {"door": {"hourly": {HOUR.format(9): {"in": 1}}}}})
    cache = ChartCache()
    first = cache.get(path)
    assert cache.get(path) is first
    path.write_text(json.dumps({}))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert cache.get(path)[0].svg is None
    with pytest.raises(ValueError, match="cannot be read"):
        cache.get(tmp_path / "analytics_metrics_2026-01-01.json")
