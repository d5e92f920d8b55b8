"""Small file helpers shared by sinks: atomic JSON writes, the latest-day link."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON beside ``path``, fsync it, and rename it over ``path``.

    A reader, or a restart after a crash at any moment, sees the old file or the new
    one, never a torn one. On an error (e.g. ``ENOSPC``) the temporary file is removed
    and the error raised; ``path`` still holds the previous version.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # disk full, I/O error: ``path`` keeps the old file; free the space of the torn copy
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def absolute(path: str | os.PathLike[str]) -> Path:
    """``path`` made absolute without following a symlink at its end.

    ``analytics_metrics.json`` is a link to the current day's file; the outbox names
    the link (the run's metrics), not the day it pointed at when a clip was cut.
    """
    path = Path(path)
    return path.parent.resolve() / path.name


def point_link(link: Path, target_name: str) -> None:
    """Make ``link`` a relative symlink to ``target_name`` (a file beside it), replacing it atomically."""
    tmp = link.with_name(f".{link.name}.{os.getpid()}.link")
    tmp.unlink(missing_ok=True)
    os.symlink(target_name, tmp)
    os.replace(tmp, link)
