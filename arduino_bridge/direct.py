"""DirectLink: the MotorLink of the in-process simulator: the same LinkSession as the serial ArduinoLink, its
wire bytes handed straight to a simulated Arduino at the simulator's clock, no threads and no port."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from arduino_bridge.codec import MsgType, check_outputs, encode_frame
from arduino_bridge.session import DEAD_AFTER_S, DEFAULT_WATCHDOG_MS, LinkSession
from robot.core.types import ALL_BRAKED, MotorOutputs, PinState


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
        self._exact: MotorOutputs | None = None
        # SimArduino.take_motors: an encoded SET_MOTORS handed over without its bytes (_exchange_motors).
        self._take: Callable[[MotorOutputs, int, float], int | None] | None = getattr(
            sim, "take_motors", None
        )

    # --- MotorLink

    def send(self, outputs: MotorOutputs) -> None:
        """Deliver these pin states now (handshaking first when needed); ignored after close()."""
        if outputs is not self._checked:  # the same object again (a held brake) was checked already
            check_outputs(outputs)
            self._checked = outputs if type(outputs) is MotorOutputs else None  # only an immutable one
            # What the Arduino would decode from the frame is equal to these outputs, and of the same types.
            exact = self._checked is not None and all(
                type(p) is PinState and type(p.in1) is int and type(p.in2) is int and type(p.en) is int
                for p in outputs
            )
            self._exact = outputs if exact else None
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
            self._exchange_motors(outputs, now)
            if session.open:
                break
        session.expire(now)

    def _exchange_motors(self, outputs: MotorOutputs, now: float) -> None:
        """One SET_MOTORS exchange. The session always numbers and counts it; while the simulated Arduino's
        answer can only be the ACK (a session, our protocol version, no bytes pending or to be corrupted on
        either side), the checked outputs go to it as the decoded frame and the ACK comes back as its sequence
        number, the same state change on both ends as the bytes make (decode(encode(m)) == m is the codec's
        tested promise), without encoding and decoding the frame and the ACK at 20 Hz."""
        session = self._session
        payload = session.stage_command(outputs, now)  # the frame's bytes are made only if they go out
        take = self._take
        if take is not None and outputs is self._exact and not self.cut and session.reading_clean:
            ref = take(outputs, session.seq, now)
            if ref is not None:
                session.acknowledged(ref, now)
                return
        self._exchange(encode_frame(MsgType.SET_MOTORS, session.seq, payload), now)

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
