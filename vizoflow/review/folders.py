"""Where the review page may read: a site's run folders and its evidence folder, nothing else.

Every file the page serves is named by a request (a run, a day, a clip), so every name
goes through :class:`SafeFolder`: one plain file name, resolved (symlinks followed) and
required to lie inside the folder. ``..``, ``%2e%2e``, absolute paths and a symlink
that points out of the folder all end as "not found".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from vizoflow.errors import ConfigError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")  # one file name: no separators, no leading dot
DAY_FILE = re.compile(r"^analytics_metrics_(\d{4}-\d{2}-\d{2})\.json$")
# A folder with one of these is a run. A live run writes its first picture within seconds
# (latest.jpg; in <camera>/ with several cameras), its events log from the first event on.
RUN_MARKERS = ("run.json", "batch.json", "interactions.jsonl", "events.parquet", "analytics_metrics.json", "latest.jpg")


class SafeFolder:
    """Files of one folder, by plain name only.

    Args:
        root: The folder; it need not exist yet (a live run creates it).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()

    def file(self, name: str, suffixes: tuple[str, ...] = ()) -> Path | None:
        """The regular file ``name`` inside the folder, or None.

        Args:
            name: A plain file name (letters, digits, ``.``, ``_``, ``-``; no leading dot).
            suffixes: Allowed endings (e.g. ``(".mp4",)``); empty: any.
        """
        if not NAME.fullmatch(name) or ".." in name or (suffixes and not name.endswith(suffixes)):
            return None
        try:
            root = self.root.resolve(strict=True)
            path = (root / name).resolve(strict=True)
        except (OSError, RuntimeError):  # missing, or a symlink loop
            return None
        if path.parent != root or not path.is_file():  # a symlink out of the folder resolves elsewhere
            return None
        return path

    def folder(self, name: str) -> Path | None:
        """The sub-folder ``name`` (a plain name), or None."""
        if not NAME.fullmatch(name) or ".." in name:
            return None
        try:
            root = self.root.resolve(strict=True)
            path = (root / name).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        return path if path.parent == root and path.is_dir() else None


@dataclass(frozen=True)
class Run:
    """One run's output folder (``outputs/<site>/<time>``, or a live run's ``output_dir``)."""

    name: str
    path: Path

    @property
    def files(self) -> SafeFolder:
        """The run's own files."""
        return SafeFolder(self.path)

    def days(self) -> list[str]:
        """Days (``YYYY-MM-DD``) that have an analytics file, newest first."""
        found = {m.group(1) for p in self.path.glob("analytics_metrics_*.json") if (m := DAY_FILE.match(p.name))}
        return sorted(found, reverse=True)

    def camera_files(self, camera: str | None) -> SafeFolder:
        """A camera's own files: the run folder, or ``<run>/<camera>`` on a site with ``cameras:``."""
        if camera is None:
            return self.files
        folder = self.files.folder(camera)
        return SafeFolder(folder) if folder is not None else SafeFolder(self.path / ".none")

    def table(self, stem: str) -> Path | None:
        """The newest readable copy of the run's Parquet table ``<stem>.parquet``, or None.

        The table itself once the run has ended; while it goes on (tables are published at
        the end), its newest closed hour in ``<stem>.parquet.parts/``; else the newest
        earlier run's, kept beside it as ``<stem>_<stamp>.parquet`` (a service restarted
        into its fixed folder). See :class:`vizoflow.nodes.sinks.ParquetTableWriter`.
        """
        if (found := self.files.file(f"{stem}.parquet")) is not None:
            return found
        parts = self.files.folder(f"{stem}.parquet.parts")
        places = [(SafeFolder(parts), f"{stem}-*.parquet")] if parts is not None else []
        places.append((self.files, f"{stem}_*.parquet"))
        for folder, pattern in places:
            for name in sorted((p.name for p in folder.root.glob(pattern)), reverse=True):  # newest first
                if (found := folder.file(name)) is not None:
                    return found
        return None

    def sub_folders(self) -> list[Path]:
        """The run's own sub-folders (a batch's videos, a site's cameras); symlinks out are left out."""
        if not self.path.is_dir():
            return []
        return [f for p in sorted(self.path.iterdir()) if (f := self.files.folder(p.name)) is not None]


def _is_run(run: Run) -> bool:
    """Whether a folder holds a run's outputs (a live one's first picture may be in a camera's folder)."""
    return (any(run.files.file(m) for m in RUN_MARKERS)
            or any(SafeFolder(sub).file("latest.jpg") for sub in run.sub_folders()))


class SiteRuns:
    """The run folders of one site, newest first; the review page shows one at a time.

    Args:
        root: The folder holding the runs (``outputs/<site_name>``).
        pinned: A run folder to show by default (a live run's own ``output_dir``), or a name
            inside ``root``; None: the newest run.

    Raises:
        ConfigError: ``pinned`` names no folder.
    """

    def __init__(self, root: Path, pinned: str | Path | None = None) -> None:
        self.root = SafeFolder(root)
        self._pinned: Run | None = None
        if pinned is not None:
            path = Path(pinned)
            if not path.is_absolute() and len(path.parts) == 1:
                path = self.root.root / path
            if not path.is_dir():
                raise ConfigError(f"serve.run: no run folder {path}")
            self._pinned = Run(path.name, path.absolute())

    def runs(self) -> list[Run]:
        """Every run folder (one that has a run file, events or an analytics file), newest first."""
        found = {}
        if self.root.root.is_dir():
            for path in self.root.root.iterdir():
                folder = self.root.folder(path.name)  # a symlink to a folder elsewhere is not a run of this site
                if folder is not None and _is_run(Run(path.name, folder)):
                    found[path.name] = Run(path.name, folder)
        if self._pinned is not None:
            found[self._pinned.name] = self._pinned
        return sorted(found.values(), key=lambda r: r.name, reverse=True)

    def pick(self, name: str | None = None) -> Run | None:
        """The run called ``name`` (one of :meth:`runs`), else the pinned or newest one; None if there is none."""
        runs = self.runs()
        if name:
            return next((r for r in runs if r.name == name), None)
        if self._pinned is not None:
            return self._pinned
        return runs[0] if runs else None
