"""Arduino bridge benchmarks: protocol round trips over a pty, and the emulated firmware's frame-to-pins
latency
and link-loss-to-brake time (simulated time). Called by bench/run; each function returns one number.
"""

from __future__ import annotations

import functools
import tempfile
import time
from pathlib import Path

import serial

from arduino_bridge.codec import (
    Ack,
    FrameReader,
    Hello,
    HelloReply,
    SetMotors,
    decode_message,
    encode_message,
)
from arduino_bridge.emulator import AvrEmulator, build_all
from arduino_bridge.fake_device import FakeArduino
from robot.core.types import ALL_BRAKED, BRAKE, MotorOutputs, PinState


def _exchange(port: serial.Serial, reader: FrameReader, wire: bytes) -> object:
    port.write(wire)
    while True:
        for item in reader.feed(port.read(max(1, port.in_waiting))):
            return decode_message(item)  # type: ignore[arg-type]


def protocol_roundtrips_per_s(seconds: float = 1.0) -> float:
    """SET_MOTORS + ACK round trips per second over a pty pair against FakeArduino (SimArduino on the codec).

    A pty has no baud limit, so this measures our software's cost; a real 115200-baud wire allows ~380/s.
    """
    with FakeArduino() as dev, serial.serial_for_url(dev.path, 115200, timeout=1.0) as port:
        reader = FrameReader()
        assert isinstance(_exchange(port, reader, encode_message(Hello(1000), 1)), HelloReply)
        n = 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            n += 1
            out = MotorOutputs(*(PinState(1, 0, n & 0xFF),) * 5)
            reply = _exchange(port, reader, encode_message(SetMotors(out), n & 0xFFFE))
            assert isinstance(reply, Ack)
        return n / (time.perf_counter() - start)


@functools.cache
def _built() -> tuple[Path, Path]:
    return build_all(Path(tempfile.mkdtemp(prefix="ramudroid-bench-")))


def frame_to_pins_us(frames: int = 20) -> float:
    """Worst simulated time, in microseconds, from the firmware reading a SET_MOTORS frame's last byte to the
    last of its pins changing (emulated ATmega328P at 16 MHz). Target <= 1000."""
    worst = 0.0
    with AvrEmulator(*_built()) as emu, serial.serial_for_url(emu.path, 115200, timeout=1.0) as port:
        reader = FrameReader()
        assert isinstance(_exchange(port, reader, encode_message(Hello(1000), 1)), HelloReply)
        for i in range(frames):
            out = MotorOutputs(
                *(PinState((i + c) % 2, (i + c + 1) % 2, (37 * i + c) % 256) for c in range(5))
            )
            assert isinstance(_exchange(port, reader, encode_message(SetMotors(out), i + 2)), Ack)
            emu.wait(lambda o=out: emu.pins_at() == o, 3.0)  # type: ignore[misc]
            rx = emu.rx_ns[-1]
            done = emu.first_ns(lambda p, o=out: p == o, after_ns=rx)  # type: ignore[misc]
            assert done is not None
            worst = max(worst, (done - rx) / 1000.0)
    return worst


def link_loss_to_brake_ms() -> float:
    """Simulated milliseconds from the last frame the firmware read to both drive wheels actively braked
    (IN1 = IN2 = 0, EN high), when the host goes silent with the motors running (watchdog 300 ms). Target <= 300."""
    with AvrEmulator(*_built()) as emu, serial.serial_for_url(emu.path, 115200, timeout=1.0) as port:
        reader = FrameReader()
        assert isinstance(_exchange(port, reader, encode_message(Hello(300), 1)), HelloReply)
        moving = MotorOutputs(*(PinState(1, 0, 200),) * 5)
        assert isinstance(_exchange(port, reader, encode_message(SetMotors(moving), 2)), Ack)
        emu.wait(lambda: emu.pins_at() == moving, 3.0)
        last = emu.rx_ns[-1]
        emu.wait(lambda: emu.pins_at() == ALL_BRAKED, 3.0)
        moved = emu.first_ns(lambda p: p == moving, after_ns=last)
        assert moved is not None
        braked = emu.first_ns(lambda p: p.drive_left == BRAKE and p.drive_right == BRAKE, after_ns=moved)
        assert braked is not None
        return (braked - last) / 1e6


if __name__ == "__main__":
    print(f"protocol_roundtrips_per_s: {protocol_roundtrips_per_s():.0f}")
    print(f"frame_to_pins_us:          {frame_to_pins_us():.0f}")
    print(f"link_loss_to_brake_ms:     {link_loss_to_brake_ms():.1f}")
