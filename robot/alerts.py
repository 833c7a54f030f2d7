"""The one alert outbox: the supervisor appends, delivery channels (log, SMS, dashboard) read at their own pace."""

from __future__ import annotations

import threading
from collections import deque

from robot.core.types import Alert


class AlertOutbox:
    """Bounded, thread-safe list of alerts with a sequence number each, so every reader keeps its own cursor.

    Nothing is lost silently: when full, the oldest alert is dropped and `dropped` counts it.
    """

    def __init__(self, maxlen: int = 1000) -> None:
        self._lock = threading.Lock()
        self._items: deque[tuple[int, Alert]] = deque(maxlen=maxlen)
        self._next = 0
        self.dropped = 0

    def add(self, alert: Alert) -> int:
        with self._lock:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            seq = self._next
            self._items.append((seq, alert))
            self._next += 1
            return seq

    def since(self, cursor: int) -> tuple[int, list[Alert]]:
        """Alerts with sequence >= cursor, and the cursor to use next time."""
        with self._lock:
            items = [a for s, a in self._items if s >= cursor]
            return self._next, items

    def recent(self, n: int = 20) -> tuple[Alert, ...]:
        with self._lock:
            n = min(n, len(self._items))
            return tuple(self._items[i][1] for i in range(len(self._items) - n, len(self._items)))
