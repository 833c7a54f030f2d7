"""The robot's durable memory: one SQLite database (WAL) in the state directory, `ramudroid.db`.

It keeps what must survive a crash, kill -9 or power cut: the e-stop latch, the operator's mode and the last state
(for the boot rule), why the process last stopped, the alerts, the SMS outbox, the SMS messages already handled
and an event log. Every write is one transaction. The e-stop latch, the mode and the stop reason are committed with
`synchronous=FULL` (fsync'd before the call returns, so they survive a power cut); the rest with WAL's NORMAL
(durable across a crash or kill -9, since the data is in the operating system's hands, at a fraction of the cost).

Thread-safe: the supervisor, the dashboard's thread and the SMS thread share one Store. A write that fails (disk
full, I/O error) raises StoreError; callers on the control path log it and carry on, the robot still stops.

For the power module: call `record_stop(StopReason.POWER_DOWN, detail)` before a planned power-down; it is not
overwritten by the SIGTERM that follows, and the next boot applies the same boot rule as after any restart.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robot.core.boot import SavedState, StopReason
from robot.core.types import Alert, Mode, Severity, State
from robot.errors import StoreError

log = logging.getLogger(__name__)

DB_FILE = "ramudroid.db"
SCHEMA_VERSION = 1
# Rows kept (oldest handled ones pruned first): a year of a busy robot's alerts fits easily on the SD card.
KEEP_ALERTS = 5000
KEEP_EVENTS = 20000
KEEP_SMS = 2000
PRUNE_EVERY = 200  # inserts between prunes

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, wall REAL NOT NULL);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, severity TEXT NOT NULL, message TEXT NOT NULL,
    at REAL NOT NULL, wall REAL NOT NULL, sms_done INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS alerts_sms ON alerts (sms_done, id);
CREATE TABLE IF NOT EXISTS sms_out (
    id INTEGER PRIMARY KEY, number TEXT NOT NULL, text TEXT NOT NULL, priority INTEGER NOT NULL,
    created REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, state TEXT NOT NULL DEFAULT 'pending',
    alert_id INTEGER, done_wall REAL);
CREATE INDEX IF NOT EXISTS sms_out_state ON sms_out (state, priority, id);
CREATE TABLE IF NOT EXISTS sms_seen (fingerprint TEXT PRIMARY KEY, wall REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, wall REAL NOT NULL, kind TEXT NOT NULL,
    detail TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """An alert as stored: its row id and the wall-clock time it was raised."""

    id: int
    alert: Alert
    wall: float


@dataclass(frozen=True, slots=True)
class StoredSms:
    """One SMS in the outbox: pending until sent, given up or dropped."""

    id: int
    number: str
    text: str
    priority: int
    attempts: int
    alert_id: int | None


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the event log."""

    id: int
    wall: float
    kind: str
    detail: str


class Store:
    """The SQLite store; `Store(":memory:")` for tests. Idempotent close(); a context manager."""

    def __init__(self, path: str | Path, *, wall: Callable[[], float] = time.time) -> None:
        self.path = str(path)
        self._wall = wall
        self._lock = threading.RLock()
        self._closed = False
        self._inserts = 0
        self.errors = 0
        self.recovered = ""  # why the old database was set aside at open, if it was
        self._conn = self._open()
        self._estop = self._load_estop()

    @classmethod
    def in_dir(cls, state_dir: str | Path) -> Store:
        """The store in `state_dir` (created if missing)."""
        d = Path(state_dir).expanduser()
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(
                f"state directory {d}: cannot create it ({err.strerror}); check robot.state_dir and permissions"
            ) from err
        return cls(d / DB_FILE)

    # ----- opening ------------------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        existed = self.path != ":memory:" and os.path.exists(self.path) and os.path.getsize(self.path) > 0
        try:
            return self._connect()
        except (sqlite3.DatabaseError, ValueError) as err:
            if not existed:
                raise StoreError(f"state store {self.path}: cannot create it ({err})") from err
            # A damaged file must not stop the robot from booting, and must not be silently forgotten either:
            # keep it for a person to look at, start a new one, and let the boot rule assume the worst.
            aside = f"{self.path}.unreadable-{int(self._wall())}"
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    os.replace(self.path + suffix, aside + suffix)
            self.recovered = f"{self.path} was unreadable ({err}); moved to {aside}"
            log.error("state store: %s", self.recovered)
            try:
                return self._connect()
            except (sqlite3.DatabaseError, ValueError) as err2:
                raise StoreError(f"state store {self.path}: cannot create it ({err2})") from err2

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        try:
            if self.path != ":memory:":
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise sqlite3.DatabaseError(f"journal_mode is {mode}, WAL unavailable")
            conn.execute("PRAGMA synchronous=NORMAL")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError(f"quick_check: {check}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"schema version {version} is newer than this program's")
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        return conn

    # ----- plumbing -----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _tx(self, *, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction; `durable`: fsync'd before it returns (synchronous=FULL)."""
        with self._lock:
            if self._closed:
                raise StoreError(f"state store {self.path}: used after close()")
            conn = self._conn
            try:
                if durable:
                    conn.execute("PRAGMA synchronous=FULL")
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as err:
                self.errors += 1
                raise StoreError(f"state store {self.path}: write failed ({err}); check the SD card") from err
            finally:
                if durable:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("PRAGMA synchronous=NORMAL")

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            if self._closed:
                raise StoreError(f"state store {self.path}: used after close()")
            try:
                return self._conn.execute(sql, args).fetchall()
            except sqlite3.Error as err:
                self.errors += 1
                raise StoreError(f"state store {self.path}: read failed ({err})") from err

    def _get(self, key: str, bad: Any = None) -> Any:
        """The JSON value under `key`; None when absent, `bad` when it is not valid JSON."""
        rows = self._read("SELECT value FROM kv WHERE key = ?", (key,))
        if not rows:
            return None
        try:
            return json.loads(rows[0][0])
        except (ValueError, TypeError, RecursionError):
            log.error("state store: value of %r is not valid JSON", key)
            return bad

    def _load_estop(self) -> dict[str, Any]:
        """The latch as stored; a record that cannot be read counts as latched (a person's stop is never lost
        to a damaged file)."""
        value = self._get("estop", bad="bad")
        if value is None:
            return {"latched": False, "generation": 0, "source": ""}
        if (
            isinstance(value, dict)
            and isinstance(value.get("latched"), bool)
            and type(value.get("generation")) is int
        ):
            return {
                "latched": value["latched"],
                "generation": value["generation"],
                "source": str(value.get("source", "")),
            }
        log.error("state store: e-stop record unreadable (%.60r); treating the e-stop as latched", value)
        return {"latched": True, "generation": 1, "source": "store (e-stop record unreadable)"}

    def _put(self, conn: sqlite3.Connection, key: str, value: Any) -> None:
        conn.execute(
            "INSERT INTO kv (key, value, wall) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, wall = excluded.wall",
            (key, json.dumps(value), self._wall()),
        )

    def _event(self, conn: sqlite3.Connection, kind: str, detail: str) -> None:
        conn.execute(
            "INSERT INTO events (wall, kind, detail) VALUES (?, ?, ?)", (self._wall(), kind, detail[:500])
        )
        self._count_insert(conn)

    def _count_insert(self, conn: sqlite3.Connection) -> None:
        self._inserts += 1
        if self._inserts % PRUNE_EVERY == 0:
            conn.execute(
                "DELETE FROM alerts WHERE sms_done = 1 AND id <= (SELECT MAX(id) FROM alerts) - ?",
                (KEEP_ALERTS,),
            )
            conn.execute("DELETE FROM events WHERE id <= (SELECT MAX(id) FROM events) - ?", (KEEP_EVENTS,))
            conn.execute(
                "DELETE FROM sms_out WHERE state != 'pending' AND id <= (SELECT MAX(id) FROM sms_out) - ?",
                (KEEP_SMS,),
            )
            conn.execute(
                "DELETE FROM sms_seen WHERE rowid <= (SELECT MAX(rowid) FROM sms_seen) - ?", (KEEP_SMS,)
            )

    # ----- what the last run left behind --------------------------------------------------------------------

    def saved(self) -> SavedState:
        """The state the boot rule needs (robot.core.boot.boot_mode)."""
        if self.recovered:
            return SavedState(unreadable=True)
        mode = self._get("mode") or {}
        state = self._get("state") or {}
        stop = self._get("stop") or {}
        with self._lock:
            estop = dict(self._estop)
        try:
            return SavedState(
                estop=bool(estop.get("latched")),
                estop_source=str(estop.get("source", "")),
                mode=Mode(mode["mode"]) if "mode" in mode else None,
                mode_source=str(mode.get("source", "")),
                state=State(state["state"]) if "state" in state else None,
                stop_reason=StopReason(stop["reason"]) if "reason" in stop else None,
                stop_detail=str(stop.get("detail", "")),
            )
        except (ValueError, TypeError, AttributeError) as err:
            log.error("state store: saved state unusable (%s); assuming the worst", err)
            return SavedState(unreadable=True)

    # ----- the e-stop latch ---------------------------------------------------------------------------------

    # The three readers below take no lock: the control loop reads them every step and must never wait for
    # another thread's fsync. `_estop` is only ever replaced whole (after its commit), never changed in place.

    @property
    def estop_latched(self) -> bool:
        """True while an e-stop is latched (in memory, as last committed)."""
        return bool(self._estop.get("latched"))

    @property
    def estop_generation(self) -> int:
        """Grows by one with every latch; the supervisor compares it to apply latches it has not seen."""
        return int(self._estop["generation"])

    @property
    def estop_source(self) -> str:
        """Who latched the current (or last) e-stop."""
        return str(self._estop.get("source", ""))

    def latch_estop(self, source: str) -> int:
        """Latch the e-stop (fsync'd before returning) and return its generation. Already latched: nothing to
        write, the latch that is on disk already holds."""
        with self._lock:
            if self._estop.get("latched"):
                return int(self._estop["generation"])
            new: dict[str, Any] = {
                "latched": True,
                "generation": int(self._estop["generation"]) + 1,
                "source": source[:80],
            }
            with self._tx(durable=True) as conn:
                self._put(conn, "estop", new)
                self._event(conn, "estop", f"latched by {source}")
            self._estop = new
            return int(new["generation"])

    def clear_estop(self, generation: int, source: str = "") -> bool:
        """Clear the latch if it is still the one of `generation` (a newer latch is never cleared by an older
        RESET); True when cleared or already clear."""
        with self._lock:
            if not self._estop.get("latched"):
                return True
            if int(self._estop["generation"]) != generation:
                return False
            new = {"latched": False, "generation": generation, "source": self._estop.get("source", "")}
            with self._tx(durable=True) as conn:
                self._put(conn, "estop", new)
                self._event(conn, "reset", f"e-stop cleared by {source or 'reset'}")
            self._estop = new
            return True

    # ----- operator mode, last state, why the process stopped ----------------------------------------------

    def save_mode(self, mode: Mode, source: str) -> None:
        """The operator's mode (fsync'd: a person's PAUSE must survive a power cut)."""
        with self._tx(durable=True) as conn:
            self._put(conn, "mode", {"mode": mode.value, "source": source[:80]})
            self._event(conn, "mode", f"{mode.value} by {source}")

    def save_state(self, state: State) -> None:
        """The core's state, on each change (NORMAL durability: it only decides whether to resume)."""
        with self._tx() as conn:
            self._put(conn, "state", {"state": state.value})

    def mark_running(self, detail: str = "") -> None:
        """At start: until something else is recorded, this run counts as having crashed."""
        with self._tx(durable=True) as conn:
            self._put(conn, "stop", {"reason": StopReason.CRASH.value, "detail": "", "run": os.getpid()})
            self._event(conn, "start", detail or f"pid {os.getpid()}")

    def record_stop(self, reason: StopReason, detail: str = "") -> None:
        """Why this run is ending. A planned power-down, once recorded, is kept: the SIGTERM that follows it
        does not overwrite it."""
        with self._lock:
            current = self._get("stop") or {}
            if current.get("reason") == StopReason.POWER_DOWN.value and reason is not StopReason.POWER_DOWN:
                return
            with self._tx(durable=True) as conn:
                self._put(conn, "stop", {"reason": reason.value, "detail": detail[:200], "run": os.getpid()})
                self._event(conn, "stop", f"{reason.value}: {detail}" if detail else reason.value)

    # ----- alerts -------------------------------------------------------------------------------------------

    def add_alert(self, alert: Alert) -> int:
        """Store one alert (before anyone sends or shows it); returns its id."""
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO alerts (kind, severity, message, at, wall, sms_done) VALUES (?, ?, ?, ?, ?, ?)",
                (alert.kind, alert.severity.value, alert.message, alert.at, self._wall(), 0),
            )
            self._count_insert(conn)
            return int(cur.lastrowid or 0)

    def recent_alerts(self, n: int) -> list[StoredAlert]:
        """The newest `n` alerts, oldest first."""
        rows = self._read(
            "SELECT id, kind, severity, message, at, wall FROM alerts ORDER BY id DESC LIMIT ?", (n,)
        )
        return [self._alert(r) for r in reversed(rows)]

    def alert_count(self) -> int:
        """How many alerts are stored."""
        return int(self._read("SELECT COUNT(*) FROM alerts")[0][0])

    def alerts_for_sms(self, limit: int = 100) -> list[StoredAlert]:
        """Alerts the SMS service has not handled yet, oldest first."""
        rows = self._read(
            "SELECT id, kind, severity, message, at, wall FROM alerts WHERE sms_done = 0 ORDER BY id LIMIT ?",
            (limit,),
        )
        return [self._alert(r) for r in rows]

    @staticmethod
    def _alert(r: tuple[Any, ...]) -> StoredAlert:
        try:
            severity = Severity(r[2])
        except ValueError:
            severity = Severity.WARNING
        return StoredAlert(int(r[0]), Alert(str(r[1]), severity, str(r[3]), float(r[4])), float(r[5]))

    # ----- the SMS outbox -----------------------------------------------------------------------------------

    def queue_sms(
        self, items: Sequence[tuple[str, str, int, int | None]], handled_alerts: Sequence[int] = ()
    ) -> list[int]:
        """Add (number, text, priority, alert id) SMS and mark alerts handled, in one transaction, so an alert
        is turned into SMS exactly once whatever happens in between."""
        with self._tx() as conn:
            ids = []
            for number, text, priority, alert_id in items:
                cur = conn.execute(
                    "INSERT INTO sms_out (number, text, priority, created, alert_id) VALUES (?, ?, ?, ?, ?)",
                    (number, text, priority, self._wall(), alert_id),
                )
                ids.append(int(cur.lastrowid or 0))
                self._count_insert(conn)
            for alert_id in handled_alerts:
                conn.execute("UPDATE alerts SET sms_done = 1 WHERE id = ?", (alert_id,))
            return ids

    def pending_sms(self) -> list[StoredSms]:
        """SMS still to send, most urgent first, then oldest."""
        rows = self._read(
            "SELECT id, number, text, priority, attempts, alert_id FROM sms_out WHERE state = 'pending' "
            "ORDER BY priority, id"
        )
        return [StoredSms(int(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4]), r[5]) for r in rows]

    def sms_attempted(self, sms_id: int, attempts: int) -> None:
        """Count a failed attempt."""
        with self._tx() as conn:
            conn.execute("UPDATE sms_out SET attempts = ? WHERE id = ?", (attempts, sms_id))

    def sms_done(self, sms_id: int, state: str) -> None:
        """Close an SMS: 'sent', 'gave_up' or 'dropped'."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE sms_out SET state = ?, done_wall = ? WHERE id = ?", (state, self._wall(), sms_id)
            )
            if state != "sent":
                self._event(conn, "sms_" + state, f"SMS {sms_id} {state}")

    def sms_count(self, state: str) -> int:
        """How many SMS are in `state` (pending, sent, gave_up, dropped)."""
        return int(self._read("SELECT COUNT(*) FROM sms_out WHERE state = ?", (state,))[0][0])

    # ----- received SMS already handled ---------------------------------------------------------------------

    def sms_seen(self, fingerprint: str) -> bool:
        """True when a received SMS with this fingerprint was handled already (a replay after a crash)."""
        return bool(self._read("SELECT 1 FROM sms_seen WHERE fingerprint = ?", (fingerprint,)))

    def mark_sms_seen(self, fingerprint: str, *, estop_source: str = "", durable: bool = True) -> None:
        """Record a received SMS as handled (fsync'd unless not `durable`); with `estop_source`, latch the e-stop
        in the same fsync'd transaction, so a STOP is on disk before it is acknowledged."""
        with self._lock:
            latch = bool(estop_source) and not self._estop.get("latched")
            new = dict(self._estop)
            if latch:
                new = {
                    "latched": True,
                    "generation": int(self._estop["generation"]) + 1,
                    "source": estop_source,
                }
            with self._tx(durable=durable or bool(estop_source)) as conn:
                conn.execute(
                    "INSERT OR IGNORE INTO sms_seen (fingerprint, wall) VALUES (?, ?)",
                    (fingerprint, self._wall()),
                )
                if latch:
                    self._put(conn, "estop", new)
                    self._event(conn, "estop", f"latched by {estop_source}")
                self._count_insert(conn)
            self._estop = new

    def forget_sms(self, fingerprint: str) -> None:
        """Drop the record of a handled SMS once it is deleted from the SIM."""
        with self._tx() as conn:
            conn.execute("DELETE FROM sms_seen WHERE fingerprint = ?", (fingerprint,))

    # ----- the event log ------------------------------------------------------------------------------------

    def log_event(self, kind: str, detail: str = "") -> None:
        """Append one line to the event log."""
        with self._tx() as conn:
            self._event(conn, kind, detail)

    def events(self, n: int = 50) -> list[Event]:
        """The newest `n` events, oldest first."""
        rows = self._read("SELECT id, wall, kind, detail FROM events ORDER BY id DESC LIMIT ?", (n,))
        return [Event(int(r[0]), float(r[1]), str(r[2]), str(r[3])) for r in reversed(rows)]

    # ----- lifetime -----------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
