"""A camera's store figures per day on disk, so a restarted run goes on with the day.

Per local day, ``store_state_<camera>_<day>.json`` holds what the figures are made of
(:meth:`DayFigures.state`) and the runs that counted them, ``store_heat_<camera>_<day>.npy``
the heat grid. A run is ``(video, epoch)``: a live camera restarted gets a new epoch
(the wall time it started) and goes on from the saved day; the same recording run
again into the same folder (same video, same epoch) would count itself twice, so that
day starts from zero instead (logged).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from vizoflow.files import write_json_atomic

log = logging.getLogger(__name__)


class DayState:
    """Saves and restores per-day figures and heat of one camera in ``folder``.

    Args:
        folder: The run's output folder.
        camera: Camera name (in the file names).
    """

    def __init__(self, folder: Path, camera: str) -> None:
        self.folder, self.camera = Path(folder), camera
        self._runs: dict[str, list[list[Any]]] = {}  # day -> runs counted in it (days this process has opened)
        self._resumed: dict[str, bool] = {}  # day -> it went on from an earlier run's state
        self._saved: set[str] = set()  # days this process has written

    def _json(self, day: str) -> Path:
        return self.folder / f"store_state_{self.camera}_{day}.json"

    def _npy(self, day: str) -> Path:
        return self.folder / f"store_heat_{self.camera}_{day}.npy"

    def open(self, day: str, run: tuple[str | None, float]) -> bool:
        """Whether ``day`` goes on from what is saved (decided once per day; later calls: yes, it is ours)."""
        if day in self._runs:  # opened before by this run: what is on disk is the earlier run's or ours
            return self._resumed[day] or day in self._saved
        runs = self._read(day).get("runs", [])
        if list(run) in runs:
            log.info("store figures of %s for %s were counted from this recording before (%s); counting them "
                     "again from zero, not on top", day, self.camera, run[0])
            self._runs[day], self._resumed[day] = [list(run)], False
            return False
        self._runs[day], self._resumed[day] = [*runs, list(run)], bool(runs)
        return True

    def figures(self, day: str) -> dict[str, Any]:
        """The saved :meth:`DayFigures.state` of ``day`` ({} when none)."""
        return self._read(day).get("figures", {})

    def heat(self, day: str, shape: tuple[int, ...]) -> np.ndarray | None:
        """The saved heat grid of ``day``, if it has this shape."""
        path = self._npy(day)
        try:
            grid = np.load(path) if path.exists() else None
        except (OSError, ValueError) as exc:
            log.error("%s is unreadable (%s); the heat map of %s starts again from zero", path, exc, day)
            return None
        return grid if grid is not None and grid.shape == shape else None

    def save(self, day: str, figures: dict[str, Any]) -> bool:
        """Write the day's figures state; False (logged) if it could not be written."""
        try:
            write_json_atomic(self._json(day), {"runs": self._runs.get(day, []), "figures": figures})
        except OSError as exc:
            log.error("could not write %s (%s); the day stays in memory and is written again later", self._json(day), exc)
            return False
        self._saved.add(day)
        return True

    def save_heat(self, day: str, grid: np.ndarray) -> bool:
        """Write the day's heat grid; False (logged) if it could not be written."""
        path, tmp = self._npy(day), self._npy(day).with_suffix(f".{os.getpid()}.tmp.npy")
        try:
            np.save(tmp, grid)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            log.error("could not write %s (%s)", path, exc)
            return False
        return True

    def _read(self, day: str) -> dict[str, Any]:
        path = self._json(day)
        if not path.exists():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            log.error("%s is unreadable (%s); the store figures of %s start again from zero", path, exc, day)
            return {}
