"""Durable outbox: each clip's evidence moves clip_written -> uploaded -> reported -> linked.

One SQLite file (WAL) beside the outputs. Every step commits before the next begins,
so a crash, an outage or a restart resumes where it stopped: nothing is forgotten, and
a finished step is not repeated.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLIP_WRITTEN, UPLOADED, REPORTED, LINKED, FAILED = "clip_written", "uploaded", "reported", "linked", "failed"
STATES = (CLIP_WRITTEN, UPLOADED, REPORTED, LINKED, FAILED)

SCHEMA = """
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    part INTEGER NOT NULL,
    kind TEXT NOT NULL,
    segment_path TEXT NOT NULL,
    event_json TEXT NOT NULL,
    state TEXT NOT NULL,
    incident_id TEXT UNIQUE,
    uploaded_filename TEXT,
    video_url TEXT,
    upload_timestamp TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    UNIQUE (event_id, part)
);
"""


@dataclass(frozen=True, slots=True)
class Item:
    """One clip's row in the outbox."""

    id: int
    event_id: str
    part: int
    kind: str
    segment_path: str
    event: dict[str, Any]
    state: str
    incident_id: str | None
    uploaded_filename: str | None
    video_url: str | None
    upload_timestamp: str | None
    attempts: int
    last_error: str | None


class Outbox:
    """Thread-safe SQLite store of evidence items and their delivery state.

    Args:
        path: The database file (created when missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def add(self, event_id: str, part: int, kind: str, segment_path: str, event: dict[str, Any]) -> int:
        """Record a written clip; returns its row id (existing id if already recorded)."""
        now = time.time()
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO evidence (event_id, part, kind, segment_path, event_json, state, created, updated) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (event_id, part, kind, segment_path, json.dumps(event), CLIP_WRITTEN, now, now))
            return int(db.execute("SELECT id FROM evidence WHERE event_id = ? AND part = ?", (event_id, part)).fetchone()[0])

    def due(self, states: tuple[str, ...] = (CLIP_WRITTEN, UPLOADED, REPORTED), now: float | None = None) -> list[Item]:
        """Items in ``states`` whose next attempt is due, oldest first."""
        marks = ",".join("?" * len(states))
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM evidence WHERE state IN ({marks}) AND next_attempt <= ? ORDER BY id",
                                    (*states, time.time() if now is None else now)).fetchall()
        return [self._item(r) for r in rows]

    def advance(self, item_id: int, state: str, **fields: Any) -> None:
        """Move an item to ``state`` and store ``fields``; resets its attempts."""
        fields.update(state=state, attempts=0, next_attempt=0, last_error=None, updated=time.time())
        cols = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE evidence SET {cols} WHERE id = ?", (*fields.values(), item_id))

    def set_incident_id(self, item_id: int, incident_id: str) -> None:
        """Fix the incident id before the first report, so a retried report reuses it."""
        with self._tx() as db:
            db.execute("UPDATE evidence SET incident_id = ? WHERE id = ? AND incident_id IS NULL", (incident_id, item_id))

    def retry_later(self, item_id: int, error: str, delay: float) -> None:
        """Count a failed attempt; the item is due again after ``delay`` seconds."""
        with self._tx() as db:
            db.execute("UPDATE evidence SET attempts = attempts + 1, last_error = ?, next_attempt = ?, updated = ? WHERE id = ?",
                       (error, time.time() + delay, time.time(), item_id))

    def fail(self, item_id: int, error: str) -> None:
        """Park an item that cannot succeed without a person (e.g. 401); see :meth:`retry_failed`."""
        with self._tx() as db:
            db.execute("UPDATE evidence SET state = ?, last_error = ?, updated = ? WHERE id = ?", (FAILED, error, time.time(), item_id))

    def retry_failed(self) -> int:
        """Make failed and waiting items due now (they restart from their last finished step)."""
        with self._tx() as db:
            db.execute("UPDATE evidence SET next_attempt = 0 WHERE state != ?", (LINKED,))
            cur = db.execute(f"UPDATE evidence SET state = CASE WHEN uploaded_filename IS NULL THEN '{CLIP_WRITTEN}' "
                             f"ELSE '{UPLOADED}' END, last_error = NULL WHERE state = ?", (FAILED,))
            return cur.rowcount

    def counts(self) -> dict[str, int]:
        """Number of items per state (every state listed)."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM evidence GROUP BY state").fetchall()
        found = {r[0]: r[1] for r in rows}
        return {s: found.get(s, 0) for s in STATES}

    def pending(self) -> int:
        """Items not yet linked nor failed."""
        c = self.counts()
        return c[CLIP_WRITTEN] + c[UPLOADED] + c[REPORTED]

    def get(self, item_id: int) -> Item:
        """One item by id."""
        with self._lock:
            return self._item(self._db.execute("SELECT * FROM evidence WHERE id = ?", (item_id,)).fetchone())

    def all(self) -> list[Item]:
        """Every item, oldest first."""
        with self._lock:
            return [self._item(r) for r in self._db.execute("SELECT * FROM evidence ORDER BY id").fetchall()]

    @staticmethod
    def _item(row: sqlite3.Row) -> Item:
        return Item(id=row["id"], event_id=row["event_id"], part=row["part"], kind=row["kind"],
                    segment_path=row["segment_path"], event=json.loads(row["event_json"]), state=row["state"],
                    incident_id=row["incident_id"], uploaded_filename=row["uploaded_filename"],
                    video_url=row["video_url"], upload_timestamp=row["upload_timestamp"],
                    attempts=row["attempts"], last_error=row["last_error"])

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
