"""Hardware-in-the-loop on the real firmware: `ramudroid firmware build`, then the ELF in simavr with its UART
on a
pty and its motor pins reported with simulated timestamps. Time checks use simulated time, never the wall
clock.
"""

from __future__ import annotations

import argparse
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from arduino_bridge import cli
from arduino_bridge.codec import (
    ErrorCode,
    ErrorReport,
    FrameReader,
    GetStatus,
    Hello,
    HelloReply,
    SetMotors,
    Status,
    decode_message,
    encode_message,
)
from arduino_bridge.emulator import AvrEmulator, build_all
from arduino_bridge.link import ArduinoLink
from robot.core.types import ALL_BRAKED, BRAKE, COAST, MotorOutputs, PinState

HAVE_AVR = shutil.which("avr-g++") is not None and Path("/usr/include/simavr/parts/uart_pty.h").is_file()
pytestmark = [
    pytest.mark.avr,
    pytest.mark.timeout(60),
    pytest.mark.skipif(not HAVE_AVR, reason="needs gcc-avr, avr-libc, arduino-core-avr and libsimavr-dev"),
]
MS = 1_000_000  # ns


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return build_all(tmp_path_factory.mktemp("avr"))


@pytest.fixture
def avr(built: tuple[Path, Path]) -> Iterator[AvrEmulator]:
    with AvrEmulator(*built) as emu:
        yield emu


class Host:
    """A raw serial host for byte-level tests: write messages, read decoded replies."""

    def __init__(self, path: str) -> None:
        self.port = serial.serial_for_url(path, 115200, timeout=0.05)
        self.reader = FrameReader()
        self.seq = 0

    def send(self, msg: object) -> int:
        self.seq += 1
        self.port.write(encode_message(msg, self.seq))  # type: ignore[arg-type]
        return self.seq

    def replies(self, n: int, timeout: float = 3.0) -> list[object]:
        out: list[object] = []
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            for item in self.reader.feed(self.port.read(256)):
                out.append(item if isinstance(item, Exception) else decode_message(item))
        return out


def test_firmware_build_command_prints_flash_and_ram(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["firmware", "build", "--out", str(tmp_path)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "flash:" in out and "RAM:" in out and (tmp_path / "ramudroid_motor.hex").is_file()


def test_firmware_build_fails_loudly_on_a_broken_sketch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sketch = tmp_path / "broken"
    sketch.mkdir()
    (sketch / "broken.ino").write_text("void setup() { undefined_call(); }\nvoid loop() {}\n")
    from arduino_bridge.firmware_build import build_firmware
    from robot.errors import FirmwareBuildError

    with pytest.raises(FirmwareBuildError, match=r"compiling broken\.ino failed"):
        build_firmware(tmp_path / "out", sketch_dir=sketch)


def _never_driven(avr: AvrEmulator) -> bool:
    """No channel ever drove a direction: IN1 == IN2 (brake, or coast while EN is low) in every event."""
    return all(e.state.in1 == e.state.in2 for e in avr.events)


def test_boots_with_every_motor_actively_braked_within_a_millisecond(avr: AvrEmulator) -> None:
    # Before setup() the pins are inputs (the harness reports them as all low); setup() brakes every channel
    # with IN1 = IN2 = LOW and EN = HIGH, never passing through a driving state.
    # Wait for the braking events themselves: pins_at() reads as braked before the harness reported anything,
    # which a loaded machine makes late (seen under stress-ng: the wait passed at once, no event yet).
    avr.wait(lambda: avr.first_ns(lambda p: p == ALL_BRAKED) is not None)
    braked_ns = avr.first_ns(lambda p: p == ALL_BRAKED)
    assert braked_ns is not None and braked_ns <= 1 * MS
    assert avr.events[0].state == COAST  # at reset the pins are inputs: nothing drives the bridge yet
    time.sleep(0.2)  # a while of simulated time with no host: it stays braked
    assert avr.pins_at() == ALL_BRAKED and _never_driven(avr)


def test_link_handshakes_with_the_firmware_and_every_command_reaches_the_right_pins(avr: AvrEmulator) -> None:
    br = BRAKE
    commands = [
        MotorOutputs(PinState(1, 0, 180), PinState(0, 1, 255), PinState(1, 0, 1), PinState(0, 1, 128), br),
        MotorOutputs(br, PinState(1, 0, 77), PinState(0, 1, 254), PinState(1, 0, 255), PinState(0, 1, 33)),
        MotorOutputs(PinState(1, 1, 0), br, br, br, PinState(1, 0, 200)),
        ALL_BRAKED,
    ]
    with ArduinoLink(avr.path) as link:
        avr.wait(lambda: link.healthy, 5.0)
        for outputs in commands:
            link.send(outputs)
            avr.wait(lambda o=outputs: avr.pins_at() == o, 3.0)  # type: ignore[misc]
        assert link.healthy and link.stats()["crc_errors"] == 0


def test_host_silence_actively_brakes_the_drive_wheels_within_300_ms_of_simulated_time(
    avr: AvrEmulator,
) -> None:
    host = Host(avr.path)
    moving = MotorOutputs(*(PinState(1, 0, 200),) * 5)
    host.send(Hello(300))
    assert isinstance(host.replies(1)[0], HelloReply)
    host.send(SetMotors(moving))
    avr.wait(lambda: avr.pins_at() == moving, 3.0)
    last_frame_ns = avr.rx_ns[-1]
    avr.wait(lambda: avr.pins_at() == ALL_BRAKED, 3.0)
    moving_ns = avr.first_ns(lambda p: p == moving, after_ns=last_frame_ns)
    assert moving_ns is not None
    # The drive wheels stop by braking (IN1 = IN2 = 0, EN = 255), not by letting go (EN = 0).
    braked_ns = avr.first_ns(lambda p: p.drive_left == BRAKE and p.drive_right == BRAKE, after_ns=moving_ns)
    assert braked_ns is not None
    assert 250 * MS <= braked_ns - last_frame_ns <= 300 * MS  # not early either: the watchdog is 300 ms
    # On the way from driving to braked, a drive channel never lets go (EN 0) even for an instant.
    wheels = [e.state for e in avr.events if e.ns > moving_ns and e.channel in (0, 1)]
    assert COAST not in wheels and all(s.en > 0 for s in wheels if s.in1 == s.in2)
    host.send(GetStatus())
    status = next(r for r in host.replies(1) if isinstance(r, Status))
    assert status.watchdog_tripped and not status.session and status.pins == ALL_BRAKED


def test_corrupted_and_random_bytes_never_move_a_motor_and_errors_are_reported(avr: AvrEmulator) -> None:
    host = Host(avr.path)
    host.send(Hello(1000))
    assert isinstance(host.replies(1)[0], HelloReply)
    rng = random.Random(3)
    good = bytearray(encode_message(SetMotors(MotorOutputs(*(PinState(1, 0, 99),) * 5)), 50))
    for _ in range(20):
        bad = bytearray(good)
        bad[rng.randrange(1, len(bad) - 1)] ^= 1 << rng.randrange(8)
        host.port.write(bytes(bad))
        host.port.write(bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 90))) + b"\x00")
        host.send(GetStatus())  # keeps the session alive so a brake would show as motion stopping, not a trip
    replies = host.replies(50, timeout=5.0)
    errors = [r for r in replies if isinstance(r, ErrorReport)]
    assert {e.code for e in errors} >= {ErrorCode.CRC, ErrorCode.OVERFLOW}
    host.send(GetStatus())
    status = [r for r in host.replies(1) if isinstance(r, Status)][-1]
    assert status.crc_errors + status.bad_frames >= 20 and status.overflows >= 1
    assert _never_driven(avr) and avr.pins_at() == ALL_BRAKED  # no channel ever left its braked state


def test_the_real_firmware_reports_its_build_id_and_flash_skips_it(avr: AvrEmulator, tmp_path: Path) -> None:
    """The ELF built from these sources answers GET_INFO with their build id (RD_BUILD_ID compiled in), so
    `ramudroid firmware flash` sees the board already runs this build and does not upload."""
    from arduino_bridge.firmware_build import source_build_id
    from arduino_bridge.flash import flash, probe

    info = probe(avr.path)
    assert info is not None and (info.protocol, info.firmware, info.build_id) == (
        1,
        (1, 1, 0),
        source_build_id(),
    )

    def no_upload(cmd: object) -> int:
        raise AssertionError("avrdude must not run for a board that runs this build")

    # The harness holds the pty's slave side itself (it is the board), so the port-in-use check is off here.
    result = flash(avr.path, tmp_path, say=lambda _: None, run=no_upload, in_use=lambda _: [])
    assert result.action == "skipped"
    assert _never_driven(avr)  # probing never moved a motor
