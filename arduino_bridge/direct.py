"""DirectLink: the MotorLink of the in-process simulator: the same LinkSession as the serial ArduinoLink, its
wire bytes handed straight to a simulated Arduino at the simulator's clock, no threads and no port."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from arduino_bridge.codec import check_outputs
from arduino_bridge.session import DEAD_AFTER_S, DEFAULT_WATCHDOG_MS, LinkSession
from robot.core.types import ALL_BRAKED, MotorOutputs


class Wire(Protocol):
    """The far end of an in-process link: the SimArduino (bytes in at a time, reply bytes out)."""

    def feed(self, data: bytes, now: float) -> bytes: ...

    def tick(self, now: float) -> None: ...


class DirectLink:
    """Synchronous MotorLink over a SimArduino: every send() is one exchange at the clock's time.

    Set `cut = True` to lose every frame in both directions (a link fault for scenarios).
    """

    def __init__(
        self,
        sim: Wire,
        clock: Callable[[], float],
        *,
        watchdog_ms: int = DEFAULT_WATCHDOG_MS,
        dead_after_s: float = DEAD_AFTER_S,
    ) -> None:
        self.sim = sim
        self._clock = clock
        self._session = LinkSession(
            watchdog_ms=watchdog_ms, dead_after_s=dead_after_s, where="arduino (simulated)"
        )
        self.cut = False
        self.on_change: Callable[[bool], None] | None = None
        self._was_healthy = False
        self._closed = False
        self._checked: MotorOutputs | None = None

    # --- MotorLink

    def send(self, outputs: MotorOutputs) -> None:
        """Deliver these pin states now (handshaking first when needed); ignored after close()."""
        if outputs is not self._checked:  # the same object again (a held brake) was checked already
            check_outputs(outputs)
            self._checked = outputs if type(outputs) is MotorOutputs else None  # only an immutable one
        if self._closed:
            return
        self._send_motors(outputs)
        self._notify()

    @property
    def healthy(self) -> bool:
        """Handshake done, versions match and an acknowledgement came within the dead-link limit (250 ms)."""
        return not self._closed and self._session.healthy(self._clock())

    @property
    def last_error(self) -> str | None:
        """Why the link is not healthy (a version mismatch), or None."""
        return self._session.last_error

    def stats(self) -> dict[str, float]:
        """The session's counters (LinkSession.stats)."""
        return self._session.stats()

    def close(self) -> None:
        """Brake everything once, then ignore further sends; safe to call twice."""
        if self._closed:
            return
        if self._session.open:
            self._send_motors(ALL_BRAKED)
        self._closed = True
        self._session.reset()
        self._notify()

    def __enter__(self) -> DirectLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the transport

    def _send_motors(self, outputs: MotorOutputs) -> None:
        session = self._session
        now = self._clock()
        for _ in range(2):  # a NOT_READY (the firmware's watchdog tripped) earns one fresh handshake
            if not session.open:
                self._exchange(session.hello(now), now)
                if not session.open:
                    break
            self._exchange(session.command(outputs, now), now)
            if session.open:
                break
        session.expire(now)

    def _exchange(self, wire: bytes, now: float) -> None:
        if self.cut:
            self.sim.tick(now)
            return
        self._session.receive(self.sim.feed(wire, now), now)

    def _notify(self) -> None:
        now_healthy = self.healthy
        if now_healthy != self._was_healthy:
            self._was_healthy = now_healthy
            if self.on_change is not None:
                self.on_change(now_healthy)
