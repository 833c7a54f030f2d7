"""LinkSession: the host's half of the Arduino link session (docs/protocol.md), without any I/O.

HELLO handshake, sequence numbers, acknowledgements and round-trip times, resends, heartbeats, the dead-link
limit, the resync after the firmware's link watchdog tripped, and the refusal of another protocol version. It
turns requests into wire bytes and received bytes into state, at times it is given; whoever owns the transport
moves the bytes: ArduinoLink over a serial port on its own thread, DirectLink straight into the simulated
Arduino on the simulator's clock. So the robot and the simulator run the same session; only the wire differs.

The firmware brakes on its own: its link watchdog (300 ms by default, set by HELLO) brakes every motor when no
valid frame arrives, and the AVR hardware watchdog (WDTO_250MS) resets a hung sketch into the same braked state.
"""

from __future__ import annotations

import math

from arduino_bridge.codec import (
    DEFAULT_WATCHDOG_MS,
    MAX_WATCHDOG_MS,
    PROTOCOL_VERSION,
    Ack,
    ErrorCode,
    ErrorReport,
    FrameError,
    FrameReader,
    GetInfo,
    Heartbeat,
    Hello,
    HelloReply,
    Info,
    Message,
    MsgType,
    Status,
    decode_message,
    encode_frame,
    encode_message,
    set_motors_payload,
)
from robot.core.types import MotorOutputs
from robot.errors import ConfigError, VersionMismatch

# No acknowledgement for this long: the link is dead. 50 ms (one control step) below the firmware's 300 ms
# watchdog, so the supervisor knows the link is gone by the time the Arduino brakes by itself.
DEAD_AFTER_S = 0.25
RESEND_S = 0.1  # an unacknowledged motor command is sent again after this long
MIN_HEARTBEAT_HZ = 10.0  # at 10 Hz two more heartbeats follow a lost one inside the 300 ms link watchdog

_COUNTERS = (
    "sent", "acked", "lost", "resent", "heartbeats", "crc_errors", "device_errors", "handshakes", "resyncs",
    "rtt_ms", "rtt_avg_ms", "rtt_max_ms",
)  # fmt: skip


class LinkSession:
    """One host session with the motor Arduino: bytes out for each request, state from the bytes that come back.

    Not thread-safe: one thread drives it. stats() may be called from any thread (it copies one dict).
    `where` names the part in error messages ("arduino on /dev/ttyACM0", "arduino (simulated)").
    """

    def __init__(
        self,
        *,
        watchdog_ms: int = DEFAULT_WATCHDOG_MS,
        heartbeat_hz: float = 20.0,
        dead_after_s: float = DEAD_AFTER_S,
        where: str = "arduino",
    ) -> None:
        if not 1 <= watchdog_ms <= MAX_WATCHDOG_MS:
            raise ConfigError(
                f"arduino link: watchdog {watchdog_ms} ms outside 1..{MAX_WATCHDOG_MS}; use {DEFAULT_WATCHDOG_MS}"
            )
        if heartbeat_hz < MIN_HEARTBEAT_HZ:
            raise ConfigError(
                f"arduino link: heartbeat {heartbeat_hz} Hz below {MIN_HEARTBEAT_HZ:g} Hz; use 20"
            )
        self.watchdog_ms = watchdog_ms
        self.heartbeat_s = 1.0 / heartbeat_hz
        self.dead_after_s = dead_after_s
        self.where = where
        self.open = False  # HELLO answered by a firmware of our protocol version
        self.refused = False  # the firmware speaks another protocol version: never drive it
        self.last_error: str | None = None
        self.last_status: Status | None = None
        self.last_hello: HelloReply | None = None  # the device's answer to our newest HELLO
        self.last_info: Info | None = None
        self.last_ack: float | None = None
        self.last_tx = 0.0
        self._seq = 0
        self._hello_seq: int | None = None
        self._inflight: dict[int, float] = {}  # seq -> when sent
        self._unacked: tuple[int, MotorOutputs, float] | None = None  # the newest command until its ACK
        self._reader = FrameReader()
        self._counts = dict.fromkeys(_COUNTERS, 0.0)
        # The newest command's outputs and payload: the same outputs are sent 20 times a second while nothing
        # changes, and the payload depends on them alone (only an immutable MotorOutputs is kept).
        self._motors: tuple[MotorOutputs | None, bytes] = (None, b"")

    # --- state

    def healthy(self, now: float) -> bool:
        """Session open, versions match, and an acknowledgement came within the dead-link limit (250 ms)."""
        last = self.last_ack
        return self.open and not self.refused and last is not None and now - last <= self.dead_after_s

    @property
    def command_pending(self) -> bool:
        """The newest motor command has not been acknowledged yet."""
        return self._unacked is not None

    def stats(self) -> dict[str, float]:
        """sent, acked, lost (no reply within the dead-link limit), resent, heartbeats, crc_errors (received),
        device_errors (ERROR reports), handshakes, resyncs, rtt_ms (last), rtt_avg_ms, rtt_max_ms."""
        return self._counts.copy()

    def reset(self) -> None:
        """The transport was closed or reopened: no session, nothing in flight, a clean frame reader."""
        self.open = False
        self._hello_seq = None
        self._inflight.clear()
        self._unacked = None
        self._reader = FrameReader()

    # --- requests: each returns the wire bytes to send now

    def hello(self, now: float) -> bytes:
        """HELLO with our watchdog: opens (or reopens) the session when the device answers."""
        self._counts["handshakes"] += 1
        self.open = False
        self.refused = False
        self.last_hello = None
        wire = self._frame(Hello(self.watchdog_ms), now)
        self._hello_seq = self._seq
        return wire

    def command(self, outputs: MotorOutputs, now: float) -> bytes:
        """SET_MOTORS for checked outputs (codec.check_outputs); resent by due() until acknowledged."""
        payload = self.stage_command(outputs, now)
        return encode_frame(MsgType.SET_MOTORS, self._seq, payload)

    def stage_command(self, outputs: MotorOutputs, now: float) -> bytes:
        """command() but for its wire bytes: the session numbers the SET_MOTORS (self.seq) and counts it sent;
        returns its payload, whose frame is encode_frame(MsgType.SET_MOTORS, self.seq, payload). For a link
        that may hand the command over without bytes (DirectLink)."""
        last, payload = self._motors
        if outputs is not last:
            payload = set_motors_payload(outputs)
            self._motors = (outputs if type(outputs) is MotorOutputs else None, payload)
        self._next_seq(now)
        self._unacked = (self._seq, outputs, now)
        return payload

    def get_info(self, now: float) -> bytes:
        """GET_INFO: the device answers with its firmware's build id (last_info), or ERROR TYPE if too old."""
        self.last_info = None
        return self._frame(GetInfo(), now)

    @property
    def seq(self) -> int:
        """The sequence number of the newest frame sent."""
        return self._seq

    def due(self, now: float) -> bytes | None:
        """What the session must send by itself now: the unacknowledged command again, or a heartbeat."""
        if self._unacked is not None and now - self._unacked[2] >= RESEND_S:
            self._counts["resent"] += 1
            return self.command(self._unacked[1], now)
        if now - self.last_tx >= self.heartbeat_s:
            self._counts["heartbeats"] += 1
            return self._frame(Heartbeat(), now)
        return None

    def until_due(self, now: float) -> float:
        """Seconds until the next heartbeat is due (negative: overdue)."""
        return self.last_tx + self.heartbeat_s - now

    def until_next(self, now: float) -> float:
        """Seconds until the session has something to do by itself (negative: overdue): the next heartbeat, the
        unacknowledged command's resend (due()), or its health running out (healthy() turning False)."""
        at = self.last_tx + self.heartbeat_s
        if self._unacked is not None and self._unacked[2] + RESEND_S < at:
            at = self._unacked[2] + RESEND_S
        last = self.last_ack
        # Only while still healthy: once it has turned False there is nothing more to wait for.
        if self.open and last is not None and now <= last + self.dead_after_s < at:
            at = last + self.dead_after_s
        return at - now

    def _frame(self, msg: Message, now: float) -> bytes:
        self._next_seq(now)
        return encode_message(msg, self._seq)

    def _next_seq(self, now: float) -> None:
        """Number the frame about to be sent and note it in flight."""
        self._seq = (self._seq + 1) & 0xFFFF
        if self._seq == 0xFFFF:  # reserved: NO_SEQ in reports
            self._seq = 0
        self._inflight[self._seq] = now
        self.last_tx = now
        self._counts["sent"] += 1

    # --- replies

    def receive(self, data: bytes, now: float) -> list[Message]:
        """Bytes from the device at `now`: updates the session and returns the messages decoded from them.

        A NOT_READY report closes the session (the firmware's watchdog tripped: HELLO again); a version
        mismatch refuses it. Undecodable frames are counted (crc_errors) and dropped.
        """
        out: list[Message] = []
        for item in self._reader.feed(data):
            if isinstance(item, FrameError):
                self._counts["crc_errors"] += 1
                continue
            try:
                msg = decode_message(item)
            except FrameError:
                self._counts["crc_errors"] += 1
                continue
            self._handle(msg, now)
            out.append(msg)
        return out

    @property
    def reading_clean(self) -> bool:
        """No bytes of an unfinished reply are waiting: the next whole reply is read on its own."""
        return not self._reader.pending

    def acknowledged(self, ref_seq: int, now: float) -> None:
        """An ACK of `ref_seq` arrived at `now`: what receive() does with the bytes of one (DirectLink's
        in-process exchange, which hands the simulated Arduino's answer over without its bytes)."""
        # _handle's Ack case, without making the Ack to match it.
        self._ack(ref_seq, now)
        if self._unacked is not None and self._unacked[0] == ref_seq:
            self._unacked = None

    def expire(self, now: float) -> None:
        """Count the requests unanswered for longer than the dead-link limit as lost."""
        old = [s for s, t in self._inflight.items() if now - t > self.dead_after_s]
        for s in old:
            del self._inflight[s]
        self._counts["lost"] += len(old)

    def _handle(self, msg: Message, now: float) -> None:
        match msg:
            case Ack(ref_seq=ref):
                self._ack(ref, now)
                if self._unacked is not None and self._unacked[0] == ref:
                    self._unacked = None
            case HelloReply(ref_seq=ref) if ref == self._hello_seq:
                self._hello_seq = None
                self.last_hello = msg
                if msg.protocol != PROTOCOL_VERSION:
                    self._refuse(msg.protocol)
                    return
                self.open = True
                self.last_error = None
                self._ack(ref, now)
                self._inflight.clear()  # anything older was meant for the session before
            case Status():
                self.last_status = msg
                self._ack(msg.ref_seq, now)
            case Info(ref_seq=ref) if ref in self._inflight:
                self.last_info = msg
                self._ack(ref, now)
            case ErrorReport(code=code, ref_seq=ref):
                self._counts["device_errors"] += 1
                self._inflight.pop(ref, None)
                if code == ErrorCode.NOT_READY:
                    self._counts["resyncs"] += 1
                    self.open = False
                elif code == ErrorCode.VERSION:
                    self._hello_seq = None
                    self._refuse(msg.detail)
                elif self._unacked is not None and code in (ErrorCode.CRC, ErrorCode.FRAME):
                    seq, outputs, _ = self._unacked
                    self._unacked = (seq, outputs, -math.inf)  # garbled on the way: resend at once

    def _ack(self, seq: int, now: float) -> None:
        sent = self._inflight.pop(seq, None)
        if sent is None:
            return
        rtt = 1000.0 * (now - sent)
        c = self._counts
        c["acked"] += 1
        c["rtt_ms"] = rtt
        c["rtt_max_ms"] = max(c["rtt_max_ms"], rtt)
        c["rtt_avg_ms"] = rtt if c["rtt_avg_ms"] == 0.0 else 0.9 * c["rtt_avg_ms"] + 0.1 * rtt
        self.last_ack = now

    def _refuse(self, theirs: int) -> None:
        self.refused = True
        self.open = False
        self.last_error = str(
            VersionMismatch(
                f"{self.where}: firmware speaks protocol version {theirs}, this controller {PROTOCOL_VERSION}; "
                "refusing to drive. Flash the matching firmware: `ramudroid firmware flash`"
            )
        )
