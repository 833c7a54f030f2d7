"""DirectLink: the MotorLink of the fast in-process simulator, speaking real frames to a SimArduino, no
threads."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

from arduino_bridge.codec import (
    PROTOCOL_VERSION,
    Ack,
    ErrorCode,
    ErrorReport,
    Frame,
    FrameError,
    FrameReader,
    Hello,
    HelloReply,
    Message,
    SetMotors,
    check_outputs,
    decode_message,
    encode_message,
    encode_set_motors,
)
from arduino_bridge.sim_arduino import SimArduino
from robot.core.types import ALL_BRAKED, MotorOutputs
from robot.errors import VersionMismatch

DEAD_AFTER_S = 0.3


class DirectLink:
    """Synchronous MotorLink over a SimArduino: every send() is one encoded exchange at the clock's time.

    Set `cut = True` to lose every frame in both directions (a link fault for scenarios).
    """

    def __init__(
        self,
        sim: SimArduino,
        clock: Callable[[], float],
        *,
        watchdog_ms: int = 300,
        dead_after_s: float = DEAD_AFTER_S,
    ) -> None:
        self.sim = sim
        self._clock = clock
        self._watchdog_ms = watchdog_ms
        self._dead_after_s = dead_after_s
        self.cut = False
        self.on_change: Callable[[bool], None] | None = None
        self.last_error: str | None = None
        self._reader = FrameReader()
        self._seq = 0
        self._session = False
        self._refused = False
        self._last_ack: float | None = None
        self._was_healthy = False
        self._closed = False
        # Kept as floats (exact to 2**53) so stats(), asked every step by the telemetry, is a plain copy.
        self._stats = {
            "sent": 0.0,
            "acked": 0.0,
            "lost": 0.0,
            "errors": 0.0,
            "crc_errors": 0.0,
            "handshakes": 0.0,
            "rtt_ms": 0.0,
        }

    # --- MotorLink

    def send(self, outputs: MotorOutputs) -> None:
        """Deliver these pin states now (handshaking first when needed); ignored after close()."""
        check_outputs(outputs)
        if self._closed:
            return
        self._send_motors(outputs)
        self._notify()

    @property
    def healthy(self) -> bool:
        """Handshake done, versions match and an acknowledgement came within the dead-link limit."""
        return (
            self._session
            and not self._refused
            and self._last_ack is not None
            and self._clock() - self._last_ack <= self._dead_after_s
        )

    def stats(self) -> dict[str, float]:
        """Counters: sent, acked, lost (no reply), errors (ERROR reports), crc_errors, handshakes, rtt_ms
        (0)."""
        return self._stats.copy()

    def close(self) -> None:
        """Brake everything once, then ignore further sends."""
        if self._closed:
            return
        if self._session and not self._refused:
            self._send_motors(ALL_BRAKED)
        self._closed = True
        self._session = False
        self._notify()

    def __enter__(self) -> DirectLink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- internals

    def _send_motors(self, outputs: MotorOutputs) -> None:
        for _ in range(2):  # a NOT_READY (device watchdog tripped) earns one fresh handshake
            if not self._session and not self._handshake():
                return
            reply = self._exchange(SetMotors(outputs))
            if isinstance(reply, ErrorReport) and reply.code == ErrorCode.NOT_READY:
                self._session = False
                continue
            return

    def _handshake(self) -> bool:
        self._stats["handshakes"] += 1
        reply = self._exchange(Hello(self._watchdog_ms))
        if isinstance(reply, ErrorReport) and reply.code == ErrorCode.VERSION:
            self._refuse(reply.detail)
            return False
        if not isinstance(reply, HelloReply):
            return False
        if reply.protocol != PROTOCOL_VERSION:
            self._refuse(reply.protocol)
            return False
        self._refused = False
        self._session = True
        return True

    def _refuse(self, theirs: int) -> None:
        self._refused = True
        self._session = False
        self.last_error = str(
            VersionMismatch(
                f"arduino (simulated): firmware speaks protocol version {theirs}, this controller "
                f"{PROTOCOL_VERSION}; flash the matching firmware with `ramudroid firmware flash`"
            )
        )

    def _exchange(self, msg: Message) -> Message | None:
        now = self._clock()
        self._seq = (self._seq + 1) & 0xFFFF
        seq = self._seq
        self._stats["sent"] += 1
        if self.cut:
            self.sim.tick(now)
            self._stats["lost"] += 1
            return None
        reply = None
        # Every SetMotors here carries checked outputs (send() checks; close() sends ALL_BRAKED).
        wire = encode_set_motors(msg.outputs, seq) if type(msg) is SetMotors else encode_message(msg, seq)
        for item in self._reader.feed(self.sim.feed(wire, now)):
            if isinstance(item, FrameError):
                self._stats["crc_errors"] += 1
                continue
            reply = self._parse(item)
        if reply is None:
            self._stats["lost"] += 1
        elif isinstance(reply, Ack | HelloReply) and reply.ref_seq == seq:
            self._stats["acked"] += 1
            self._last_ack = now
        elif isinstance(reply, ErrorReport):
            self._stats["errors"] += 1
        return reply

    def _parse(self, frame: Frame) -> Message | None:
        try:
            return decode_message(frame)
        except FrameError:
            self._stats["crc_errors"] += 1
            return None

    def _notify(self) -> None:
        now_healthy = self.healthy
        if now_healthy != self._was_healthy:
            self._was_healthy = now_healthy
            if self.on_change is not None:
                self.on_change(now_healthy)
