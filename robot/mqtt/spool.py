"""The MQTT bridge's disk spool: QoS 1 messages wait here (SQLite, bounded) until the broker acknowledges them.

One small table in its own file under robot.state_dir, so alerts raised while the broker is away survive both the
outage and a restart of the robot. Writes come from the bridge's own thread only, never from the control loop.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS mqtt_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Spooled:
    """One message waiting for the broker."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


class DiskSpool:
    """FIFO of outgoing messages in SQLite (WAL), at most `max_messages`; beyond that the oldest is dropped and
    counted. When the file cannot be opened (read-only or corrupt disk) it falls back to memory, loudly: the
    robot must keep running either way."""

    def __init__(self, path: str | Path | None, max_messages: int = 10000) -> None:
        self.max_messages = max_messages
        self.dropped = 0
        self.on_disk = path is not None
        self._lock = threading.Lock()
        self._db = self._open(path)
        self._count = int(self._db.execute("SELECT COUNT(*) FROM mqtt_outbox").fetchone()[0])

    def _open(self, path: str | Path | None) -> sqlite3.Connection:
        if path is not None:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a crash of the process
                db.execute(SCHEMA)
                db.execute("SELECT COUNT(*) FROM mqtt_outbox").fetchone()
                return db
            except (OSError, sqlite3.Error) as err:
                log.error("MQTT spool %s unusable (%s): keeping unsent messages in memory only", path, err)
                self.on_disk = False
        db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        db.execute(SCHEMA)
        return db

    def __len__(self) -> int:
        return self._count

    def put(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, *, replace: bool = False
    ) -> int:
        """Append one message; returns its id. `replace`: unsent messages on the same topic are superseded
        (a retained "latest" message: only the newest matters, so an outage does not fill the spool with them)."""
        with self._lock:
            if replace:
                cur = self._db.execute("DELETE FROM mqtt_outbox WHERE topic = ?", (topic,))
                self._count -= max(0, cur.rowcount)
            cur = self._db.execute(
                "INSERT INTO mqtt_outbox (topic, payload, qos, retain, created) VALUES (?, ?, ?, ?, ?)",
                (topic, payload, qos, int(retain), time.time()),
            )
            self._count += 1
            over = self._count - self.max_messages
            if over > 0:
                self._db.execute(
                    "DELETE FROM mqtt_outbox WHERE id IN (SELECT id FROM mqtt_outbox ORDER BY id LIMIT ?)",
                    (over,),
                )
                self._count -= over
                self.dropped += over
                log.error(
                    "MQTT spool full (%d): dropped the %d oldest unsent message(s)", self.max_messages, over
                )
            return int(cur.lastrowid or 0)

    def after(self, last_id: int, limit: int) -> list[Spooled]:
        """Up to `limit` messages with id > last_id, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, qos, retain FROM mqtt_outbox WHERE id > ? ORDER BY id LIMIT ?",
                (last_id, limit),
            ).fetchall()
        return [Spooled(r[0], r[1], bytes(r[2]), r[3], bool(r[4])) for r in rows]

    def remove(self, ids: list[int]) -> None:
        """Forget delivered messages."""
        if not ids:
            return
        with self._lock:
            cur = self._db.executemany("DELETE FROM mqtt_outbox WHERE id = ?", [(i,) for i in ids])
            self._count -= max(0, cur.rowcount)

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error as err:
                log.error("MQTT spool: while closing: %s", err)
