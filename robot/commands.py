"""The one command queue: every operator command (dashboard, SMS, CLI) reaches the supervisor through it."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from robot.core.types import Command


class CommandQueue:
    """Thread-safe queue of operator commands; the supervisor drains it once per step.

    `on_put` is called after each put (the runner uses it to wake its loop at once).
    """

    def __init__(self, maxsize: int = 256, on_put: Callable[[], None] | None = None) -> None:
        self._q: queue.Queue[Command] = queue.Queue(maxsize=maxsize)
        self._lock = threading.Lock()
        self.on_put = on_put
        self.dropped = 0

    def put(self, command: Command) -> bool:
        """Add a command; False (and counted) when the queue is full, so a flood cannot grow memory."""
        try:
            self._q.put_nowait(command)
        except queue.Full:
            with self._lock:
                self.dropped += 1
            return False
        if self.on_put is not None:
            self.on_put()
        return True

    def drain(self) -> tuple[Command, ...]:
        """Everything queued so far, oldest first."""
        out: list[Command] = []
        while True:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                return tuple(out)
