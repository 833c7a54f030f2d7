"""RTCM corrections: the NTRIP client against a tiny fake caster on 127.0.0.1, and the pass-through on ptys."""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import threading
import time
import tty
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from robot.config import ConfigError, from_dict
from robot.drivers.gps import NmeaDecoder, SerialGps
from robot.drivers.rtcm import (
    NtripClient,
    Rtcm3Counter,
    RtcmForwarder,
    SerialSource,
    build_forwarder,
    crc24q,
    gga_sentence,
)
from robot.errors import RtcmError
from robot.hardware.interfaces import GpsFix

FIX = GpsFix(datetime(2024, 6, 1, 10, 10, 10, tzinfo=UTC), 12.9716, 77.5946, 3, 0.0, None, 0.6, 20, 4)


def rtcm_frame(msg_type: int, payload: bytes) -> bytes:
    """A valid RTCM 3 frame: D3, 10-bit length, message (type in the first 12 bits), CRC-24Q."""
    body = bytes([msg_type >> 4, ((msg_type & 0xF) << 4) | 0x5]) + payload
    head = bytes([0xD3, (len(body) >> 8) & 0x03, len(body) & 0xFF]) + body
    return head + crc24q(head).to_bytes(3, "big")


STREAM = b"".join(
    rtcm_frame(t, bytes(range(i, i + 40))) for i, t in enumerate((1005, 1074, 1084, 1094, 1230))
)


def wait_until(pred, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


@dataclass
class FakeCaster:
    """One-connection-at-a-time NTRIP caster: checks the mountpoint and credentials, streams STREAM."""

    version: int
    chunked: bool = True
    mountpoint: str = "BLR0"
    user: str = "robot"
    password: str = "s3cret"
    requests: list[bytes] = field(default_factory=list)
    received: bytearray = field(default_factory=bytearray)
    connections: int = 0

    def __post_init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            with conn, contextlib.suppress(OSError):  # the client may hang up at any time
                conn.settimeout(0.2)
                self._one(conn)

    def _one(self, conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head and not self._stop.is_set():
            try:
                chunk = conn.recv(4096)
            except TimeoutError:
                continue
            if not chunk:
                return
            head += chunk
        req, _, extra = head.partition(b"\r\n\r\n")
        self.requests.append(req)
        self.received += extra
        lines = req.decode().split("\r\n")
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if lines[0].split(" ")[1] != "/" + self.mountpoint:
            conn.sendall(
                b"SOURCETABLE 200 OK\r\nContent-Type: text/plain\r\n\r\nSTR;BLR0;...\r\nENDSOURCETABLE\r\n"
            )
            return
        if f"Authorization: Basic {token}" not in lines:
            conn.sendall(b"HTTP/1.1 401 Unauthorized\r\n\r\n")
            return
        if self.version == 1:
            conn.sendall(b"ICY 200 OK\r\n")
            body = STREAM
        elif self.chunked:
            conn.sendall(b"HTTP/1.1 200 OK\r\nNtrip-Version: Ntrip/2.0\r\nTransfer-Encoding: chunked\r\n\r\n")
            # Chunks that cut frames in odd places, as a real caster's do.
            body = b"".join(
                f"{len(STREAM[i : i + 37]):x}\r\n".encode() + STREAM[i : i + 37] + b"\r\n"
                for i in range(0, len(STREAM), 37)
            )
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nNtrip-Version: Ntrip/2.0\r\n\r\n")
            body = STREAM
        for i in range(0, len(body), 50):
            conn.sendall(body[i : i + 50])
            time.sleep(0.005)
        # Keep the connection a while and collect what the client sends (GGA lines).
        end = time.monotonic() + 1.0
        while time.monotonic() < end and not self._stop.is_set():
            try:
                data = conn.recv(4096)
            except TimeoutError:
                continue
            if not data:
                break
            self.received += data

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=3)
        self.sock.close()


@pytest.fixture
def caster_v2() -> Iterator[FakeCaster]:
    c = FakeCaster(version=2)
    yield c
    c.close()


@pytest.fixture
def caster_v1() -> Iterator[FakeCaster]:
    c = FakeCaster(version=1)
    yield c
    c.close()


def collect(client: NtripClient, want: int) -> bytes:
    client.open()
    got = b""
    deadline = time.monotonic() + 5.0
    try:
        while len(got) < want and time.monotonic() < deadline:
            got += client.read()
    finally:
        client.close()
    return got


def test_ntrip_v2_chunked_stream_arrives_byte_exact_with_gga_in_the_request(caster_v2: FakeCaster) -> None:
    client = NtripClient(
        "127.0.0.1", caster_v2.port, "BLR0", user="robot", password="s3cret", version=2, position=lambda: FIX
    )
    assert collect(client, len(STREAM)) == STREAM
    req = caster_v2.requests[0].decode()
    assert req.startswith("GET /BLR0 HTTP/1.1\r\n")
    assert "Ntrip-Version: Ntrip/2.0" in req
    assert "Ntrip-GGA: $GPGGA,101010.00,1258.29600000,N,07735.67600000,E,4,20," in req


def test_ntrip_v2_without_chunking(caster_v2: FakeCaster) -> None:
    caster_v2.chunked = False
    client = NtripClient("127.0.0.1", caster_v2.port, "BLR0", user="robot", password="s3cret")
    assert collect(client, len(STREAM)) == STREAM


def test_ntrip_v1_icy_stream_and_gga_upload_for_vrs(caster_v1: FakeCaster) -> None:
    clock = [0.0]
    client = NtripClient(
        "127.0.0.1",
        caster_v1.port,
        "BLR0",
        user="robot",
        password="s3cret",
        version=1,
        gga_interval_s=5.0,
        position=lambda: FIX,
        clock=lambda: clock[0],
    )
    client.open()
    got = b""
    deadline = time.monotonic() + 5.0
    while len(got) < len(STREAM) and time.monotonic() < deadline:
        got += client.read()
        clock[0] += 1.0  # a second of robot time per read: the GGA goes out again every 5 s
    client.close()
    assert got == STREAM
    assert caster_v1.requests[0].startswith(b"GET /BLR0 HTTP/1.0\r\n")
    assert wait_until(lambda: caster_v1.received.count(b"$GPGGA") >= 1)
    line = caster_v1.received.split(b"\r\n")[0].decode()
    assert NmeaDecoder().feed_line(line) == [] and line.startswith("$GPGGA,101010.00")
    assert client.gga_sent >= 1


def test_wrong_password_and_unknown_mountpoint_are_clear_errors(caster_v2: FakeCaster) -> None:
    bad = NtripClient("127.0.0.1", caster_v2.port, "BLR0", user="robot", password="nope")
    with pytest.raises(RtcmError, match=r"401.*ntrip_password"):
        bad.open()
    missing = NtripClient("127.0.0.1", caster_v2.port, "XYZ9", user="robot", password="s3cret")
    with pytest.raises(RtcmError, match=r"source table.*'XYZ9'.*ntrip_mountpoint"):
        missing.open()


def test_nothing_listening_is_a_clear_error() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(RtcmError, match=r"cannot connect.*ntrip_host"):
        NtripClient("127.0.0.1", port, "BLR0", timeout_s=1.0).open()


@pytest.fixture
def receiver_pty() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    tty.setraw(slave)
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


def read_all(fd: int, want: int, timeout: float = 5.0) -> bytes:
    os.set_blocking(fd, False)
    got = b""
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        try:
            got += os.read(fd, 4096)
        except BlockingIOError:
            time.sleep(0.01)
    return got


def test_forwarder_passes_ntrip_corrections_to_the_receivers_port(
    caster_v2: FakeCaster, receiver_pty: tuple[int, str]
) -> None:
    master, port = receiver_pty
    with SerialGps(port, 115200) as gps:
        client = NtripClient("127.0.0.1", caster_v2.port, "BLR0", user="robot", password="s3cret")
        with RtcmForwarder(client, gps.write).start() as fwd:
            assert read_all(master, len(STREAM)) == STREAM
            assert wait_until(lambda: fwd.stats()["frames"] == 5)
            stats = fwd.stats()
            assert stats["types"] == {1005: 1, 1074: 1, 1084: 1, 1094: 1, 1230: 1}
            assert stats["bad_crc"] == 0 and stats["bytes"] == len(STREAM)


def test_forwarder_passes_a_serial_base_through_unchanged(receiver_pty: tuple[int, str]) -> None:
    rx_master, rx_port = receiver_pty
    base_master, base_slave = os.openpty()
    tty.setraw(base_slave)
    try:
        with SerialGps(rx_port, 115200) as gps:
            src = SerialSource(os.ttyname(base_slave), 57600, timeout_s=0.05)
            with RtcmForwarder(src, gps.write).start() as fwd:
                assert wait_until(lambda: fwd.stats()["connects"] == 1)
                noisy = b"\x00\xff" + STREAM[:30]
                os.write(base_master, noisy)
                os.write(base_master, STREAM[30:])
                # Every byte reaches the receiver, noise included: the receiver's own parser judges it.
                assert read_all(rx_master, len(noisy) + len(STREAM) - 30) == noisy + STREAM[30:]
                assert wait_until(lambda: fwd.stats()["frames"] == 5)
    finally:
        os.close(base_master)
        os.close(base_slave)


def test_forwarder_reconnects_after_the_caster_drops(caster_v1: FakeCaster) -> None:
    got = bytearray()
    client = NtripClient("127.0.0.1", caster_v1.port, "BLR0", user="robot", password="s3cret", version=1)
    waits: list[float] = []

    def sleep(s: float) -> bool:
        waits.append(s)
        time.sleep(0.01)
        return False

    with RtcmForwarder(client, got.extend, sleep=sleep).start() as fwd:
        # The fake caster hangs up after each stream: the forwarder connects again, backing off.
        assert wait_until(lambda: fwd.stats()["connects"] >= 2, timeout=8.0)
        assert "closed the connection" in fwd.stats()["error"]
    assert got.startswith(STREAM)
    assert waits[:2] == [1.0, 1.0]  # a connection that delivered resets the back-off


def test_rtcm_counter_finds_frames_across_splits_and_rejects_bad_crc() -> None:
    c = Rtcm3Counter()
    bad = bytearray(rtcm_frame(1077, b"x" * 20))
    bad[10] ^= 0xFF
    data = b"junk" + bytes(bad) + STREAM
    for i in range(0, len(data), 7):
        c.feed(data[i : i + 7])
    assert c.frames == 5 and c.bad_crc >= 1
    assert c.types[1005] == 1


def test_gga_sentence_round_trips_through_our_decoder() -> None:
    dec = NmeaDecoder()
    south_west = GpsFix(FIX.time, -33.8688, -151.2093, 3, None, None, 0.9, 9, 5)
    dec.feed_line(gga_sentence(south_west))
    (fix,) = dec.flush()
    assert fix.lat == pytest.approx(-33.8688, abs=1e-8) and fix.lon == pytest.approx(-151.2093, abs=1e-8)
    assert fix.quality == 5


def test_config_checks_rtcm_settings() -> None:
    with pytest.raises(ConfigError, match="ntrip_host"):
        from_dict({"rtcm": {"source": "ntrip"}, "hardware": {"gps": "pi"}})
    with pytest.raises(ConfigError, match=r"hardware\.gps = 'pi'"):
        from_dict({"rtcm": {"source": "serial"}})
    s = from_dict(
        {
            "hardware": {"gps": "pi"},
            "gps": {"receiver": "rtk"},
            "rtcm": {"source": "ntrip", "ntrip_host": "127.0.0.1", "ntrip_mountpoint": "BLR0"},
        }
    )
    fwd = build_forwarder(s, lambda b: None, lambda: None)
    assert fwd is not None and "127.0.0.1:2101/BLR0" in fwd.source.name
    assert build_forwarder(from_dict({}), lambda b: None, lambda: None) is None
