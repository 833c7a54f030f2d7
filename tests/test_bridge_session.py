"""LinkSession, the host's half of the link shared by ArduinoLink and DirectLink, against the SimArduino on
explicit time: handshake, acknowledgements, the dead-link limit, resends, heartbeats, resync, refusal."""

from __future__ import annotations

import itertools

import pytest

from arduino_bridge.codec import ErrorCode, ErrorReport, FrameReader, encode_message
from arduino_bridge.session import DEAD_AFTER_S, RESEND_S, LinkSession
from arduino_bridge.sim_arduino import SimArduino
from robot.core.types import ALL_BRAKED, MotorOutputs, PinState
from robot.errors import ConfigError

FWD = MotorOutputs(*(PinState(1, 0, 200),) * 5)


def opened(at: float = 0.0) -> tuple[LinkSession, SimArduino]:
    session, dev = LinkSession(), SimArduino(build_id=0)
    session.receive(dev.feed(session.hello(at), at), at)
    assert session.open and session.healthy(at)
    return session, dev


def test_the_dead_link_limit_is_250_ms_below_the_firmwares_300_ms_watchdog() -> None:
    session, dev = opened()
    session.receive(dev.feed(session.command(FWD, 0.1), 0.1), 0.1)
    assert dev.pins == FWD and not session.command_pending
    assert session.healthy(0.1 + DEAD_AFTER_S) and not session.healthy(0.1 + DEAD_AFTER_S + 0.001)
    assert DEAD_AFTER_S < dev.watchdog_ms / 1000.0 == 0.3


def test_an_unacknowledged_command_is_resent_then_counted_lost() -> None:
    session, dev = opened()
    session.command(FWD, 0.01)  # lost on the wire
    assert session.due(0.01 + RESEND_S / 4) is None  # before the resend (and the next heartbeat)
    again = session.due(0.01 + RESEND_S)
    assert again is not None and session.stats()["resent"] == 1
    session.expire(0.01 + DEAD_AFTER_S + 0.01)
    assert session.stats()["lost"] == 1  # the first copy; the resend is younger
    session.receive(dev.feed(again, 0.27), 0.27)
    assert dev.pins == FWD and not session.command_pending and session.healthy(0.27)


def test_a_quiet_session_sends_heartbeats_that_keep_the_firmware_fed() -> None:
    session, dev = opened()
    t = 0.0
    while t < 2.0:
        t = round(t + 0.01, 3)
        wire = session.due(t)
        if wire is not None:
            session.receive(dev.feed(wire, t), t)
        dev.tick(t)
    assert dev.session and not dev.watchdog_tripped and session.healthy(t)
    assert 35 <= session.stats()["heartbeats"] <= 41  # 20 Hz


def test_a_tripped_firmware_answers_not_ready_and_the_session_closes_for_a_new_hello() -> None:
    session, dev = opened()
    dev.tick(0.5)  # nothing for 500 ms: the firmware's watchdog brakes
    assert dev.watchdog_tripped
    session.receive(dev.feed(session.command(FWD, 0.5), 0.5), 0.5)
    assert not session.open and session.stats()["resyncs"] == 1 and dev.pins == ALL_BRAKED
    session.receive(dev.feed(session.hello(0.51), 0.51), 0.51)
    session.receive(dev.feed(session.command(FWD, 0.52), 0.52), 0.52)
    assert session.open and dev.pins == FWD


def test_a_firmware_of_another_protocol_is_refused_with_the_fix_in_the_message() -> None:
    session, dev = LinkSession(where="arduino on /dev/ttyACM0"), SimArduino(protocol_version=2, build_id=0)
    session.receive(dev.feed(session.hello(0.0), 0.0), 0.0)
    assert session.refused and not session.open and not session.healthy(0.0)
    assert session.last_error is not None
    assert session.last_error.startswith("arduino on /dev/ttyACM0: firmware speaks protocol version 2")
    assert "ramudroid firmware flash" in session.last_error


def test_a_garbled_command_reported_by_the_firmware_is_resent_at_once() -> None:
    session, _dev = opened()
    session.command(FWD, 1.0)
    report = encode_message(ErrorReport(ErrorCode.CRC, 0xFFFF, 0xFF), 7)
    session.receive(report, 1.001)
    assert session.stats()["device_errors"] == 1
    assert session.due(1.001) is not None and session.stats()["resent"] == 1


def test_line_noise_is_counted_not_fatal() -> None:
    session, _dev = opened()
    assert session.receive(b"\x07\x13\x99\x00\x02\x01\x00", 0.01) == []
    assert session.stats()["crc_errors"] == 2 and session.open


def test_sequence_numbers_wrap_past_the_reserved_0xffff() -> None:
    session, _dev = opened()
    seqs = []
    for i in range(0x10002):
        wire = session.due(float(i + 1))
        assert wire is not None
        seqs.append(FrameReader().feed(wire)[0].seq)  # type: ignore[union-attr]
    top = seqs.index(0xFFFE)
    assert 0xFFFF not in seqs and seqs[top + 1] == 0


def test_bad_settings_name_the_fix() -> None:
    with pytest.raises(ConfigError, match="use 300"):
        LinkSession(watchdog_ms=0)
    with pytest.raises(ConfigError, match="use 20"):
        LinkSession(heartbeat_hz=5.0)


def test_get_info_reads_the_build_id_of_the_firmware() -> None:
    session, dev = LinkSession(), SimArduino(build_id=0x1234ABCD)
    session.receive(dev.feed(session.hello(0.0), 0.0), 0.0)
    assert session.last_hello is not None and session.last_hello.firmware == dev.firmware_version
    session.receive(dev.feed(session.get_info(0.01), 0.01), 0.01)
    assert session.last_info is not None and session.last_info.build_id == 0x1234ABCD
    assert session.last_info.ref_seq == session.seq


def test_until_next_is_the_sessions_next_own_deadline_heartbeat_resend_or_health() -> None:
    session, dev = opened()  # HELLO sent and answered at 0.0
    beat = session.heartbeat_s
    assert session.until_next(0.0) == pytest.approx(beat)
    session.receive(dev.feed(session.command(FWD, 0.01), 0.01), 0.01)  # acknowledged at once
    assert session.until_next(0.02) == pytest.approx(0.01 + beat - 0.02)
    # Acknowledgements stop: heartbeats and resends go unanswered, and the deadline becomes the health's end.
    t = 0.01
    session.command(FWD, t)  # lost on the wire
    deadlines: list[float] = []
    while session.healthy(t) and len(deadlines) < 50:
        t = round(t + max(0.001, session.until_next(t)), 9)  # what the I/O thread waits (at least 1 ms)
        deadlines.append(t)
        session.due(t)  # the heartbeat or the resend it woke for (never answered)
    # Every deadline met, none late: the link is seen unhealthy 1 ms past its limit, not a 20 ms poll after it.
    assert not session.healthy(t) and len(deadlines) <= 8
    assert t == pytest.approx(0.01 + DEAD_AFTER_S + 0.001)
    # Unhealthy: its own heartbeats and resends are all it waits for (no spinning on a health already gone).
    session.due(t)
    assert 0.0 < session.until_next(t) <= beat
    assert all(b > a for a, b in itertools.pairwise(deadlines))
    assert session.stats()["resent"] >= 1 and session.stats()["heartbeats"] >= 1


def test_until_next_puts_an_unacknowledged_commands_resend_before_a_slower_heartbeat() -> None:
    session, dev = LinkSession(heartbeat_hz=10.0), SimArduino(build_id=0)
    session.receive(dev.feed(session.hello(0.0), 0.0), 0.0)
    session.command(FWD, 0.05)  # unanswered
    assert session.until_next(0.05) == pytest.approx(min(RESEND_S, 0.1))
    assert session.due(0.05 + RESEND_S) is not None and session.stats()["resent"] == 1
