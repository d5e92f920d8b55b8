"""Durable outbox: each clip's evidence moves clip_written -> uploaded -> reported -> linked.

One SQLite file (WAL) beside the outputs. Every step commits before the next begins,
so a crash, an outage or a restart resumes where it stopped: nothing is forgotten, and
a finished step is not repeated.

A row is one event's clip (one ``part`` of it), whatever the number of runs that saw
the event. Event ids come from the video clock, so re-running the same footage meets
the same ids again: the row is then *adopted* by the new run (see
``docs/evidence_reruns.md``). To serve several runs and endpoints, a row remembers

* ``uploaded_to``: where its current ``video_url`` came from (``local`` or the upload URL);
* ``reported_to``: every incident endpoint it was reported to (``local`` = ``incidents.jsonl``);
* ``links``: every ``analytics_metrics.json`` it belongs in, each ``pending``, ``linked``
  or ``gone`` (the file or its entry disappeared).

The state is then a summary for the *current* endpoints: ``reported`` means delivered
to them, ``linked`` means also written into every metrics file listed.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CLIP_WRITTEN, UPLOADED, REPORTED, LINKED, FAILED = "clip_written", "uploaded", "reported", "linked", "failed"
STATES = (CLIP_WRITTEN, UPLOADED, REPORTED, LINKED, FAILED)

LOCAL = "local"           # destination of evidence kept on this machine (file:// URL, incidents.jsonl)
UNKNOWN_REMOTE = "?"      # rows from before destinations were recorded: some server, URL unknown
LINK_PENDING, LINK_DONE, LINK_GONE = "pending", "linked", "gone"

NEW, ADOPTED, REPLACED = "new", "adopted", "replaced"  # outcomes of Outbox.record

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
    uploaded_to TEXT,
    reported_to TEXT NOT NULL DEFAULT '[]',
    links TEXT NOT NULL DEFAULT '{}',
    segment_name TEXT,
    UNIQUE (event_id, part)
);
"""

# Columns added after the first release, with their ALTER TABLE definitions (outbox files
# written by an older vizoflow are migrated when opened).
ADDED_COLUMNS = {
    "uploaded_to": "TEXT",
    "reported_to": "TEXT NOT NULL DEFAULT '[]'",
    "links": "TEXT NOT NULL DEFAULT '{}'",
    "segment_name": "TEXT",
}
# Clips are looked up by file name (retention, the clip counter): an index, so that a
# lookup costs the same after weeks of rows.
NAME_INDEX = "CREATE INDEX IF NOT EXISTS evidence_segment_name ON evidence (segment_name)"
LOOKUP_CHUNK = 500  # names per query (SQLite allows 32,766 parameters; keep statements small)


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
    uploaded_to: str | None = None
    reported_to: tuple[str, ...] = ()
    links: dict[str, str] = field(default_factory=dict)

    @property
    def uploaded_remotely(self) -> bool:
        """The clip is on an upload server (a local ``file://`` URL does not count)."""
        return self.uploaded_to is not None and self.uploaded_to != LOCAL

    def pending_links(self) -> list[str]:
        """Metrics files this item's evidence still has to be written into."""
        return [path for path, status in self.links.items() if status == LINK_PENDING]


def has_evidence(item: Item) -> bool:
    """The row's clip can still be delivered or pointed at: the file exists, or a server has it."""
    return Path(item.segment_path).is_file() or item.uploaded_remotely


class Outbox:
    """Thread-safe SQLite store of evidence items and their delivery state.

    One ``Outbox`` serves the threads of a process (the evidence service's clip writers,
    delivery worker and linker; a lock around every transaction), and other processes
    may open the same file: every change is one ``BEGIN IMMEDIATE`` transaction, and
    read-modify-write steps read inside it.

    Args:
        path: The database file (created when missing, migrated when older).
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
        self._migrate()
        self._name_segments()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE ... COMMIT`` transaction.

        If the body or the ``COMMIT`` itself fails (disk full, I/O error), the
        transaction is rolled back and the error raised: nothing of it is stored, and
        the connection is out of the transaction, ready for the next one (a retry).
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite may already have rolled back a failed COMMIT
                    try:
                        self._db.execute("ROLLBACK")
                    except sqlite3.Error as exc:
                        log.error("outbox %s: ROLLBACK failed too: %s", self.path, exc)
                raise

    def _migrate(self) -> None:
        """Add the destination and link columns to an older outbox, filled in from what it knew.

        Old rows kept one metrics file (in ``event_json``) and no destinations. Uploads
        with a ``file://`` URL were local; others went to a server whose URL was not
        kept (``?``: counts as every server, so nothing is uploaded twice). A reported
        incident found in ``incidents.jsonl`` was reported locally; any other was
        reported to a server (``?`` again: never reported to a server a second time).
        """
        with self._tx() as db:
            have = {row[1] for row in db.execute("PRAGMA table_info(evidence)")}
            missing = [name for name in ADDED_COLUMNS if name not in have]
            for name in missing:
                db.execute(f"ALTER TABLE evidence ADD COLUMN {name} {ADDED_COLUMNS[name]}")
            if not set(missing) - {"segment_name"}:
                return
            local_incidents = self._local_incident_ids()
            for row in db.execute("SELECT * FROM evidence").fetchall():
                event = json.loads(row["event_json"])
                uploaded_to = None if row["uploaded_filename"] is None else (
                    LOCAL if (row["video_url"] or "").startswith("file:") else UNKNOWN_REMOTE)
                reported_to = [] if row["state"] not in (REPORTED, LINKED) else [
                    LOCAL if row["incident_id"] in local_incidents else UNKNOWN_REMOTE]
                path = event.get("metrics_path")
                links = {path: LINK_DONE if row["state"] == LINKED else LINK_PENDING} if path else {}
                db.execute("UPDATE evidence SET uploaded_to = ?, reported_to = ?, links = ? WHERE id = ?",
                           (uploaded_to, json.dumps(reported_to), json.dumps(links), row["id"]))

    def _name_segments(self) -> None:
        """Fill ``segment_name`` where an older vizoflow left it empty, and index it."""
        with self._tx() as db:
            rows = db.execute("SELECT id, segment_path FROM evidence WHERE segment_name IS NULL").fetchall()
            db.executemany("UPDATE evidence SET segment_name = ? WHERE id = ?",
                           [(Path(path).name, item_id) for item_id, path in rows])
            db.execute(NAME_INDEX)

    def _local_incident_ids(self) -> set[str]:
        log_path = self.path.parent / "incidents.jsonl"
        ids: set[str] = set()
        if log_path.is_file():
            for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    ids.add(json.loads(line).get("incident_id"))
                except (ValueError, AttributeError):
                    continue
        return ids

    def add(self, event_id: str, part: int, kind: str, segment_path: str, event: dict[str, Any],
            metrics_path: str | None = None) -> int:
        """Record a written clip; returns its row id (existing id if already recorded, unchanged).

        Low level: the clip recorder uses :meth:`record`, which also settles a clash with
        an earlier run's row. ``metrics_path`` defaults to ``event["metrics_path"]``.
        """
        now = time.time()
        metrics_path = metrics_path or event.get("metrics_path")
        links = {metrics_path: LINK_PENDING} if metrics_path else {}
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO evidence (event_id, part, kind, segment_path, segment_name, event_json, "
                       "state, created, updated, links) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (event_id, part, kind, segment_path, Path(segment_path).name, json.dumps(event), CLIP_WRITTEN,
                        now, now, json.dumps(links)))
            return int(db.execute("SELECT id FROM evidence WHERE event_id = ? AND part = ?", (event_id, part)).fetchone()[0])

    def record(self, event_id: str, part: int, kind: str, segment_path: str, event: dict[str, Any],
               metrics_path: str | None) -> tuple[int, str]:
        """Record a clip just written for ``(event_id, part)``; returns ``(row id, outcome)``.

        Outcomes: ``new`` (a new row owns the clip); ``replaced`` (an earlier run's row
        had lost its clip and was never on a server: the row now owns this clip and is
        delivered afresh, keeping its incident id and the endpoints already reported
        to); ``adopted`` (the earlier row still has its evidence: the row gets this
        run's metrics file, and the caller must delete the clip it wrote, which no row
        owns). All in one transaction, so two writers cannot both own a part.
        """
        with self._tx() as db:
            row = db.execute("SELECT * FROM evidence WHERE event_id = ? AND part = ?", (event_id, part)).fetchone()
            if row is None:
                now = time.time()
                links = {metrics_path: LINK_PENDING} if metrics_path else {}
                cur = db.execute("INSERT INTO evidence (event_id, part, kind, segment_path, segment_name, event_json, "
                                 "state, created, updated, links) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                 (event_id, part, kind, segment_path, Path(segment_path).name, json.dumps(event),
                                  CLIP_WRITTEN, now, now, json.dumps(links)))
                return int(cur.lastrowid), NEW  # type: ignore[arg-type]
            item = self._item(row)
            if item.segment_path == segment_path:  # the same clip recorded again: it stays the row's
                self._adopt(db, item, metrics_path)
                return item.id, NEW
            if has_evidence(item):
                self._adopt(db, item, metrics_path)
                return item.id, ADOPTED
            links = {path: LINK_PENDING if status == LINK_DONE else status for path, status in item.links.items()}
            if metrics_path:
                links[metrics_path] = LINK_PENDING
            db.execute("UPDATE evidence SET segment_path = ?, segment_name = ?, event_json = ?, state = ?, "
                       "uploaded_filename = NULL, video_url = NULL, upload_timestamp = NULL, uploaded_to = NULL, "
                       "links = ?, attempts = 0, next_attempt = 0, last_error = NULL, updated = ? WHERE id = ?",
                       (segment_path, Path(segment_path).name, json.dumps(event), CLIP_WRITTEN, json.dumps(links),
                        time.time(), item.id))
            return item.id, REPLACED

    def find(self, event_id: str, part: int) -> Item | None:
        """The row of ``(event_id, part)``, if an earlier clip was recorded for it."""
        with self._lock:
            row = self._db.execute("SELECT * FROM evidence WHERE event_id = ? AND part = ?", (event_id, part)).fetchone()
        return None if row is None else self._item(row)

    def adopt(self, item_id: int, metrics_path: str | None) -> Item:
        """Let this run use an earlier run's row: link into ``metrics_path`` too, deliver to new endpoints.

        The row is made due again from its last finished step (``uploaded`` if it has
        an upload, else ``clip_written``); the courier then skips every step already
        done for its endpoints, so nothing is uploaded or reported twice to the same
        place. A failed row is tried again: a re-run is a person asking for it.
        """
        with self._tx() as db:
            item = self._item(db.execute("SELECT * FROM evidence WHERE id = ?", (item_id,)).fetchone())
            self._adopt(db, item, metrics_path)
        return self.get(item_id)

    @staticmethod
    def _adopt(db: sqlite3.Connection, item: Item, metrics_path: str | None) -> None:
        links = dict(item.links)
        if metrics_path:
            links[metrics_path] = LINK_PENDING  # also when listed: a re-run into the same file adds an entry
        state = item.state
        if state in (REPORTED, LINKED, FAILED):
            state = UPLOADED if item.uploaded_to is not None else CLIP_WRITTEN
        db.execute("UPDATE evidence SET links = ?, state = ?, attempts = 0, next_attempt = 0, last_error = NULL, "
                   "updated = ? WHERE id = ?", (json.dumps(links), state, time.time(), item.id))

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

    def uploaded(self, item_id: int, destination: str, uploaded_filename: str, video_url: str, upload_timestamp: str,
                 incident_id: str) -> None:
        """The clip is stored at ``destination``: new evidence, so every metrics file is linked again.

        ``incident_id`` is kept if the row has one (an incident keeps its id across
        uploads, so endpoints see one incident).
        """
        with self._tx() as db:
            row = db.execute("SELECT links FROM evidence WHERE id = ?", (item_id,)).fetchone()
            links = {p: LINK_PENDING if s == LINK_DONE else s for p, s in json.loads(row["links"]).items()}
            db.execute("UPDATE evidence SET state = ?, uploaded_to = ?, uploaded_filename = ?, video_url = ?, "
                       "upload_timestamp = ?, incident_id = COALESCE(incident_id, ?), links = ?, attempts = 0, "
                       "next_attempt = 0, last_error = NULL, updated = ? WHERE id = ?",
                       (UPLOADED, destination, uploaded_filename, video_url, upload_timestamp, incident_id,
                        json.dumps(links), time.time(), item_id))

    def reported(self, item_id: int, destination: str) -> None:
        """The incident reached ``destination``; it is never reported there again."""
        with self._tx() as db:
            row = db.execute("SELECT reported_to FROM evidence WHERE id = ?", (item_id,)).fetchone()
            reported_to = json.loads(row["reported_to"])
            if destination not in reported_to:
                reported_to.append(destination)
            db.execute("UPDATE evidence SET state = ?, reported_to = ?, attempts = 0, next_attempt = 0, "
                       "last_error = NULL, updated = ? WHERE id = ?", (REPORTED, json.dumps(reported_to), time.time(), item_id))

    def set_links(self, item_id: int, statuses: dict[str, str], video_url: str | None) -> bool:
        """Store link outcomes; ``linked`` once no metrics file is pending. True if stored.

        Only while the item is still ``reported`` with the same ``video_url`` the linker
        wrote: if a re-run adopted it meanwhile (new metrics file, maybe a new upload),
        nothing is stored and the next pass links the newer evidence.
        """
        with self._tx() as db:
            row = db.execute("SELECT state, video_url, links FROM evidence WHERE id = ?", (item_id,)).fetchone()
            if row is None or row["state"] != REPORTED or row["video_url"] != video_url:
                return False
            links = {**json.loads(row["links"]), **statuses}
            state = REPORTED if LINK_PENDING in links.values() else LINKED
            db.execute("UPDATE evidence SET links = ?, state = ?, updated = ? WHERE id = ?",
                       (json.dumps(links), state, time.time(), item_id))
            return True

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
            db.execute("UPDATE evidence SET state = ?, last_error = ?, updated = ? WHERE id = ?",
                       (FAILED, error, time.time(), item_id))

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

    def by_segment_name(self, names: Iterable[str]) -> dict[str, Item]:
        """The items whose clip has one of these file names, by name.

        For a folder's clips: the cost follows the names asked about, not the rows the
        outbox has gathered over weeks.
        """
        wanted, found = sorted(set(names)), {}
        for at in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[at:at + LOOKUP_CHUNK]
            with self._lock:
                rows = self._db.execute(f"SELECT * FROM evidence WHERE segment_name IN ({', '.join('?' * len(chunk))})"
                                        " ORDER BY id", chunk).fetchall()
            found.update((row["segment_name"], self._item(row)) for row in rows)
        return found

    def segment_names(self) -> list[str]:
        """Every clip file name the outbox has known (without parsing the rows' events)."""
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT segment_name FROM evidence")]

    @staticmethod
    def _item(row: sqlite3.Row) -> Item:
        return Item(id=row["id"], event_id=row["event_id"], part=row["part"], kind=row["kind"],
                    segment_path=row["segment_path"], event=json.loads(row["event_json"]), state=row["state"],
                    incident_id=row["incident_id"], uploaded_filename=row["uploaded_filename"],
                    video_url=row["video_url"], upload_timestamp=row["upload_timestamp"],
                    attempts=row["attempts"], last_error=row["last_error"], uploaded_to=row["uploaded_to"],
                    reported_to=tuple(json.loads(row["reported_to"])), links=json.loads(row["links"]))

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
