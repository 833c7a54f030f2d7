"""SimArduino against the shared device vectors, its watchdog, and DirectLink on top of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arduino_bridge.codec import FrameReader, Hello, SetMotors, decode_message, encode_message
from arduino_bridge.direct import DirectLink
from arduino_bridge.sim_arduino import SimArduino
from robot.core.types import ALL_BRAKED, MotorOutputs, PinState
from robot.hardware.interfaces import MotorLink

VECTORS = json.loads((Path(__file__).parent / "vectors" / "protocol.json").read_text())
FWD = MotorOutputs(*(PinState(1, 0, 200),) * 5)


@pytest.mark.parametrize("scenario", VECTORS["device"], ids=lambda s: s["name"])
def test_sim_arduino_follows_the_device_vectors(scenario: dict[str, Any]) -> None:
    dev = SimArduino(build_id=VECTORS["build_id"])
    for i, step in enumerate(scenario["steps"]):
        tx = dev.feed(bytes.fromhex(step["rx"]), step["at_ms"] / 1000.0)
        where = f"{scenario['name']} step {i}"
        assert tx.hex() == step["tx"], where
        assert [list(p) for p in dev.pins] == step["pins"], where
        assert (dev.session, dev.watchdog_tripped) == (step["session"], step["tripped"]), where
        assert dev.counters() == step["counters"], where


def test_watchdog_brakes_exactly_at_the_timeout() -> None:
    dev = SimArduino()
    dev.feed(encode_message(Hello(300), 1) + encode_message(SetMotors(FWD), 2), 10.0)
    dev.tick(10.299)
    assert dev.pins == FWD
    dev.tick(10.300)
    assert dev.pins == ALL_BRAKED and dev.watchdog_tripped and not dev.session


def test_a_rejected_command_after_a_good_one_leaves_the_good_one_applied() -> None:
    dev = SimArduino()
    dev.feed(encode_message(Hello(300), 1) + encode_message(SetMotors(FWD), 2), 0.0)
    bad = encode_message(SetMotors(MotorOutputs(PinState(0, 1, 10), *FWD[1:])), 3)
    dev.feed(bad[:-3] + bytes([bad[-3] ^ 0x40]) + bad[-2:], 0.01)
    assert dev.pins == FWD and dev.crc_errors == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=20))
def test_garbage_never_moves_a_motor(chunks: list[bytes]) -> None:
    dev = SimArduino()
    dev.feed(encode_message(Hello(1000), 1), 0.0)
    for i, chunk in enumerate(chunks):
        dev.feed(chunk, 0.001 * i)
        # Garbage can only move a motor by carrying a whole SET_MOTORS frame with a correct CRC.
        if dev.pins != ALL_BRAKED:
            frames = [f for f in FrameReader().feed(b"".join(chunks)) if not isinstance(f, Exception)]
            assert any(isinstance(decode_message_safe(f), SetMotors) for f in frames)


def decode_message_safe(frame: Any) -> Any:
    try:
        return decode_message(frame)
    except Exception:
        return None


class Clock:
    """A settable clock for DirectLink."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_direct_link_handshakes_drives_and_reports_health() -> None:
    clock = Clock()
    sim = SimArduino()
    link = DirectLink(sim, clock)
    assert isinstance(link, MotorLink)
    assert not link.healthy
    link.send(FWD)
    assert sim.pins == FWD and link.healthy
    assert link.stats()["acked"] >= 1


def test_direct_link_goes_unhealthy_on_a_cut_and_recovers_with_a_new_handshake() -> None:
    clock = Clock()
    sim = SimArduino()
    changes: list[bool] = []
    link = DirectLink(sim, clock)
    link.on_change = changes.append
    link.send(FWD)
    link.cut = True
    for _ in range(7):
        clock.t += 0.05
        link.send(FWD)
    assert not link.healthy and sim.pins == ALL_BRAKED and sim.watchdog_tripped
    link.cut = False
    clock.t += 0.05
    link.send(FWD)
    assert link.healthy and sim.pins == FWD
    assert changes == [True, False, True]


def test_direct_link_refuses_to_drive_a_firmware_of_another_version() -> None:
    sim = SimArduino(protocol_version=2)
    link = DirectLink(sim, Clock())
    link.send(FWD)
    assert not link.healthy and sim.pins == ALL_BRAKED
    assert link.last_error is not None and "protocol version 2" in link.last_error


def test_direct_link_close_brakes_and_is_idempotent() -> None:
    clock = Clock()
    sim = SimArduino()
    with DirectLink(sim, clock) as link:
        link.send(FWD)
    assert sim.pins == ALL_BRAKED
    link.close()
    link.send(FWD)
    assert sim.pins == ALL_BRAKED
