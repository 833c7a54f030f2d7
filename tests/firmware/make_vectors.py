"""Regenerate tests/vectors/protocol.json from the Python codec and SimArduino (run by hand, then review the
diff).

The CRC and COBS known answers come from their published definitions, not from our code; the frame and device
vectors were produced here once, checked by hand against docs/protocol.md, and are then frozen: the Python and
C++ implementations are both tested against the committed file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from arduino_bridge import codec
from arduino_bridge.codec import (
    Ack,
    ErrorCode,
    ErrorReport,
    GetInfo,
    GetStatus,
    Heartbeat,
    Hello,
    HelloReply,
    Info,
    SetMotors,
    Status,
    encode_frame,
    encode_message,
    pack_frame,
)
from arduino_bridge.sim_arduino import SimArduino
from robot.core.types import ALL_BRAKED, MotorOutputs, PinState

OUT = Path(__file__).resolve().parents[1] / "vectors" / "protocol.json"
# The device in the scenarios reports this build id; the C++ runner is compiled with -DRD_BUILD_ID=it.
BUILD_ID = 0x5EED1D01

FWD = MotorOutputs(
    PinState(1, 0, 180), PinState(1, 0, 180), PinState(0, 1, 255), PinState(1, 0, 255), PinState(1, 0, 128)
)
SPIN = MotorOutputs(PinState(0, 1, 140), PinState(1, 0, 140), BR := PinState(0, 0, 0), BR, BR)


def pins_json(outputs: MotorOutputs) -> list[list[int]]:
    return [list(p) for p in outputs]


def msg_json(msg: codec.Message) -> dict[str, Any]:
    name = type(msg).__name__
    d: dict[str, Any] = {"kind": name}
    for k in msg.__slots__:  # type: ignore[attr-defined]
        v = getattr(msg, k)
        if isinstance(v, MotorOutputs):
            v = pins_json(v)
        elif isinstance(v, tuple):
            v = list(v)
        elif isinstance(v, ErrorCode):
            v = int(v)
        d[k] = v
    return d


def set_motors_raw(entries: list[tuple[int, int, int, int]], seq: int) -> bytes:
    return encode_frame(codec.MsgType.SET_MOTORS, seq, b"".join(bytes(e) for e in entries))


def corrupt(wire: bytes, index: int, xor: int = 0x01) -> bytes:
    """Flip bits of the decoded frame at `index` (a line error COBS cannot see) and re-encode it."""
    b = bytearray(codec.cobs_decode(wire[:-1]))
    b[index] ^= xor
    return codec.cobs_encode(bytes(b)) + b"\x00"


def main() -> None:
    status = Status(7, FWD, False, True, 123456, 300, 1, 2, 3, (1, 0, 0), 1)
    messages = [
        ("hello", Hello(300), 1),
        ("hello_max_watchdog", Hello(1000), 2),
        ("set_motors_forward", SetMotors(FWD), 3),
        ("set_motors_brake", SetMotors(ALL_BRAKED), 4),
        ("set_motors_spin", SetMotors(SPIN), 0x1234),
        ("heartbeat", Heartbeat(), 5),
        ("get_status", GetStatus(), 6),
        ("get_info", GetInfo(), 7),
        ("info", Info(7, BUILD_ID), 2),
        ("ack", Ack(3), 0),
        ("hello_reply", HelloReply(1, 1, (1, 0, 0), 300), 0),
        ("status", status, 9),
        ("error_value", ErrorReport(ErrorCode.VALUE, 3, 5), 10),
        ("error_crc", ErrorReport(ErrorCode.CRC, codec.NO_SEQ, 0xFF), 0xFFFF),
    ]
    frames = [
        {"name": n, "seq": s, "message": msg_json(m), "wire": encode_message(m, s).hex()}
        for n, m, s in messages
    ]

    hello = encode_message(Hello(300), 1)
    fwd = encode_message(SetMotors(FWD), 2)
    stream_cases = [
        ("two_frames_back_to_back", hello + fwd, ["ok", "ok"]),
        ("leading_delimiters_are_ignored", b"\x00\x00" + hello, ["ok"]),
        ("crc_bit_flip_in_payload", corrupt(fwd, 10), ["crc"]),
        ("crc_bit_flip_in_crc", corrupt(fwd, len(fwd) - 3), ["crc"]),
        ("truncated_frame_fails_crc", fwd[:8] + b"\x00", ["crc"]),
        ("truncated_below_minimum", fwd[:6] + b"\x00", ["frame"]),
        ("too_short", b"\x03\x01\x01\x00", ["frame"]),
        ("cobs_code_past_end", b"\x09\x01\x02\x00", ["frame"]),
        (
            "length_field_lies",
            codec.cobs_encode(
                (lambda body: body + codec.crc16(body).to_bytes(2, "little"))(bytes([1, 3, 5, 0, 3]))
            )
            + b"\x00",
            ["frame"],
        ),
        ("oversize_then_valid", bytes([0x55]) * 200 + b"\x00" + hello, ["overflow", "ok"]),
        ("garbage_without_delimiter_waits", b"\xff\x13\x37\x42", []),
        ("random_garbage", bytes.fromhex("8f3a00d1e2f4059900"), ["frame", "frame"]),
        ("max_size_frame_fits", encode_frame(0x7F, 1, bytes([0xAA]) * codec.MAX_PAYLOAD), ["ok"]),
    ]
    streams = []
    for name, data, outcomes in stream_cases:
        results = codec.FrameReader().feed(data)
        got = ["ok" if isinstance(r, codec.Frame) else r.code.name.lower() for r in results]
        assert got == outcomes, (name, got)
        streams.append({"name": name, "wire": data.hex(), "outcomes": outcomes})

    # Device scenarios: each step delivers `rx` at `at_ms` (watchdog checked first) and expects `tx` and the
    # state.
    def scenario(name: str, steps: list[tuple[int, bytes]], doc: str) -> dict[str, Any]:
        dev = SimArduino(build_id=BUILD_ID)
        out = []
        for at_ms, rx in steps:
            tx = dev.feed(rx, at_ms / 1000.0)
            out.append(
                {
                    "at_ms": at_ms,
                    "rx": rx.hex(),
                    "tx": tx.hex(),
                    "pins": pins_json(dev.pins),
                    "session": dev.session,
                    "tripped": dev.watchdog_tripped,
                    "counters": dev.counters(),
                }
            )
        return {"name": name, "doc": doc, "steps": out}

    sm = encode_message
    bad_ch = set_motors_raw(
        [(0, 1, 0, 200), (1, 1, 0, 200), (2, 1, 0, 200), (3, 1, 0, 200), (5, 1, 0, 200)], 3
    )
    dup_ch = set_motors_raw([(0, 1, 0, 200), (1, 1, 0, 200), (2, 1, 0, 200), (3, 1, 0, 200), (3, 0, 1, 9)], 4)
    bad_in = set_motors_raw(
        [(0, 1, 0, 200), (1, 2, 0, 200), (2, 1, 0, 200), (3, 1, 0, 200), (4, 1, 0, 200)], 5
    )
    reordered = set_motors_raw([(4, 0, 0, 0), (3, 1, 0, 99), (2, 0, 1, 98), (1, 1, 1, 97), (0, 0, 1, 96)], 6)
    scenarios = [
        scenario(
            "handshake_drive_status",
            [
                (0, b""),
                (10, sm(Hello(300), 1)),
                (20, sm(SetMotors(FWD), 2)),
                (30, sm(GetStatus(), 3)),
                (40, sm(Heartbeat(), 4)),
                (50, sm(SetMotors(SPIN), 5)),
                (60, sm(SetMotors(ALL_BRAKED), 6)),
            ],
            "HELLO starts a session; SET_MOTORS applies and is acknowledged; STATUS reports it",
        ),
        scenario(
            "info_reports_the_build_id",
            [
                (0, sm(GetInfo(), 1)),
                (10, sm(Hello(300), 2)),
                (250, sm(GetInfo(), 3)),
                (549, b""),
                (550, b""),
                (560, sm(GetInfo(), 4)),
            ],
            "INFO answers at any time with the build id; with a session it feeds the watchdog like GET_STATUS",
        ),
        scenario(
            "motors_refused_before_hello",
            [(5, sm(SetMotors(FWD), 1)), (6, sm(Heartbeat(), 2)), (7, sm(GetStatus(), 3))],
            "no session: SET_MOTORS and HEARTBEAT get NOT_READY and nothing moves",
        ),
        scenario(
            "watchdog_brakes_after_silence",
            [
                (0, sm(Hello(300), 1)),
                (0, sm(SetMotors(FWD), 2)),
                (250, sm(Heartbeat(), 3)),
                (549, b""),
                (550, b""),
                (551, sm(SetMotors(FWD), 4)),
                (600, sm(GetStatus(), 5)),
                (700, sm(Hello(100), 6)),
                (700, sm(SetMotors(SPIN), 7)),
                (799, b""),
                (800, b""),
            ],
            "300 ms without a valid frame brakes all, ends the session and sets the tripped flag until HELLO",
        ),
        scenario(
            "invalid_commands_rejected_whole",
            [
                (0, sm(Hello(300), 1)),
                (1, sm(SetMotors(FWD), 2)),
                (2, bad_ch),
                (3, dup_ch),
                (4, bad_in),
                (5, encode_frame(codec.MsgType.SET_MOTORS, 7, bytes(19))),
                (6, sm(Hello(0), 8)),
                (7, sm(Hello(1001), 9)),
                (8, encode_frame(0x10, 10)),
                (9, sm(Ack(1), 11)),
                (10, encode_frame(codec.MsgType.HEARTBEAT, 12, b"\x00")),
                (11, sm(SetMotors(SPIN), 13, version=2)),
                (12, sm(GetStatus(), 14)),
                (13, reordered),
            ],
            "bad channel, repeated channel, bad IN value, bad length, bad watchdog, unknown type, "
            "device type, "
            "wrong version: each an ERROR and the pins unchanged; channels may come in any order",
        ),
        scenario(
            "corrupt_and_garbage_never_move_motors",
            [
                (0, sm(Hello(300), 1)),
                (1, corrupt(sm(SetMotors(FWD), 2), 9)),
                (2, sm(SetMotors(FWD), 3)[:10]),
                (3, b"\x00"),
                (4, bytes([0x41]) * 120 + b"\x00"),
                (5, bytes.fromhex("8f3a00d1e2f4059900")),
                (6, sm(GetStatus(), 4)),
                (7, sm(SetMotors(FWD), 5)),
                (8, corrupt(sm(SetMotors(ALL_BRAKED), 6), 3)),
            ],
            "CRC errors, truncated, oversize and garbage frames are counted, reported, never applied",
        ),
    ]

    doc = {
        "about": "Shared test vectors of the Arduino link protocol (docs/protocol.md); hex = wire bytes.",
        "protocol_version": codec.PROTOCOL_VERSION,
        "firmware_version": list(codec.FIRMWARE_VERSION),
        "build_id": BUILD_ID,
        "limits": {
            "max_payload": codec.MAX_PAYLOAD,
            "max_frame": codec.MAX_FRAME,
            "max_encoded": codec.MAX_ENCODED,
        },
        "crc16_ccitt_false": [
            {"data": b"123456789".hex(), "crc": 0x29B1},
            {"data": "", "crc": 0xFFFF},
            {"data": "00", "crc": codec.crc16(b"\x00")},
            {
                "data": pack_frame(1, 1, b"\x2c\x01")[:-2].hex(),
                "crc": codec.crc16(pack_frame(1, 1, b"\x2c\x01")[:-2]),
            },
        ],
        "cobs": [
            {"raw": "00", "encoded": "0101"},
            {"raw": "0000", "encoded": "010101"},
            {"raw": "001100", "encoded": "01021101"},
            {"raw": "11220033", "encoded": "0311220233"},
            {"raw": "11223344", "encoded": "0511223344"},
            {"raw": "11000000", "encoded": "0211010101"},
            {"raw": bytes(range(1, 255)).hex(), "encoded": "ff" + bytes(range(1, 255)).hex()},
            {"raw": bytes(range(1, 256)).hex(), "encoded": "ff" + bytes(range(1, 255)).hex() + "02ff"},
        ],
        "frames": frames,
        "streams": streams,
        "device": scenarios,
    }
    for case in doc["cobs"]:
        assert codec.cobs_encode(bytes.fromhex(case["raw"])).hex() == case["encoded"], case
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
