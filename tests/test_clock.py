"""The site's clock: local days and hours, daylight saving, the one-line error for a bad zone.

Expected values are worked out by hand from the zones' rules (tzdata): Asia/Kolkata is
UTC+05:30 all year; Europe/Berlin goes CET -> CEST on 2026-03-29 at 01:00 UTC (02:00
local becomes 03:00) and back on 2026-10-25 at 01:00 UTC (03:00 local becomes 02:00).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.conftest import run_cli
from vizoflow.clock import SiteClock
from vizoflow.errors import ConfigError


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def test_kolkata_days_run_from_local_midnight_and_times_carry_the_offset():
    clock = SiteClock("Asia/Kolkata")
    assert clock.iso(utc(2026, 11, 29, 18, 29, 59)) == "2026-11-29T23:59:59.000+05:30"
    assert clock.day(utc(2026, 11, 29, 18, 29, 59)) == "2026-11-29"
    assert clock.day(utc(2026, 11, 29, 18, 30)) == "2026-11-30"  # local midnight is 18:30 UTC
    assert clock.stamp(utc(2026, 11, 29, 0, 30, 12)) == "20261129_060012"
    assert clock.wall(utc(2026, 11, 29, 0, 30, 12)) == "2026-11-29 06:00:12"
    assert clock.day_bounds("2026-11-30") == (utc(2026, 11, 29, 18, 30), utc(2026, 11, 30, 18, 30))


def test_berlin_days_have_23_and_25_hours_at_the_changes_and_24_otherwise():
    clock = SiteClock("Europe/Berlin")
    hours = {day: (b - a) / 3600 for day in ("2026-03-29", "2026-10-25", "2026-07-01")
             for a, b in [clock.day_bounds(day)]}
    assert hours == {"2026-03-29": 23.0, "2026-10-25": 25.0, "2026-07-01": 24.0}
    assert clock.day_bounds("2026-10-25")[0] == utc(2026, 10, 24, 22)  # midnight CEST


def test_the_repeated_autumn_hour_is_two_hours_told_apart_by_their_offset():
    clock = SiteClock("Europe/Berlin")
    first, second = utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)  # both 02:30 local
    assert clock.stamp(first) == clock.stamp(second) == "20261025_023000"
    assert (clock.iso(first), clock.iso(second)) == ("2026-10-25T02:30:00.000+02:00", "2026-10-25T02:30:00.000+01:00")
    assert (clock.hour(first), clock.hour(second)) == ("2026-10-25T02:00+02:00", "2026-10-25T02:00+01:00")
    assert datetime.fromisoformat(clock.iso(second)).timestamp() == second  # the ISO string is exact


def test_a_zone_that_skips_midnight_starts_its_day_at_the_change():
    clock = SiteClock("America/Santiago")  # 2026-09-06 00:00 -04 becomes 01:00 -03
    start, end = clock.day_bounds("2026-09-06")
    assert clock.iso(start) == "2026-09-06T01:00:00.000-03:00" and (end - start) / 3600 == 23.0


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "Asia/Kolkata ", "../etc/passwd", 5, "Asia"])
def test_an_unknown_time_zone_is_a_one_line_config_error(name):
    with pytest.raises(ConfigError, match="IANA time zone name") as info:
        SiteClock(name)
    assert "\n" not in str(info.value)


def test_the_cli_names_an_unknown_time_zone_before_starting_anything(tmp_path):
    done = run_cli("+site=demo", "timezone=Asia/Kolkatta", "mode=snapshot", f"output_dir={tmp_path}/out", timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "vizoflow: error: timezone 'Asia/Kolkatta' is not an IANA time zone name (e.g. Asia/Kolkata, "
        "Europe/Berlin, UTC)"]
    assert not (tmp_path / "out" / "snapshot.png").exists()
