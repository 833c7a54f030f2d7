"""The Python codec against the shared vectors, plus property tests (hypothesis) of the decoder."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arduino_bridge import codec
from arduino_bridge.codec import (
    ErrorCode,
    Frame,
    FrameError,
    FrameReader,
    decode_frame,
    decode_message,
    encode_message,
)
from robot.core.types import MotorOutputs, PinState
from robot.errors import ProtocolError

VECTORS = json.loads((Path(__file__).parent / "vectors" / "protocol.json").read_text())


def message_from_json(d: dict[str, Any]) -> codec.Message:
    fields = {k: v for k, v in d.items() if k != "kind"}
    if "pins" in fields:
        fields["pins"] = MotorOutputs(*(PinState(*p) for p in fields["pins"]))
    if "outputs" in fields:
        fields["outputs"] = MotorOutputs(*(PinState(*p) for p in fields["outputs"]))
    if "firmware" in fields:
        fields["firmware"] = tuple(fields["firmware"])
    return getattr(codec, d["kind"])(**fields)


@pytest.mark.parametrize("case", VECTORS["crc16_ccitt_false"], ids=lambda c: c["data"][:12] or "empty")
def test_crc16_matches_known_answers(case: dict[str, Any]) -> None:
    assert codec.crc16(bytes.fromhex(case["data"])) == case["crc"]


def test_crc16_check_value_is_the_published_one() -> None:
    assert codec.crc16(b"123456789") == 0x29B1


@pytest.mark.parametrize("case", VECTORS["cobs"], ids=lambda c: c["raw"][:12])
def test_cobs_matches_known_answers_both_ways(case: dict[str, str]) -> None:
    raw, enc = bytes.fromhex(case["raw"]), bytes.fromhex(case["encoded"])
    assert codec.cobs_encode(raw) == enc
    assert codec.cobs_decode(enc) == raw


@pytest.mark.parametrize("case", VECTORS["frames"], ids=lambda c: c["name"])
def test_every_message_encodes_byte_exact_and_decodes_back(case: dict[str, Any]) -> None:
    msg = message_from_json(case["message"])
    wire = bytes.fromhex(case["wire"])
    assert encode_message(msg, case["seq"]) == wire
    assert wire.endswith(b"\x00") and 0 not in wire[:-1]
    frame = decode_frame(wire[:-1])
    assert frame.seq == case["seq"] and frame.version == codec.PROTOCOL_VERSION
    assert decode_message(frame) == msg


@pytest.mark.parametrize("case", VECTORS["streams"], ids=lambda c: c["name"])
def test_stream_outcomes_match_vectors(case: dict[str, Any]) -> None:
    results = FrameReader().feed(bytes.fromhex(case["wire"]))
    got = ["ok" if isinstance(r, Frame) else r.code.name.lower() for r in results]
    assert got == case["outcomes"]


def test_stream_split_across_many_reads_gives_the_same_frames() -> None:
    wire = b"".join(bytes.fromhex(f["wire"]) for f in VECTORS["frames"])
    reader = FrameReader()
    frames = [r for i in range(len(wire)) for r in reader.feed(wire[i : i + 1])]
    assert all(isinstance(f, Frame) for f in frames)
    assert [f.seq for f in frames] == [f["seq"] for f in VECTORS["frames"]]


def test_overflow_is_dropped_whole_and_the_next_frame_survives() -> None:
    hello = encode_message(codec.Hello(300), 7)
    results = FrameReader().feed(b"\x11" * (codec.MAX_ENCODED + 1) + b"\x00" + hello)
    assert isinstance(results[0], FrameError) and results[0].code == ErrorCode.OVERFLOW
    assert isinstance(results[1], Frame) and results[1].seq == 7
    assert len(results) == 2


def test_frame_errors_are_protocol_errors_naming_the_link() -> None:
    with pytest.raises(ProtocolError, match="arduino link: CRC mismatch"):
        decode_frame(codec.cobs_encode(b"\x01\x03\x00\x00\x00\x00\x00"))


def test_set_motors_with_bad_channel_is_rejected_with_its_byte_index() -> None:
    payload = bytes([0, 1, 0, 9, 1, 1, 0, 9, 2, 0, 0, 0, 3, 0, 0, 0, 7, 0, 0, 0])
    with pytest.raises(FrameError) as err:
        decode_message(Frame(1, codec.MsgType.SET_MOTORS, 1, payload))
    assert err.value.code == ErrorCode.VALUE and err.value.detail == 16


def test_check_outputs_rejects_values_the_device_would_refuse() -> None:
    good = MotorOutputs(*(PinState(1, 0, 255),) * 5)
    codec.check_outputs(good)
    for bad in (PinState(2, 0, 0), PinState(0, 0, 256), PinState(0, -1, 0)):
        with pytest.raises(FrameError):
            codec.check_outputs(MotorOutputs(bad, *good[1:]))


# --- properties

pin_states = st.builds(PinState, st.integers(0, 1), st.integers(0, 1), st.integers(0, 255))
outputs = st.builds(MotorOutputs, pin_states, pin_states, pin_states, pin_states, pin_states)


@given(st.binary(max_size=600))
def test_cobs_roundtrips_any_bytes(data: bytes) -> None:
    enc = codec.cobs_encode(data)
    assert 0 not in enc
    assert codec.cobs_decode(enc) == data


@given(outputs, st.integers(0, 0xFFFF))
def test_set_motors_roundtrips(out: MotorOutputs, seq: int) -> None:
    wire = encode_message(codec.SetMotors(out), seq)
    [frame] = FrameReader().feed(wire)
    assert isinstance(frame, Frame)
    assert decode_message(frame) == codec.SetMotors(out)


@settings(max_examples=400)
@given(st.binary(max_size=300))
def test_decoder_never_crashes_and_never_accepts_a_wrong_crc(data: bytes) -> None:
    for item in FrameReader().feed(data + b"\x00"):
        if isinstance(item, FrameError):
            continue
        raw = codec.pack_frame(item.type, item.seq, item.payload, item.version)
        # Whatever was accepted re-encodes to a block of the input: its CRC was right.
        assert codec.cobs_encode(raw) in data
        with contextlib.suppress(FrameError):
            decode_message(item)


@settings(max_examples=300)
@given(outputs, st.integers(0, 0xFFFF), st.integers(0, 200), st.integers(1, 255))
def test_any_single_byte_corruption_is_detected(out: MotorOutputs, seq: int, where: int, xor: int) -> None:
    raw = bytearray(
        codec.pack_frame(codec.MsgType.SET_MOTORS, seq, codec.message_payload(codec.SetMotors(out))[1])
    )
    raw[where % len(raw)] ^= xor
    with pytest.raises(FrameError):
        codec.unpack_frame(bytes(raw))
