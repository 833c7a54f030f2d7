"""The one alert outbox: the supervisor appends, delivery channels (log, SMS, dashboard) read at their own pace.

With a Store, every alert is committed to SQLite before anyone can send or show it; the SMS service then reads
the alerts it has not handled from the store, so none is lost to a crash, a kill -9 or a full memory buffer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from robot.core.types import Alert
from robot.errors import StoreError

if TYPE_CHECKING:
    from robot.store import Store

log = logging.getLogger(__name__)


class AlertOutbox:
    """Bounded, thread-safe list of alerts with a sequence number each, so every reader keeps its own cursor.

    Nothing is lost silently: when full, the oldest alert is dropped from memory and `dropped` counts it (with a
    store it stays on disk). A store write that fails is counted in `store_errors`; the alert is still shown.
    """

    def __init__(self, maxlen: int = 1000, store: Store | None = None, now: float | None = None) -> None:
        self._lock = threading.Lock()
        self._items: deque[tuple[int, Alert]] = deque(maxlen=maxlen)
        self._next = 0
        self.dropped = 0
        self.store = store
        self.store_errors = 0
        if store is not None:
            self._load_recent(store, now)

    def _load_recent(self, store: Store, now: float | None) -> None:
        """Alerts of earlier runs, for the dashboard: their `at` rebased onto this run's clock by wall time."""
        try:
            recent = store.recent_alerts(min(50, self._items.maxlen or 50))
        except StoreError as err:
            log.error("alerts: %s", err)
            return
        if now is None or not recent:
            return
        wall_now = time.time()
        for stored in recent:
            a = stored.alert
            self._append(Alert(a.kind, a.severity, a.message, now - max(0.0, wall_now - stored.wall)))

    def _append(self, alert: Alert) -> int:
        with self._lock:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            seq = self._next
            self._items.append((seq, alert))
            self._next += 1
            return seq

    def add(self, alert: Alert) -> int:
        """Store (when there is a store), then publish; returns the in-memory sequence number."""
        if self.store is not None:
            try:
                self.store.add_alert(alert)
            except StoreError as err:
                self.store_errors += 1
                log.error("alert %r not stored: %s", alert.kind, err)
        return self._append(alert)

    @property
    def count(self) -> int:
        """How many alerts were ever added (the next sequence number)."""
        with self._lock:
            return self._next

    def since(self, cursor: int) -> tuple[int, list[Alert]]:
        """Alerts with sequence >= cursor, and the cursor to use next time."""
        with self._lock:
            items = [a for s, a in self._items if s >= cursor]
            return self._next, items

    def recent(self, n: int = 20) -> tuple[Alert, ...]:
        with self._lock:
            n = min(n, len(self._items))
            return tuple(self._items[i][1] for i in range(len(self._items) - n, len(self._items)))
