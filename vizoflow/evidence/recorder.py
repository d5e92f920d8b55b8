"""Recording finished clips in the outbox, without losing one to a database error."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vizoflow.events import Event
from vizoflow.evidence.outbox import ADOPTED, REPLACED, Item, Outbox, has_evidence
from vizoflow.files import write_json_atomic

log = logging.getLogger(__name__)
SEGMENT_NAME = re.compile(r"^segment_(\d+)_")
NOTE_SUFFIX = ".unrecorded.json"  # beside a clip whose outbox recording failed: what to record


@dataclass
class ClipLog:
    """What one camera's clips became: written files, and event parts linked to an earlier run's clip."""

    written: list[Path] = field(default_factory=list)
    adopted: list[tuple[str, int]] = field(default_factory=list)  # (event_id, part)


class ClipRecorder:
    """Records finished clips in the outbox (state ``clip_written``) for delivery.

    A database error while recording (disk full, I/O error, locked) does not stop
    analysis and does not lose the clip: the clip stays on disk, the error is logged,
    the recording is kept in memory and retried every ``RETRY_SECONDS`` on the
    following frames and once more at close (``clips_unrecorded`` in :meth:`status`).
    The recording is also noted beside the clip (``<clip>.unrecorded.json``, when the
    disk allows), so a clip still unrecorded at close, or when the process is killed,
    is recorded by the next recorder on the same folder when it starts.

    Several cameras' clip writers share one recorder (thread-safe), so clip numbers
    are unique in the folder and recordings keep their order.

    Args:
        outbox: The site's outbox; None keeps clips local and unrecorded.
        directory: The clips folder.
        clip_per_event: Clips show one event each (``evidence.mode=event``): a clip whose
            event part another writer recorded meanwhile is a duplicate and goes.
    """

    RETRY_SECONDS = 2.0  # a recording that failed is tried again at most this often

    def __init__(self, outbox: Outbox | None, directory: Path, clip_per_event: bool = True) -> None:
        self.outbox, self.directory, self.clip_per_event = outbox, directory, clip_per_event
        self._lock = threading.RLock()
        # numbers go on from the folder and from the outbox, so a name is never used twice
        # (retention may have deleted the clip with the highest number)
        known = [p.name for p in directory.glob("segment_*.mp4")]
        known += outbox.segment_names() if outbox is not None else []
        self._counter = max((int(m.group(1)) for name in known if (m := SEGMENT_NAME.match(name))), default=0)
        self._waiting: list[tuple[str, Callable[[], None], Path | None]] = []  # (what, retry, note), oldest first
        self._retry_at = float("-inf")
        self._record_noted()

    def next_number(self) -> int:
        """The next clip number: zero-padded into names, so they sort in recording order."""
        with self._lock:
            self._counter += 1
            return self._counter

    def earlier(self, event: Event, part: int) -> Item | None:
        """The outbox row of this event part if its evidence still exists (then no clip is written)."""
        if self.outbox is None:
            return None
        try:
            item = self.outbox.find(event.event_id, part)
        except sqlite3.Error as exc:  # cannot tell: write a new clip (recorded later; a clash is settled then)
            log.error("outbox unreadable while opening a clip for %s (%s); writing a new clip", event.event_id, exc)
            return None
        return item if item is not None and has_evidence(item) else None

    def record(self, path: Path, rows: list[dict], clips: ClipLog) -> None:
        """Record a finished clip: one outbox row per event it shows.

        Args:
            path: The clip.
            rows: :meth:`Outbox.record` arguments, one per event.
            clips: The camera's log: a duplicate clip is taken out of it.
        """
        if self.outbox is None:
            return
        progress: dict = {"done": set(), "owned": False}  # a retry goes on where the failed attempt stopped
        ids = ", ".join(r["event_id"] for r in rows) or "no event"
        self._try(f"{path.name} ({ids})", lambda: self._record(path, rows, progress, clips),
                  note=(path.with_name(path.name + NOTE_SUFFIX), rows))

    def adopt(self, item: Item, part: int, metrics_path: str | None, clips: ClipLog) -> None:
        """Link an earlier run's clip of this event part into this run's metrics file."""
        def step() -> None:
            self.outbox.adopt(item.id, metrics_path)  # type: ignore[union-attr]
            clips.adopted.append((item.event_id, part))

        self._try(f"adoption of {Path(item.segment_path).name} for {item.event_id}", step)

    def retry(self, force: bool = False, last: bool = False) -> None:
        """Try the waiting recordings again, oldest first; stop at the first that still fails.

        ``last``: the final try (all cameras' clips finished): what still fails is logged.
        """
        if not self._waiting:  # the common case, every frame of every camera: no lock taken
            return
        with self._lock:
            if not self._waiting or (not force and time.monotonic() < self._retry_at):
                return
            while self._waiting:
                what, step, note = self._waiting[0]
                try:
                    step()
                except sqlite3.Error as exc:
                    self._retry_at = time.monotonic() + self.RETRY_SECONDS
                    if last:
                        noted = [w for w, _, n in self._waiting if n is not None and n.is_file()]
                        log.error("outbox: %d clip(s) could not be recorded (%s); they stay on disk: %s. %d of them "
                                  "have a note and are recorded when vizoflow next starts on %s",
                                  len(self._waiting), exc, "; ".join(w for w, _, _ in self._waiting), len(noted),
                                  self.directory)
                    return
                self._waiting.pop(0)
                if note is not None:
                    note.unlink(missing_ok=True)
                log.warning("outbox: %s recorded after an earlier failure", what)

    def status(self) -> dict[str, float]:
        """``clips_unrecorded``: finished clips waiting for their outbox recording."""
        return {"clips_unrecorded": len(self._waiting)}

    def _try(self, what: str, step: Callable[[], None], note: tuple[Path, list[dict]] | None = None) -> None:
        """Run an outbox step; on a database error keep it for a retry (the clip stays on disk).

        ``note``: where to keep the rows to record if the step fails, for the next run.
        """
        note_path = note[0] if note is not None else None
        with self._lock:
            if self._waiting:  # keep the order: older recordings first
                self._waiting.append((what, step, note_path))
                self._write_note(note)
                self.retry(force=True)
                return
            try:
                step()
            except sqlite3.Error as exc:
                log.error("outbox: could not record %s (%s); the clip is kept and its recording retried; "
                          "analysis goes on", what, exc)
                self._waiting.append((what, step, note_path))
                self._write_note(note)
                self._retry_at = time.monotonic() + self.RETRY_SECONDS

    @staticmethod
    def _write_note(note: tuple[Path, list[dict]] | None) -> None:
        if note is None:
            return
        try:
            write_json_atomic(note[0], note[1])
        except OSError as exc:  # the disk is full: the recording is only in memory until it succeeds
            log.warning("could not write %s either (%s)", note[0].name, exc)

    def _record(self, path: Path, rows: list[dict], progress: dict, clips: ClipLog | None) -> None:
        """One transaction per event row (``progress`` remembers the rows already recorded, so a
        retry after a database error does not repeat them)."""
        outbox = self.outbox
        assert outbox is not None
        for row in rows:
            event_id = row["event_id"]
            if event_id in progress["done"]:
                continue
            item_id, outcome = outbox.record(**row)
            progress["done"].add(event_id)
            progress["owned"] |= outcome != ADOPTED
            if outcome == ADOPTED:
                log.info("event %s was already recorded as %s; linking its earlier evidence into this run",
                         event_id, Path(outbox.get(item_id).segment_path).name)
                if clips is not None:
                    clips.adopted.append((event_id, row["part"]))
            elif outcome == REPLACED:
                log.info("event %s: its earlier clip is gone and was never uploaded; %s takes its place",
                         event_id, path.name)
        if rows and not progress["owned"] and self.clip_per_event:  # another writer recorded this part meanwhile
            path.unlink(missing_ok=True)
            if clips is not None and path in clips.written:
                clips.written.remove(path)

    def _record_noted(self) -> None:
        """Record the clips an earlier run wrote but could not record (its notes), then drop the notes."""
        if self.outbox is None:
            return
        for note in sorted(self.directory.glob("segment_*" + NOTE_SUFFIX)):
            path = note.with_name(note.name[:-len(NOTE_SUFFIX)])
            try:
                rows = json.loads(note.read_text(encoding="utf-8"))
                if path.is_file():
                    self._record(path, rows, {"done": set(), "owned": False}, None)
                    log.warning("outbox: %s (%s) recorded now; an earlier run could not record it", path.name,
                                ", ".join(r["event_id"] for r in rows))
                note.unlink()
            except (OSError, ValueError, KeyError, TypeError, sqlite3.Error) as exc:
                log.error("outbox: cannot record %s from its note %s: %s", path.name, note.name, exc)
