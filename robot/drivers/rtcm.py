"""RTCM corrections for an RTK receiver: an NTRIP client or a base station on serial, passed through to the rover.

The receiver (a u-blox F9P-class rover over NMEA) computes the RTK fix itself; all the Pi does is carry the base
station's RTCM 3 bytes to the receiver's serial port, unchanged. Two sources:

- `NtripClient`: NTRIP v1 (`ICY 200 OK`) or v2 (HTTP/1.1, chunked or not) from a caster over TCP, with Basic
  authentication and, for VRS mountpoints, our position sent back as a GGA sentence every `gga_interval_s`.
- `SerialSource`: a base station's radio on a serial port (anything pyserial's serial_for_url() opens).

`RtcmForwarder` runs one source in a thread, reconnects with back-off, writes every byte to the sink (the GPS
driver's `write`), and counts bytes and valid RTCM 3 frames (CRC-24Q) so `ramudroid doctor` and the dashboard
can say whether corrections flow.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from robot.errors import RtcmError
from robot.hardware.interfaces import GpsFix

USER_AGENT = "NTRIP ramudroid/0.1"
MAX_HEADER_BYTES = 16384
RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 60.0


def crc24q(data: bytes) -> int:
    """The CRC-24Q of RTCM 3 frames (polynomial 0x1864CFB)."""
    crc = 0
    for b in data:
        crc ^= b << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


class Rtcm3Counter:
    """Counts the valid RTCM 3 frames (0xD3, 10-bit length, CRC-24Q) in a byte stream, by message type."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.frames = 0
        self.bad_crc = 0
        self.types: dict[int, int] = {}

    def feed(self, data: bytes) -> None:
        """Scan more bytes; partial frames wait for the rest."""
        buf = self._buf
        buf += data
        while True:
            start = buf.find(b"\xd3")
            if start < 0:
                buf.clear()
                return
            del buf[:start]
            if len(buf) < 3:
                return
            length = ((buf[1] & 0x03) << 8) | buf[2]
            if len(buf) < 3 + length + 3:
                return
            frame = bytes(buf[: 3 + length])
            crc = int.from_bytes(buf[3 + length : 6 + length], "big")
            if crc24q(frame) == crc and length >= 2:
                self.frames += 1
                mtype = (frame[3] << 4) | (frame[4] >> 4)
                self.types[mtype] = self.types.get(mtype, 0) + 1
                del buf[: 6 + length]
            else:
                self.bad_crc += 1
                del buf[:1]  # not a frame start after all: look for the next 0xD3


def _coord(value: float, deg_digits: int, hemis: str) -> tuple[str, str]:
    a = abs(value)
    d = int(a)
    minutes = (a - d) * 60.0
    if round(minutes, 7) >= 60.0:
        d, minutes = d + 1, 0.0
    return f"{d:0{deg_digits}d}{minutes:011.8f}"[: deg_digits + 11], hemis[0] if value >= 0 else hemis[1]


def gga_sentence(fix: GpsFix, now: datetime | None = None) -> str:
    """A GGA sentence of our position, as a VRS caster wants it (with checksum and CR LF)."""
    t = fix.time or now or datetime.now(UTC)
    lat, ns = _coord(fix.lat, 2, "NS")
    lon, ew = _coord(fix.lon, 3, "EW")
    quality = fix.quality if fix.quality is not None else 1
    sats = fix.sats if fix.sats is not None else 8
    hdop = fix.hdop if fix.hdop is not None else 1.0
    body = (
        f"GPGGA,{t.hour:02d}{t.minute:02d}{t.second:02d}.{t.microsecond // 10000:02d},{lat},{ns},{lon},{ew},"
        f"{quality},{sats:02d},{hdop:.1f},0.0,M,0.0,M,,"
    )
    c = 0
    for ch in body:
        c ^= ord(ch)
    return f"${body}*{c:02X}\r\n"


class RtcmSource(Protocol):
    """Where corrections come from: open, read chunks of bytes, close."""

    name: str

    def open(self) -> None:
        """Connect; raises RtcmError with a clear message."""

    def read(self) -> bytes:
        """Some bytes (b"" when none arrived within the read timeout); raises RtcmError when the source died."""

    def close(self) -> None:
        """Disconnect; idempotent."""


class NtripClient:
    """An NTRIP v1/v2 client for one mountpoint; `position` gives the fix to upload as GGA (VRS), or None."""

    def __init__(
        self,
        host: str,
        port: int,
        mountpoint: str,
        *,
        user: str = "",
        password: str = "",
        version: int = 2,
        gga_interval_s: float = 10.0,
        position: Callable[[], GpsFix | None] | None = None,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if version not in (1, 2):
            raise RtcmError(f"NTRIP: version {version!r}; set rtcm.ntrip_version to 1 or 2")
        if not mountpoint or any(c in mountpoint for c in " \r\n/"):
            raise RtcmError(
                f"NTRIP: mountpoint {mountpoint!r} is not a mountpoint name; check rtcm.ntrip_mountpoint"
            )
        self.host, self.port, self.mountpoint = host, port, mountpoint
        self.user, self.password, self.version = user, password, version
        self.gga_interval_s = gga_interval_s
        self.position = position
        self.timeout_s = timeout_s
        self.clock = clock
        self.name = f"NTRIP caster {host}:{port}/{mountpoint}"
        self._sock: socket.socket | None = None
        self._chunked = False
        self._chunk_left = 0
        self._pending = b""
        self._gga_at = -float("inf")
        self.gga_sent = 0

    def request(self) -> bytes:
        """The HTTP request this client sends."""
        lines = [
            f"GET /{self.mountpoint} HTTP/{'1.1' if self.version == 2 else '1.0'}",
            f"User-Agent: {USER_AGENT}",
        ]
        if self.version == 2:
            lines += [f"Host: {self.host}:{self.port}", "Ntrip-Version: Ntrip/2.0", "Connection: close"]
            fix = self.position() if self.position is not None and self.gga_interval_s > 0 else None
            if fix is not None:
                lines.append("Ntrip-GGA: " + gga_sentence(fix).strip())
        if self.user or self.password:
            token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode("ascii")
            lines.append(f"Authorization: Basic {token}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")

    def open(self) -> None:
        """Connect, send the request and check the caster's answer."""
        self.close()
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        except OSError as err:
            raise RtcmError(
                f"{self.name}: cannot connect ({err}); check rtcm.ntrip_host and the network"
            ) from err
        self._sock = sock
        try:
            sock.sendall(self.request())
            head = b""
            while b"\r\n\r\n" not in head and not (head.startswith(b"ICY 200") and b"\r\n" in head):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                head += chunk
                if len(head) > MAX_HEADER_BYTES:
                    raise RtcmError(f"{self.name}: the caster's answer has no end of header")
        except OSError as err:
            self.close()
            raise RtcmError(f"{self.name}: connection failed during the request ({err})") from err
        except RtcmError:
            self.close()
            raise
        self._check_answer(head)
        self._gga_at = self.clock()  # v2 sent it in the request; v1 sends it right after (below)
        if self.version == 1:
            self._gga_at = -float("inf")
            self._maybe_send_gga()

    def _check_answer(self, head: bytes) -> None:
        text = head.decode("latin-1")
        status = text.split("\r\n", 1)[0]
        if status.startswith("ICY 200"):
            rest = head.split(b"\r\n", 1)[1] if b"\r\n" in head else b""
            self._chunked = False
            self._pending = rest[2:] if rest.startswith(b"\r\n") else rest
            return
        header, _, body = head.partition(b"\r\n\r\n")
        htext = header.decode("latin-1")
        code = htext.split(" ", 2)[1] if htext.startswith(("HTTP/", "SOURCETABLE")) and " " in htext else ""
        if htext.startswith("SOURCETABLE") or "gnss/sourcetable" in htext.lower():
            self.close()
            raise RtcmError(
                f"{self.name}: the caster answered with its source table: no mountpoint {self.mountpoint!r}; "
                "check rtcm.ntrip_mountpoint"
            )
        if code == "401":
            self.close()
            raise RtcmError(f"{self.name}: 401 unauthorised; check rtcm.ntrip_user and rtcm.ntrip_password")
        if code != "200":
            self.close()
            raise RtcmError(f"{self.name}: the caster answered {status!r}")
        self._chunked = "transfer-encoding: chunked" in htext.lower()
        self._chunk_left = 0
        self._pending = body

    def _maybe_send_gga(self) -> None:
        if self.position is None or self.gga_interval_s <= 0 or self._sock is None:
            return
        now = self.clock()
        if now - self._gga_at < self.gga_interval_s:
            return
        fix = self.position()
        if fix is None:
            return
        self._gga_at = now
        try:
            self._sock.sendall(gga_sentence(fix).encode("ascii"))
            self.gga_sent += 1
        except OSError as err:
            raise RtcmError(f"{self.name}: sending our position failed ({err})") from err

    def read(self) -> bytes:
        """Correction bytes (chunked transfer decoded); raises RtcmError when the caster hung up."""
        if self._sock is None:
            raise RtcmError(f"{self.name}: not connected")
        self._maybe_send_gga()
        if self._pending:
            data, self._pending = self._pending, b""
        else:
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                return b""
            except OSError as err:
                raise RtcmError(f"{self.name}: read failed ({err})") from err
            if not data:
                raise RtcmError(f"{self.name}: the caster closed the connection")
        return self._dechunk(data) if self._chunked else data

    def _dechunk(self, data: bytes) -> bytes:
        out = bytearray()
        buf = self._pending + data
        self._pending = b""
        while buf:
            if self._chunk_left > 0:
                take = buf[: self._chunk_left]
                out += take
                self._chunk_left -= len(take)
                buf = buf[len(take) :]
                if self._chunk_left == 0:
                    self._chunk_left = -2  # the CR LF after the chunk
                continue
            if self._chunk_left < 0:
                skip = min(-self._chunk_left, len(buf))
                buf = buf[skip:]
                self._chunk_left += skip
                continue
            line, sep, rest = buf.partition(b"\r\n")
            if not sep:
                self._pending = buf  # a chunk size line cut in two
                break
            try:
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            except ValueError as err:
                raise RtcmError(f"{self.name}: bad chunk size {line[:20]!r}") from err
            if size == 0:
                raise RtcmError(f"{self.name}: the caster ended the stream")
            self._chunk_left = size
            buf = rest
        return bytes(out)

    def close(self) -> None:
        """Disconnect; idempotent."""
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


class SerialSource:
    """A base station (or its radio) on a serial port: raw RTCM bytes in."""

    def __init__(self, port: str, baud: int = 57600, *, timeout_s: float = 0.2) -> None:
        self.port, self.baud, self.timeout_s = port, baud, timeout_s
        self.name = f"RTCM base on {port}"
        self._ser: Any = None

    def open(self) -> None:
        """Open the port."""
        import serial

        self.close()
        try:
            self._ser = serial.serial_for_url(self.port, baudrate=self.baud, timeout=self.timeout_s)
        except (serial.SerialException, OSError, ValueError) as err:
            raise RtcmError(f"{self.name}: cannot open the port ({err}); check rtcm.serial_port") from err

    def read(self) -> bytes:
        """Whatever arrived within the timeout."""
        import serial

        if self._ser is None:
            raise RtcmError(f"{self.name}: not open")
        try:
            return bytes(self._ser.read(1024))
        except (serial.SerialException, OSError, TypeError) as err:
            raise RtcmError(f"{self.name}: read failed ({err})") from err

    def close(self) -> None:
        """Close the port; idempotent."""
        ser, self._ser = self._ser, None
        if ser is not None:
            with contextlib.suppress(Exception):
                ser.close()


class RtcmForwarder:
    """Carries one source's bytes to the receiver (`sink`), reconnecting with back-off, in a thread."""

    def __init__(
        self,
        source: RtcmSource,
        sink: Callable[[bytes], None],
        *,
        on_error: Callable[[str], None] | None = None,
        sleep: Callable[[float], bool] | None = None,
    ) -> None:
        self.source = source
        self.sink = sink
        self.on_error = on_error
        self.bytes = 0
        self.connects = 0
        self.counter = Rtcm3Counter()
        self.last_error = ""
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> RtcmForwarder:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="rtcm", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        backoff = RECONNECT_MIN_S
        while not self._stop.is_set():
            try:
                self.source.open()
                with self._lock:
                    self.connects += 1
                backoff = RECONNECT_MIN_S
                while not self._stop.is_set():
                    data = self.source.read()
                    if data:
                        self.sink(data)
                        with self._lock:
                            self.bytes += len(data)
                            self.counter.feed(data)
            except (RtcmError, OSError) as err:
                with self._lock:
                    self.last_error = str(err)
                if self.on_error is not None:
                    self.on_error(str(err))
            finally:
                self.source.close()
            if self._sleep(backoff):
                return
            backoff = min(RECONNECT_MAX_S, backoff * 2.0)

    def stats(self) -> dict[str, Any]:
        """Bytes passed through, valid RTCM 3 frames by type, connections, the last error."""
        with self._lock:
            return {
                "source": self.source.name,
                "bytes": self.bytes,
                "frames": self.counter.frames,
                "bad_crc": self.counter.bad_crc,
                "types": dict(sorted(self.counter.types.items())),
                "connects": self.connects,
                "error": self.last_error,
            }

    def close(self) -> None:
        """Stop the thread and the source; idempotent."""
        self._stop.set()
        self.source.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=3.0)

    def __enter__(self) -> RtcmForwarder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_forwarder(
    settings: Any, sink: Callable[[bytes], None], position: Callable[[], GpsFix | None]
) -> RtcmForwarder | None:
    """The forwarder the [rtcm] settings ask for, not yet started; None when rtcm.source is "none"."""
    r = settings.rtcm
    if r.source == "none":
        return None
    source: RtcmSource
    if r.source == "ntrip":
        if not r.ntrip_host or not r.ntrip_mountpoint:
            raise RtcmError("rtcm.source = 'ntrip' needs rtcm.ntrip_host and rtcm.ntrip_mountpoint")
        source = NtripClient(
            r.ntrip_host,
            r.ntrip_port,
            r.ntrip_mountpoint,
            user=r.ntrip_user,
            password=r.ntrip_password,
            version=r.ntrip_version,
            gga_interval_s=r.gga_interval_s,
            position=position,
        )
    else:
        source = SerialSource(r.serial_port, r.serial_baud)
    return RtcmForwarder(source, sink)
