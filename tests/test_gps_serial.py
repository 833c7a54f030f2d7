"""The serial GPS reader on a pseudo-terminal: fixes arrive, go stale, and a bad port is one clear error."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from robot.drivers.gps import SerialGps, checksum
from robot.errors import GpsError


def nmea(body: str) -> bytes:
    return f"${body}*{checksum(body):02X}\r\n".encode()


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    name = os.ttyname(slave)
    yield master, name
    os.close(master)
    os.close(slave)


def wait_until(pred, timeout: float = 3.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


def test_fix_read_over_a_pty_then_lost_after_stale_s(pty_pair: tuple[int, str]) -> None:
    master, port = pty_pair
    clock = FakeClock()
    with SerialGps(port, 9600, stale_s=3.0, clock=clock, idle_flush_s=0.05) as gps:
        assert gps.latest() is None
        # Binary junk, a broken line and a proprietary sentence come first, as on a real line.
        os.write(master, b"\xb5\x62\x01\x02garbage\r\n$GPGGA,12\r\n" + nmea("PUBX,00,foo"))
        os.write(master, nmea("GPRMC,092751.000,A,5321.6802,N,00630.3371,W,0.06,31.66,280511,,,A"))
        os.write(master, nmea("GPGGA,092751.000,5321.6802,N,00630.3371,W,1,8,1.03,61.7,M,55.3,M,,"))
        # The burst ends; the idle gap closes the epoch without waiting for the next second.
        assert wait_until(lambda: gps.latest() is not None)
        fix = gps.latest()
        assert fix is not None
        assert fix.lat == pytest.approx(53.361336667) and fix.lon == pytest.approx(-6.505618333)
        assert fix.sats == 8 and fix.mode == 3 and fix.time is not None
        stats = gps.stats()
        assert stats["rejected"]["not_nmea"] >= 1 and stats["ignored"]["proprietary"] == 1
        clock.t += 3.5
        assert gps.latest() is None  # no fix for stale_s: GPS lost


def test_close_is_idempotent(pty_pair: tuple[int, str]) -> None:
    _, port = pty_pair
    gps = SerialGps(port, 9600)
    gps.close()
    gps.close()


def test_missing_port_is_a_gps_error_naming_the_port_and_fix() -> None:
    with pytest.raises(GpsError, match=r"/dev/ttyNOPE.*hardware.gps"):
        SerialGps("/dev/ttyNOPE")
