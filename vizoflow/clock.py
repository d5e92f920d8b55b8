"""The site's clock: epoch seconds inside, the store's local time at the edges.

Everything vizoflow measures stays exact: frame times are seconds on the video (or
monotonic live) clock, real times are UTC epoch seconds, durations are differences
of clock seconds. Only where a person reads a time does it become local time in the
site's IANA zone (``timezone:`` in the site config): day and hour buckets, file and
clip names, ISO strings (which carry the offset, ``+05:30``) and the v1.1 analytics format's
``upload_timestamp``. A day is local midnight to local midnight, so it has 23 or 25
hours when daylight saving changes; the repeated autumn hour is told apart by its
offset (``02:30+02:00`` then ``02:30+01:00``).
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vizoflow.errors import ConfigError


class SiteClock:
    """Turns epoch seconds into the site's local days, hours, names and ISO strings.

    Args:
        name: IANA time zone name (``Asia/Kolkata``, ``Europe/Berlin``, ``UTC``).

    Raises:
        ConfigError: ``name`` is not a time zone this machine knows (one line).
    """

    def __init__(self, name: str = "UTC") -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"timezone must be an IANA time zone name such as Asia/Kolkata, got {name!r}")
        try:
            self.zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of zones, such as ``Asia``
            raise ConfigError(f"timezone {name!r} is not an IANA time zone name (e.g. Asia/Kolkata, Europe/Berlin, "
                              f"UTC)") from None
        self.name = name

    def __repr__(self) -> str:
        return f"SiteClock({self.name!r})"

    def local(self, epoch: float) -> datetime:
        """The aware local time of ``epoch``."""
        return datetime.fromtimestamp(epoch, tz=self.zone)

    def iso(self, epoch: float) -> str:
        """ISO 8601 local time with its offset, millisecond precision (``2026-11-29T13:50:10.250+05:30``)."""
        return self.local(epoch).isoformat(timespec="milliseconds")

    def day(self, epoch: float) -> str:
        """The local date, ``YYYY-MM-DD``: the day a daily figure counts ``epoch`` in."""
        return self.local(epoch).date().isoformat()

    def hour(self, epoch: float) -> str:
        """The local hour with its offset, ``YYYY-MM-DDTHH:00+05:30``; unique also in the repeated DST hour."""
        return self.local(epoch).replace(minute=0, second=0, microsecond=0).isoformat(timespec="minutes")

    def stamp(self, epoch: float) -> str:
        """``YYYYmmdd_HHMMSS`` local, for file names (the evidence naming form)."""
        return self.local(epoch).strftime("%Y%m%d_%H%M%S")

    def wall(self, epoch: float) -> str:
        """``YYYY-mm-dd HH:MM:SS`` local: the v1.1 ``upload_timestamp`` form (no offset; the file's
        metadata names the zone)."""
        return self.local(epoch).strftime("%Y-%m-%d %H:%M:%S")

    def day_bounds(self, day: str) -> tuple[float, float]:
        """Epoch seconds of the local day's first instant and of the next day's: 23, 24 or 25 hours apart.

        Midnight itself may not exist (zones that change clocks at 00:00); then the day
        starts at the first instant that has its date.
        """
        d = date.fromisoformat(day)
        return self._midnight(d), self._midnight(d + timedelta(days=1))

    def _midnight(self, d: date) -> float:
        # fold=0 on a skipped midnight takes the offset before the change: the instant of the change
        return datetime(d.year, d.month, d.day, tzinfo=self.zone).timestamp()

    def now(self) -> float:
        """Epoch seconds now (wall time)."""
        return time.time()

    def now_iso(self) -> str:
        """Now as a local ISO string."""
        return self.iso(self.now())
