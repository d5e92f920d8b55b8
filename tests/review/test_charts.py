import json
import re
from pathlib import Path

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
    charts = {c.key: c for c in DayCharts(path).all()}
    assert set(charts) == {"footfall", "occupancy", "service", "events"}
    for chart in charts.values():
        assert chart.svg.startswith("<svg") and chart.svg.rstrip().endswith("</svg>")
    # 24 hours x (in, out) bars, plus the axes' background and the legend's patches
    assert bars(charts["footfall"].svg) >= 48
    assert "door" in charts["footfall"].title


def test_a_day_without_figures_draws_nothing(tmp_path: Path):
    charts = DayCharts(day_file(tmp_path)).all()
    assert [c.svg for c in charts] == [None, None, None, None]
