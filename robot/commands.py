"""The one command queue: every operator command (dashboard, SMS, CLI) reaches the supervisor through it."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from robot.core.types import Command, CommandKind
from robot.errors import StoreError

if TYPE_CHECKING:
    from robot.store import Store


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

    @property
    def pending(self) -> bool:
        """True when a command waits to be drained (the idle supervisor's wake check: no drain, no copy)."""
        return not self._q.empty()

    def drain(self) -> tuple[Command, ...]:
        """Everything queued so far, oldest first."""
        if self._q.empty():  # most steps: no command, and no Empty exception raised and caught
            return ()
        out: list[Command] = []
        while True:
            try:
                out.append(self._q.get_nowait())
            except queue.Empty:
                return tuple(out)


@dataclass(frozen=True, slots=True)
class EstopResult:
    """What became of one e-stop request: `applied` (latched on disk or queued, so the robot stops) and
    `persisted` (on disk: it survives a restart)."""

    applied: bool
    persisted: bool
    error: str = ""


class EmergencyStop:
    """The one way every entry point (dashboard, e-stop listener) stops the robot: queue the command that wakes
    the supervisor at once (the brake never waits for the disk), then latch the e-stop in the store (fsync'd);
    the caller acknowledges only after that. The supervisor also applies any latch it has not seen, so the stop
    holds even when the queue is full."""

    def __init__(self, commands: CommandQueue, store: Store | None, clock: Callable[[], float]) -> None:
        self.commands = commands
        self.store = store
        self.clock = clock

    def __call__(self, source: str) -> EstopResult:
        queued = self.commands.put(Command(CommandKind.ESTOP, at=self.clock(), source=source))
        persisted, error = False, ""
        if self.store is not None:
            try:
                self.store.latch_estop(source)
                persisted = True
            except StoreError as err:  # stopped anyway; the answer says it will not survive a restart
                error = str(err)
        return EstopResult(queued or persisted, persisted, error)
