"""A fake NMEA 0183 GPS receiver on a pseudo-terminal: GGA, RMC, GSA and VTG at 1-10 Hz from the world's fix.

The real GPS driver opens `FakeGps.port` like any serial port, so hardware-in-the-loop runs exercise it
unchanged. Sentences are formatted as a cheap u-blox/MediaTek receiver sends them (talker GP, checksums,
CR LF); without a fix it keeps talking, with empty position fields, GGA quality 0, RMC status V, GSA mode 1.
"""

from __future__ import annotations

import contextlib
import os
import termios
import threading
import tty
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType

from robot.errors import GpsError
from robot.hardware.interfaces import GpsFix

KNOTS_PER_MS = 3600.0 / 1852.0
# Satellite ids listed in GSA: a plausible GPS constellation slice.
SATELLITES = (2, 5, 7, 9, 13, 15, 18, 20, 21, 26, 29, 30)


def checksum(body: str) -> str:
    """Two hex digits: XOR of every character between '$' and '*'."""
    c = 0
    for ch in body:
        c ^= ord(ch)
    return f"{c:02X}"


def sentence(body: str) -> str:
    """`$body*CS` with CR LF."""
    return f"${body}*{checksum(body)}\r\n"


def _lat(lat: float) -> tuple[str, str]:
    a = abs(lat)
    d = int(a)
    return f"{d:02d}{(a - d) * 60.0:08.5f}", "N" if lat >= 0 else "S"


def _lon(lon: float) -> tuple[str, str]:
    a = abs(lon)
    d = int(a)
    return f"{d:03d}{(a - d) * 60.0:08.5f}", "E" if lon >= 0 else "W"


def _hms(t: datetime | None) -> str:
    if t is None:
        return ""
    t = t.astimezone(UTC) if t.tzinfo is not None else t
    return f"{t.hour:02d}{t.minute:02d}{t.second:02d}.{t.microsecond // 10000:02d}"


def nmea_epoch(fix: GpsFix | None, when: datetime | None = None, talker: str = "GP") -> list[str]:
    """The GGA, RMC, GSA and VTG sentences of one epoch; `when` (UTC) overrides the fix's time."""
    t = when if when is not None else (fix.time if fix is not None else None)
    hms = _hms(t)
    ddmmyy = f"{t.day:02d}{t.month:02d}{t.year % 100:02d}" if t is not None else ""
    if fix is None:
        return [
            sentence(f"{talker}GGA,{hms},,,,,0,00,99.99,,,,,,"),
            sentence(f"{talker}RMC,{hms},V,,,,,,,{ddmmyy},,,N"),
            sentence(f"{talker}GSA,A,1,,,,,,,,,,,,,99.99,99.99,99.99"),
            sentence(f"{talker}VTG,,T,,M,,N,,K,N"),
        ]
    lat, ns = _lat(fix.lat)
    lon, ew = _lon(fix.lon)
    sats = fix.sats if fix.sats is not None else 8
    hdop = fix.hdop if fix.hdop is not None else 1.0
    pdop = round(hdop * 1.6, 2)
    vdop = round(hdop * 1.3, 2)
    knots = f"{(fix.speed or 0.0) * KNOTS_PER_MS:.3f}"
    kmh = f"{(fix.speed or 0.0) * 3.6:.3f}"
    track = f"{fix.track:.2f}" if fix.track is not None else ""
    used = [f"{s:02d}" for s in SATELLITES[: min(sats, 12)]]
    used += [""] * (12 - len(used))
    mode = 3 if fix.mode >= 3 else 2
    altitude = "920.0" if mode == 3 else ""
    return [
        sentence(f"{talker}GGA,{hms},{lat},{ns},{lon},{ew},1,{sats:02d},{hdop:.2f},{altitude},M,-86.5,M,,"),
        sentence(f"{talker}RMC,{hms},A,{lat},{ns},{lon},{ew},{knots},{track},{ddmmyy},,,A"),
        sentence(f"{talker}GSA,A,{mode},{','.join(used)},{pdop:.2f},{hdop:.2f},{vdop:.2f}"),
        sentence(f"{talker}VTG,{track},T,,M,{knots},N,{kmh},K,A"),
    ]


class FakeGps:
    """A GPS receiver on a pseudo-terminal: call write_epoch() yourself, or start() a thread at rate_hz."""

    def __init__(
        self,
        source: Callable[[], GpsFix | None],
        *,
        rate_hz: float = 1.0,
        clock: Callable[[], datetime | None] | None = None,
        talker: str = "GP",
    ) -> None:
        if not 1.0 <= rate_hz <= 10.0:
            raise GpsError(f"fake GPS: rate_hz = {rate_hz}: a receiver sends 1 to 10 epochs per second")
        self.source = source
        self.rate_hz = rate_hz
        self.clock = clock
        self.talker = talker
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no CR/LF translation: a serial line, not a terminal
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)
        self.epochs = 0
        self.dropped = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._lock = threading.Lock()

    def write_epoch(self) -> bytes:
        """Send one epoch's sentences now; returns the bytes (dropped, and counted, when nobody reads)."""
        fix = self.source()
        when = self.clock() if self.clock is not None else None
        data = "".join(nmea_epoch(fix, when, self.talker)).encode("ascii")
        with self._lock:
            if self._closed:
                return b""
            try:
                os.write(self._master, data)
            except BlockingIOError:
                # Nobody reads: drop the stale backlog (a UART with no listener loses bytes), keep the new.
                self.dropped += 1
                with contextlib.suppress(OSError):
                    termios.tcflush(self._slave, termios.TCIFLUSH)
                    os.write(self._master, data)
            except OSError:
                self.dropped += 1
                return data
        self.epochs += 1
        return data

    def start(self) -> FakeGps:
        """Send epochs at rate_hz from a background thread until close()."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="fake-gps", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        while not self._stop.wait(period):
            self.write_epoch()

    def close(self) -> None:
        """Stop the thread and close the pseudo-terminal; safe to call twice."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in (self._master, self._slave):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def __enter__(self) -> FakeGps:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
