"""The Arduino wire protocol (docs/protocol.md): COBS frames with version, type, seq, length, payload, CRC-16.

Pure: standard library and the `cobs` package only. The firmware's protocol.cpp implements the same rules; both are tested against
tests/vectors/protocol.json so the two can never drift apart.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from cobs import cobs as _cobs

from robot.core.frozen import quick_init
from robot.core.types import ALL_BRAKED, MotorOutputs, PinState
from robot.errors import ProtocolError

PROTOCOL_VERSION = 1
FIRMWARE_VERSION = (1, 1, 0)  # 1.1.0 added GET_INFO / INFO (the build id)
MAX_WATCHDOG_MS = 1000
DEFAULT_WATCHDOG_MS = 300  # the firmware's link watchdog until a HELLO sets another (protocol.h)
CHANNELS = 5
HEADER_LEN = 5  # version, type, seq (u16 LE), payload length
CRC_LEN = 2
MAX_PAYLOAD = 48
MAX_FRAME = HEADER_LEN + MAX_PAYLOAD + CRC_LEN  # decoded bytes
MAX_ENCODED = MAX_FRAME + 1  # COBS adds one byte to blocks shorter than 254 bytes
NO_SEQ = 0xFFFF  # ref_seq of a report that answers no readable request


class MsgType(IntEnum):
    """Message types; host -> device below 0x80, device -> host from 0x80."""

    HELLO = 0x01
    SET_MOTORS = 0x02
    HEARTBEAT = 0x03
    GET_STATUS = 0x04
    GET_INFO = 0x05
    ACK = 0x80
    HELLO_REPLY = 0x81
    STATUS = 0x82
    ERROR = 0x83
    INFO = 0x84


class ErrorCode(IntEnum):
    """Why the device rejected a frame (ERROR report `code`)."""

    CRC = 1
    FRAME = 2  # bad COBS, shorter than header + CRC, or length field disagrees with the frame
    OVERFLOW = 3
    VERSION = 4
    TYPE = 5
    LENGTH = 6
    VALUE = 7
    NOT_READY = 8  # no HELLO since boot or since the watchdog tripped


class FrameError(ProtocolError):
    """A frame failed to decode; `code` says why (an ErrorCode)."""

    def __init__(self, code: ErrorCode, message: str, detail: int = 0xFF) -> None:
        super().__init__(f"arduino link: {message}")
        self.code = code
        self.detail = detail


# --- CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor; check("123456789") = 0x29B1.


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE of `data` (binascii.crc_hqx is this CRC when started at 0xFFFF)."""
    return binascii.crc_hqx(data, 0xFFFF)


_crc_hqx = binascii.crc_hqx
# Precompiled layouts: the simulator encodes and decodes four frames per 50 ms step.
_HEADER = struct.Struct("<BBHB")
_U16 = struct.Struct("<H")


# --- COBS (Cheshire & Baker 1999): removes every 0x00 so 0x00 can delimit frames. The `cobs` package does it
# in C, byte for byte as the firmware's protocol.cpp (tests/vectors/protocol.json holds both to it).


def cobs_encode(data: bytes) -> bytes:
    """COBS-encode `data` (no delimiter appended); a full 254-byte run at the end gets no empty block."""
    return _cobs.encode(data)


def cobs_decode(data: bytes) -> bytes:
    """Decode one COBS block (without its delimiter); raises FrameError on a malformed block."""
    try:
        return _cobs.decode(data)
    except _cobs.DecodeError as err:
        raise FrameError(ErrorCode.FRAME, f"bad COBS block ({err})") from None


# --- Frames


@quick_init
@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded frame; `version` is not checked here so a mismatch can be reported by the caller."""

    version: int
    type: int
    seq: int
    payload: bytes


def pack_frame(msg_type: int, seq: int, payload: bytes, version: int = PROTOCOL_VERSION) -> bytes:
    """Frame bytes before COBS: header, payload, CRC (little-endian)."""
    if len(payload) > MAX_PAYLOAD:
        raise FrameError(ErrorCode.LENGTH, f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = _HEADER.pack(version, msg_type, seq & 0xFFFF, len(payload)) + payload
    return body + _U16.pack(_crc_hqx(body, 0xFFFF))


def encode_frame(msg_type: int, seq: int, payload: bytes = b"", version: int = PROTOCOL_VERSION) -> bytes:
    """Wire bytes of one frame: COBS(header + payload + CRC) followed by the 0x00 delimiter."""
    return cobs_encode(pack_frame(msg_type, seq, payload, version)) + b"\x00"


def unpack_frame(raw: bytes) -> Frame:
    """Check length and CRC of a COBS-decoded frame and split it; raises FrameError."""
    if len(raw) < HEADER_LEN + CRC_LEN:
        raise FrameError(ErrorCode.FRAME, f"frame of {len(raw)} bytes is shorter than {HEADER_LEN + CRC_LEN}")
    if len(raw) > MAX_FRAME:
        raise FrameError(ErrorCode.OVERFLOW, f"frame of {len(raw)} bytes exceeds {MAX_FRAME}")
    (crc,) = _U16.unpack_from(raw, len(raw) - CRC_LEN)
    if _crc_hqx(raw[:-CRC_LEN], 0xFFFF) != crc:
        raise FrameError(ErrorCode.CRC, "CRC mismatch")
    version, msg_type, seq, length = _HEADER.unpack_from(raw)
    if length != len(raw) - HEADER_LEN - CRC_LEN:
        raise FrameError(ErrorCode.FRAME, f"length field {length} disagrees with the frame")
    return Frame(version, msg_type, seq, bytes(raw[HEADER_LEN:-CRC_LEN]))


def decode_frame(block: bytes) -> Frame:
    """Decode one COBS block (without the 0x00 delimiter) into a Frame; raises FrameError."""
    if len(block) > MAX_ENCODED:
        raise FrameError(ErrorCode.OVERFLOW, f"frame of {len(block)} encoded bytes exceeds {MAX_ENCODED}")
    return unpack_frame(cobs_decode(block))


class FrameReader:
    """Splits a byte stream on 0x00 and decodes each frame; an overlong frame is dropped, never truncated."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._overflowed = False

    @property
    def pending(self) -> bool:
        """Bytes of an unfinished frame (or an overlong one being dropped) are waiting for the rest."""
        return bool(self._buf) or self._overflowed

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        """Bytes in; decoded frames and errors out, in order. Empty blocks (0x00 0x00) are skipped."""
        n = len(data)
        if not self._buf and not self._overflowed and 1 < n <= MAX_ENCODED + 1 and data.find(0) == n - 1:
            # Exactly one whole frame, nothing pending: every exchange of the simulator, most serial reads.
            try:
                return [decode_frame(bytes(data[:-1]))]
            except FrameError as err:
                return [err]
        out: list[Frame | FrameError] = []
        start = 0
        while True:
            end = data.find(0, start)
            part = data[start:] if end < 0 else data[start:end]
            if not self._overflowed:
                self._buf += part
                if len(self._buf) > MAX_ENCODED:
                    self._overflowed = True
                    self._buf.clear()
            if end < 0:
                return out
            if self._overflowed:
                out.append(FrameError(ErrorCode.OVERFLOW, f"frame longer than {MAX_ENCODED} bytes dropped"))
            elif self._buf:
                try:
                    out.append(decode_frame(bytes(self._buf)))
                except FrameError as err:
                    out.append(err)
            self._buf.clear()
            self._overflowed = False
            start = end + 1


# --- Messages


@dataclass(frozen=True, slots=True)
class Hello:
    """Host -> device: start a session; the device brakes when no valid frame came for `watchdog_ms`."""

    watchdog_ms: int


@quick_init
@dataclass(frozen=True, slots=True)
class SetMotors:
    """Host -> device: all five channels, applied together or not at all."""

    outputs: MotorOutputs


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Host -> device: keep the watchdog fed without changing the motors."""


@dataclass(frozen=True, slots=True)
class GetStatus:
    """Host -> device: ask for a STATUS report."""


@dataclass(frozen=True, slots=True)
class GetInfo:
    """Host -> device: ask which firmware build it runs (an INFO report)."""


@quick_init
@dataclass(frozen=True, slots=True)
class Ack:
    """Device -> host: the request with sequence number `ref_seq` was applied."""

    ref_seq: int


@dataclass(frozen=True, slots=True)
class HelloReply:
    """Device -> host: session started; the firmware's versions and the watchdog it applied."""

    ref_seq: int
    protocol: int
    firmware: tuple[int, int, int]
    watchdog_ms: int


@dataclass(frozen=True, slots=True)
class Status:
    """Device -> host: applied pins, watchdog state, uptime, error counters and versions."""

    ref_seq: int
    pins: MotorOutputs
    watchdog_tripped: bool
    session: bool
    uptime_ms: int
    watchdog_ms: int
    crc_errors: int
    bad_frames: int
    overflows: int
    firmware: tuple[int, int, int]
    protocol: int


@dataclass(frozen=True, slots=True)
class ErrorReport:
    """Device -> host: a frame was rejected whole; `detail` is the offending payload byte index (0xFF:
    none)."""

    code: ErrorCode | int
    ref_seq: int
    detail: int


@dataclass(frozen=True, slots=True)
class Info:
    """Device -> host: the firmware's build id (firmware_build.source_build_id of the sources it was built
    from; 0 for a build without one)."""

    ref_seq: int
    build_id: int


Message = Hello | SetMotors | Heartbeat | GetStatus | GetInfo | Ack | HelloReply | Status | ErrorReport | Info

_STATUS_FMT = "<H15sBIHHHHBBBB"
STATUS_LEN = struct.calcsize(_STATUS_FMT)
_HELLO_REPLY_FMT = "<HBBBBH"
_INFO_FMT = "<HI"
FLAG_TRIPPED = 0x01
FLAG_SESSION = 0x02


def _pins_bytes(outputs: MotorOutputs) -> bytes:
    return bytes(v for p in outputs for v in p)


def _pins_from(raw: bytes) -> MotorOutputs:
    return MotorOutputs(*(PinState(raw[i], raw[i + 1], raw[i + 2]) for i in range(0, 15, 3)))


def check_outputs(outputs: MotorOutputs) -> None:
    """Raise FrameError(VALUE) unless every IN is 0/1 and every EN 0..255 (what the device would reject)."""
    for ch, p in enumerate(outputs):
        in1, in2, en = p
        if not (
            isinstance(in1, int)
            and isinstance(in2, int)
            and isinstance(en, int)
            and 0 <= in1 <= 1
            and 0 <= in2 <= 1
            and 0 <= en <= 255
        ):
            k, v, hi = next((k, v, hi) for k, (v, hi) in enumerate(zip(p, (1, 1, 255), strict=True))
                            if not isinstance(v, int) or not 0 <= v <= hi)  # fmt: skip
            raise FrameError(ErrorCode.VALUE, f"channel {ch} pin {k} value {v!r} outside 0..{hi}")


_SET_MOTORS = struct.Struct("<" + "B" * 4 * CHANNELS)
_ERROR_FMT = struct.Struct("<BHB")


def _set_motors_payload(msg: SetMotors) -> bytes:
    return set_motors_payload(msg.outputs)


def set_motors_payload(outputs: MotorOutputs) -> bytes:
    """The SET_MOTORS payload of checked outputs (check_outputs)."""
    a, b, c, d, e = outputs  # CHANNELS pin states, each sent with its channel number
    return _SET_MOTORS.pack(0, *a, 1, *b, 2, *c, 3, *d, 4, *e)


def _status_payload(msg: Status) -> bytes:
    flags = (FLAG_TRIPPED if msg.watchdog_tripped else 0) | (FLAG_SESSION if msg.session else 0)
    return struct.pack(
        _STATUS_FMT,
        msg.ref_seq,
        _pins_bytes(msg.pins),
        flags,
        msg.uptime_ms & 0xFFFFFFFF,
        msg.watchdog_ms,
        min(msg.crc_errors, 0xFFFF),
        min(msg.bad_frames, 0xFFFF),
        min(msg.overflows, 0xFFFF),
        *msg.firmware,
        msg.protocol,
    )


# One encoder per message class, looked up by type: every message takes the same single path.
_ENCODERS: dict[type, tuple[MsgType, Callable[[Any], bytes]]] = {
    Hello: (MsgType.HELLO, lambda m: _U16.pack(m.watchdog_ms)),
    SetMotors: (MsgType.SET_MOTORS, _set_motors_payload),
    Heartbeat: (MsgType.HEARTBEAT, lambda m: b""),
    GetStatus: (MsgType.GET_STATUS, lambda m: b""),
    GetInfo: (MsgType.GET_INFO, lambda m: b""),
    Info: (MsgType.INFO, lambda m: struct.pack(_INFO_FMT, m.ref_seq, m.build_id)),
    Ack: (MsgType.ACK, lambda m: _U16.pack(m.ref_seq)),
    HelloReply: (
        MsgType.HELLO_REPLY,
        lambda m: struct.pack(_HELLO_REPLY_FMT, m.ref_seq, m.protocol, *m.firmware, m.watchdog_ms),
    ),
    Status: (MsgType.STATUS, _status_payload),
    ErrorReport: (MsgType.ERROR, lambda m: _ERROR_FMT.pack(int(m.code), m.ref_seq, m.detail)),
}


def message_payload(msg: Message) -> tuple[MsgType, bytes]:
    """The type and little-endian payload of a message."""
    entry = _ENCODERS.get(type(msg))
    if entry is None:
        raise TypeError(f"not a protocol message: {msg!r}")
    msg_type, payload = entry
    return msg_type, payload(msg)


def encode_message(msg: Message, seq: int, version: int = PROTOCOL_VERSION) -> bytes:
    """Wire bytes (COBS + delimiter) of one message."""
    msg_type, payload = message_payload(msg)
    return encode_frame(msg_type, seq, payload, version)


_FIXED_LEN = {
    MsgType.HELLO: 2,
    MsgType.SET_MOTORS: 4 * CHANNELS,
    MsgType.HEARTBEAT: 0,
    MsgType.GET_STATUS: 0,
    MsgType.GET_INFO: 0,
    MsgType.ACK: 2,
    MsgType.HELLO_REPLY: struct.calcsize(_HELLO_REPLY_FMT),
    MsgType.STATUS: STATUS_LEN,
    MsgType.ERROR: 4,
    MsgType.INFO: struct.calcsize(_INFO_FMT),
}


# The last valid SET_MOTORS payload and its outputs: the same command comes 20 times a second while nothing
# changes, and the answer depends on the bytes alone.
_last_set_motors: tuple[bytes, MotorOutputs | None] = (b"", None)


def _check_set_motors(p: bytes) -> MotorOutputs:
    """Validate every byte before building anything, so a bad command is rejected whole."""
    global _last_set_motors
    last_p, last_out = _last_set_motors
    if last_out is not None and p == last_p:
        return last_out
    pins: list[PinState | None] = [None] * CHANNELS
    for i in range(CHANNELS):
        ch, in1, in2, en = p[4 * i : 4 * i + 4]
        if ch >= CHANNELS or pins[ch] is not None:
            raise FrameError(ErrorCode.VALUE, f"unknown or repeated channel {ch}", 4 * i)
        if in1 > 1:
            raise FrameError(ErrorCode.VALUE, f"channel {ch} IN1 = {in1}, must be 0 or 1", 4 * i + 1)
        if in2 > 1:
            raise FrameError(ErrorCode.VALUE, f"channel {ch} IN2 = {in2}, must be 0 or 1", 4 * i + 2)
        pins[ch] = PinState(in1, in2, en)
    out = MotorOutputs(*pins)  # type: ignore[arg-type]
    _last_set_motors = (bytes(p), out)
    return out


def _hello(p: bytes) -> Hello:
    (ms,) = _U16.unpack(p)
    if not 1 <= ms <= MAX_WATCHDOG_MS:
        raise FrameError(ErrorCode.VALUE, f"watchdog {ms} ms outside 1..{MAX_WATCHDOG_MS}", 0)
    return Hello(ms)


def _hello_reply(p: bytes) -> HelloReply:
    ref, proto, major, minor, patch, ms = struct.unpack(_HELLO_REPLY_FMT, p)
    return HelloReply(ref, proto, (major, minor, patch), ms)


def _status(p: bytes) -> Status:
    ref, pins, flags, up, wd, crc, bad, ovf, major, minor, patch, proto = struct.unpack(_STATUS_FMT, p)
    return Status(
        ref,
        _pins_from(pins),
        bool(flags & FLAG_TRIPPED),
        bool(flags & FLAG_SESSION),
        up,
        wd,
        crc,
        bad,
        ovf,
        (major, minor, patch),
        proto,
    )


def _error_report(p: bytes) -> ErrorReport:
    code, ref, detail = _ERROR_FMT.unpack(p)
    try:
        return ErrorReport(ErrorCode(code), ref, detail)
    except ValueError:
        return ErrorReport(code, ref, detail)


# One decoder per message type, looked up by the type byte (payload length already checked).
_DECODERS: dict[int, Callable[[bytes], Message]] = {
    MsgType.HELLO: _hello,
    MsgType.SET_MOTORS: lambda p: SetMotors(_check_set_motors(p)),
    MsgType.HEARTBEAT: lambda p: Heartbeat(),
    MsgType.GET_STATUS: lambda p: GetStatus(),
    MsgType.GET_INFO: lambda p: GetInfo(),
    MsgType.ACK: lambda p: Ack(_U16.unpack(p)[0]),
    MsgType.HELLO_REPLY: _hello_reply,
    MsgType.STATUS: _status,
    MsgType.ERROR: _error_report,
    MsgType.INFO: lambda p: Info(*struct.unpack(_INFO_FMT, p)),
}


def decode_message(frame: Frame) -> Message:
    """Parse a frame's payload; raises FrameError (TYPE, LENGTH or VALUE). The version is the caller's
    check."""
    decoder = _DECODERS.get(frame.type)
    if decoder is None:
        raise FrameError(ErrorCode.TYPE, f"unknown message type 0x{frame.type:02x}")
    p = frame.payload
    expected = _FIXED_LEN[frame.type]  # type: ignore[index]
    if len(p) != expected:
        name = MsgType(frame.type).name
        raise FrameError(ErrorCode.LENGTH, f"{name} payload is {len(p)} bytes, expected {expected}")
    return decoder(p)


__all__ = [
    "ALL_BRAKED",
    "DEFAULT_WATCHDOG_MS",
    "MAX_ENCODED",
    "MAX_FRAME",
    "MAX_WATCHDOG_MS",
    "PROTOCOL_VERSION",
    "Ack",
    "ErrorCode",
    "ErrorReport",
    "Frame",
    "FrameError",
    "FrameReader",
    "GetInfo",
    "GetStatus",
    "Heartbeat",
    "Hello",
    "HelloReply",
    "Info",
    "Message",
    "MsgType",
    "SetMotors",
    "Status",
    "cobs_decode",
    "cobs_encode",
    "crc16",
    "decode_frame",
    "decode_message",
    "encode_frame",
    "encode_message",
    "set_motors_payload",
]
