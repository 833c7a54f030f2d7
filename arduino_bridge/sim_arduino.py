"""The simulated Arduino: the firmware's protocol and watchdog in Python, on the same codec, driven by
explicit time.

It must behave byte for byte like arduino_bridge/firmware/ramudroid_motor/protocol.cpp; both are tested against
tests/vectors/protocol.json. Like the firmware, it brakes every motor when no valid frame came within the link
watchdog that HELLO set (300 ms by default); the firmware's AVR hardware watchdog (250 ms) has no twin here.
"""

from __future__ import annotations

import math

from arduino_bridge.codec import (
    DEFAULT_WATCHDOG_MS,
    FIRMWARE_VERSION,
    NO_SEQ,
    PROTOCOL_VERSION,
    Ack,
    ErrorCode,
    ErrorReport,
    Frame,
    FrameError,
    FrameReader,
    GetInfo,
    GetStatus,
    Heartbeat,
    Hello,
    HelloReply,
    Info,
    Message,
    MsgType,
    SetMotors,
    Status,
    decode_message,
    encode_message,
)
from robot.core.types import ALL_BRAKED, MotorOutputs


def to_ms(now: float) -> int:
    """Seconds to the firmware's integer millisecond clock (floor, like millis())."""
    return math.floor(now * 1000.0 + 1e-9)


class SimArduino:
    """The motor Arduino as a pure state machine: bytes in at a time, reply bytes out; no threads, no
    clock."""

    def __init__(
        self,
        *,
        boot_at: float = 0.0,
        protocol_version: int = PROTOCOL_VERSION,
        firmware_version: tuple[int, int, int] = FIRMWARE_VERSION,
        build_id: int | None = None,
    ) -> None:
        self.protocol_version = protocol_version
        self.firmware_version = firmware_version
        if build_id is None:  # like a board flashed from these very sources
            from arduino_bridge.firmware_build import source_build_id

            build_id = source_build_id()
        self.build_id = build_id
        self._boot_ms = to_ms(boot_at)
        self._reader = FrameReader()
        self._tx_seq = 0
        self.pins: MotorOutputs = ALL_BRAKED
        self.session = False
        self.watchdog_tripped = False
        self.watchdog_ms = DEFAULT_WATCHDOG_MS
        self._last_valid_ms = self._boot_ms
        self._now_ms = self._boot_ms
        self.crc_errors = 0
        self.bad_frames = 0
        self.overflows = 0
        self.frames_ok = 0

    # --- time

    def tick(self, now: float) -> None:
        """Advance the clock to `now` and brake everything if the watchdog expired."""
        self._now_ms = max(self._now_ms, to_ms(now))
        if self.session and self._now_ms - self._last_valid_ms >= self.watchdog_ms:
            self.pins = ALL_BRAKED
            self.session = False
            self.watchdog_tripped = True

    @property
    def uptime_ms(self) -> int:
        """Milliseconds since boot, as the firmware's millis() would say."""
        return (self._now_ms - self._boot_ms) & 0xFFFFFFFF

    # --- bytes

    def feed(self, data: bytes, now: float) -> bytes:
        """Receive `data` at time `now` (watchdog checked first, like the firmware loop); returns the reply
        bytes."""
        self.tick(now)
        return b"".join(self._handle(item) for item in self._reader.feed(data))

    def take_motors(self, outputs: MotorOutputs, seq: int, now: float) -> int | None:
        """A SET_MOTORS the host just encoded (valid, checked outputs, our protocol version, sequence `seq`),
        handed over without its bytes: applied exactly as feed() applies the decoded frame, and the sequence
        its ACK acknowledges returned, the ACK's own bytes left unmade. None, with nothing done but the clock,
        when feed() would answer anything else (no session, another protocol version) or bytes of an earlier
        frame are still pending: then the bytes must go through feed()."""
        self.tick(now)
        if not self.session or self.protocol_version != PROTOCOL_VERSION or self._reader.pending:
            return None
        self.frames_ok += 1
        self.pins = outputs
        self._last_valid_ms = self._now_ms
        self._tx_seq = (self._tx_seq + 1) & 0xFFFF  # the ACK's sequence number, as _reply() counts it
        return seq

    def _reply(self, msg: Message) -> bytes:
        data = encode_message(msg, self._tx_seq, self.protocol_version)
        self._tx_seq = (self._tx_seq + 1) & 0xFFFF
        return data

    def _reject(self, code: ErrorCode, ref_seq: int = NO_SEQ, detail: int = 0xFF) -> bytes:
        if code == ErrorCode.CRC:
            self.crc_errors += 1
        elif code == ErrorCode.OVERFLOW:
            self.overflows += 1
        elif code != ErrorCode.NOT_READY:
            self.bad_frames += 1
        return self._reply(ErrorReport(code, ref_seq, detail))

    def _handle(self, item: Frame | FrameError) -> bytes:
        if isinstance(item, FrameError):
            return self._reject(item.code)
        frame = item
        if frame.version != self.protocol_version:
            return self._reject(ErrorCode.VERSION, frame.seq, self.protocol_version)
        if frame.type >= 0x80:  # a device -> host type is not a command
            return self._reject(ErrorCode.TYPE, frame.seq)
        try:
            msg = decode_message(frame)
        except FrameError as err:
            return self._reject(err.code, frame.seq, err.detail)
        self.frames_ok += 1
        match msg:
            case Hello(watchdog_ms=ms):
                self.pins = ALL_BRAKED  # a new session starts from rest
                self.session = True
                self.watchdog_tripped = False
                self.watchdog_ms = ms
                self._last_valid_ms = self._now_ms
                return self._reply(HelloReply(frame.seq, self.protocol_version, self.firmware_version, ms))
            case GetStatus():
                if self.session:
                    self._last_valid_ms = self._now_ms
                return self._reply(self.status(frame.seq))
            case GetInfo():
                if self.session:
                    self._last_valid_ms = self._now_ms
                return self._reply(Info(frame.seq, self.build_id))
            case SetMotors(outputs=outputs):
                if not self.session:
                    return self._reject(ErrorCode.NOT_READY, frame.seq)
                self.pins = outputs
                self._last_valid_ms = self._now_ms
                return self._reply(Ack(frame.seq))
            case Heartbeat():
                if not self.session:
                    return self._reject(ErrorCode.NOT_READY, frame.seq)
                self._last_valid_ms = self._now_ms
                return self._reply(Ack(frame.seq))
        raise AssertionError(msg)  # pragma: no cover - decode_message returns only the types above for < 0x80

    def status(self, ref_seq: int = NO_SEQ) -> Status:
        """The STATUS report the device would send now."""
        return Status(
            ref_seq=ref_seq,
            pins=self.pins,
            watchdog_tripped=self.watchdog_tripped,
            session=self.session,
            uptime_ms=self.uptime_ms,
            watchdog_ms=self.watchdog_ms,
            crc_errors=self.crc_errors,
            bad_frames=self.bad_frames,
            overflows=self.overflows,
            firmware=self.firmware_version,
            protocol=self.protocol_version,
        )

    def counters(self) -> dict[str, int]:
        """The error counters, as in a STATUS report."""
        return {"crc_errors": self.crc_errors, "bad_frames": self.bad_frames, "overflows": self.overflows}


__all__ = ["DEFAULT_WATCHDOG_MS", "MsgType", "SimArduino", "to_ms"]
