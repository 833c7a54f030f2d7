"""ArduinoLink: the MotorLink over a serial port (pyserial), with handshake, acknowledgements, heartbeats,
dead-link detection and reconnection, run by its own I/O thread so send() never blocks the supervisor.
"""

from __future__ import annotations

import contextlib
import glob
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import serial

from arduino_bridge.codec import (
    PROTOCOL_VERSION,
    Ack,
    ErrorCode,
    ErrorReport,
    FrameError,
    FrameReader,
    Heartbeat,
    Hello,
    HelloReply,
    Message,
    SetMotors,
    Status,
    check_outputs,
    decode_message,
    encode_message,
)
from robot.core.types import ALL_BRAKED, MotorOutputs
from robot.errors import ConfigError, LinkError, VersionMismatch

DEAD_AFTER_S = (
    0.25  # no acknowledgement for this long: dead. 250 ms keeps detection within 300 ms of the fault
)
RESEND_S = 0.1  # an unacknowledged motor command is sent again after this long
HANDSHAKE_S = 3.0  # an Uno resets when the port opens and its bootloader waits ~1.5 s before the sketch runs
RETRY_S = 0.25  # between connection attempts
VERSION_RETRY_S = 2.0  # after a version mismatch, try again this rarely (the firmware may get re-flashed)

Opener = Callable[..., Any]


class _Resync(Exception):
    """The device dropped its session (watchdog tripped): handshake again on the same port."""


class ArduinoLink:
    """The motor Arduino on a serial port: `send()` queues, the I/O thread writes and waits for the ACK.

    `url` is a pyserial URL or device path, a glob such as "/dev/ttyACM*" (a re-plugged board may come back
    under a new name), or a list of candidates tried in order. `on_change(healthy)` is called from the I/O
    thread when health flips. A version mismatch leaves the link unhealthy with the reason in `last_error`.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        baud: int = 115200,
        watchdog_ms: int = 300,
        heartbeat_hz: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
        dead_after_s: float = DEAD_AFTER_S,
        open_port: Opener = serial.serial_for_url,
    ) -> None:
        if not 1 <= watchdog_ms <= 1000:
            raise ConfigError(f"arduino link: watchdog {watchdog_ms} ms outside 1..1000; use 300")
        if heartbeat_hz < 10.0:
            raise ConfigError(f"arduino link: heartbeat {heartbeat_hz} Hz below 10 Hz; use 20")
        self._urls = [url] if isinstance(url, str) else list(url)
        self._baud = baud
        self._watchdog_ms = watchdog_ms
        self._heartbeat_s = 1.0 / heartbeat_hz
        self._clock = clock
        self._dead_after_s = dead_after_s
        self._open_port = open_port
        self.on_change: Callable[[bool], None] | None = None
        self.last_error: str | None = None
        self.port_name: str | None = None
        self.last_status: Status | None = None
        self._lock = threading.Lock()
        self._pending: tuple[MotorOutputs, float] | None = None
        self._stop = threading.Event()
        self._port: Any = None
        self._session = False
        self._refused = False
        self._last_ack: float | None = None
        self._was_healthy = False
        self._seq = 0
        self._inflight: dict[int, float] = {}
        self._unacked: tuple[int, MotorOutputs, float] | None = None
        self._last_tx = 0.0
        self._connected_once = False
        self._closed = False
        self._counts = dict.fromkeys(
            ("sent", "acked", "lost", "resent", "heartbeats", "crc_errors", "device_errors", "reconnects",
             "handshakes", "resyncs"),
            0,
        )  # fmt: skip
        self._rtt = {"rtt_ms": 0.0, "rtt_avg_ms": 0.0, "rtt_max_ms": 0.0}
        self._thread = threading.Thread(target=self._run, name="arduino-link", daemon=True)
        self._thread.start()

    # --- MotorLink

    def send(self, outputs: MotorOutputs) -> None:
        """Queue these pin states; the newest replaces one not yet written. Never blocks on I/O."""
        check_outputs(outputs)
        with self._lock:
            if self._closed:
                return
            self._pending = (outputs, self._clock())
            port = self._port
        cancel = getattr(port, "cancel_read", None)
        if cancel is not None:
            with contextlib.suppress(OSError, serial.SerialException):
                cancel()  # wake the I/O thread out of its read

    @property
    def healthy(self) -> bool:
        """Handshake done, versions match, and an acknowledgement came within the dead-link limit (250 ms)."""
        last = self._last_ack
        return (
            self._session
            and not self._refused
            and not self._closed
            and last is not None
            and self._clock() - last <= self._dead_after_s
        )

    def stats(self) -> dict[str, float]:
        """rtt_ms (last), rtt_avg_ms, rtt_max_ms, sent, acked, lost, resent, heartbeats, crc_errors
        (received),
        device_errors (ERROR reports), reconnects, handshakes, resyncs, connected."""
        with self._lock:
            out = {k: float(v) for k, v in self._counts.items()}
            out.update(self._rtt)
        out["connected"] = 1.0 if self._session else 0.0
        return out

    def close(self) -> None:
        """Brake every motor (if connected), stop the I/O thread and close the port; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            port = self._port
        self._stop.set()
        cancel = getattr(port, "cancel_read", None)
        if cancel is not None:
            with contextlib.suppress(OSError, serial.SerialException):
                cancel()
        self._thread.join(timeout=2.0)
        self._notify()

    def __enter__(self) -> ArduinoLink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- the I/O thread

    def _run(self) -> None:
        while not self._stop.is_set():
            port = self._connect()
            if port is None:
                self._stop.wait(VERSION_RETRY_S if self._refused else RETRY_S)
                continue
            try:
                self._serve(port)
            except (serial.SerialException, OSError, LinkError) as err:
                self.last_error = f"arduino on {self.port_name}: {err}; reconnecting"
            finally:
                self._drop(port)
        self._notify()

    def _candidates(self) -> list[str]:
        names: list[str] = []
        for url in self._urls:
            if "://" not in url and any(c in url for c in "*?["):
                names += sorted(glob.glob(url))
            else:
                names.append(url)
        return names

    def _connect(self) -> Any:
        for name in self._candidates():
            if self._stop.is_set():
                return None
            try:
                port = self._open_port(name, baudrate=self._baud, timeout=0.02, write_timeout=0.2)
            except (serial.SerialException, OSError, ValueError) as err:
                self.last_error = f"arduino on {name}: cannot open ({err}); check the USB cable"
                continue
            self.port_name = name
            try:
                if self._handshake(port):
                    with self._lock:
                        self._port = port
                    if self._connected_once:
                        self._counts["reconnects"] += 1
                    self._connected_once = True
                    return port
            except (serial.SerialException, OSError) as err:
                self.last_error = f"arduino on {name}: {err}"
            port.close()
            if self._refused:
                return None
        return None

    def _drop(self, port: Any) -> None:
        with self._lock:
            self._port = None
        self._session = False
        self._inflight.clear()
        self._unacked = None
        with contextlib.suppress(serial.SerialException, OSError):
            port.close()
        self._notify()

    def _write(self, port: Any, msg: Message) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        if self._seq == 0xFFFF:  # reserved: NO_SEQ in reports
            self._seq = 0
        port.write(encode_message(msg, self._seq))
        now = self._clock()
        self._last_tx = now
        self._inflight[self._seq] = now
        with self._lock:
            self._counts["sent"] += 1
        return self._seq

    def _handshake(self, port: Any) -> bool:
        """HELLO until the HELLO reply (or the deadline); True when the session is open and versions match."""
        self._counts["handshakes"] += 1
        reader = FrameReader()
        start = self._clock()
        port.reset_input_buffer()
        port.write(b"\x00")  # end any partial frame the device holds
        while not self._stop.is_set() and self._clock() - start < HANDSHAKE_S:
            seq = self._write(port, Hello(self._watchdog_ms))
            sent = self._clock()
            while self._clock() - sent < RETRY_S:
                for item in reader.feed(port.read(max(1, port.in_waiting))):
                    msg = self._parse(item)
                    if isinstance(msg, ErrorReport) and msg.code == ErrorCode.VERSION:
                        return self._refuse(msg.detail)
                    if isinstance(msg, HelloReply) and msg.ref_seq == seq:
                        if msg.protocol != PROTOCOL_VERSION:
                            return self._refuse(msg.protocol)
                        self._refused = False
                        self._session = True
                        now = self._clock()
                        self._ack(seq, now)
                        self._inflight.clear()
                        with self._lock:
                            # A command older than the dead-link limit was meant for a robot that has moved
                            # on.
                            if self._pending is not None and now - self._pending[1] > self._dead_after_s:
                                self._pending = None
                        self.last_error = None
                        self._notify()
                        return True
        self.last_error = f"arduino on {self.port_name}: no answer to HELLO within {HANDSHAKE_S} s"
        return False

    def _refuse(self, theirs: int) -> bool:
        self._refused = True
        self._session = False
        self.last_error = str(
            VersionMismatch(
                f"arduino on {self.port_name}: firmware speaks protocol version {theirs}, this controller "
                f"{PROTOCOL_VERSION}; refusing to drive. "
                "Flash the matching firmware: `ramudroid firmware flash`"
            )
        )
        self._notify()
        return False

    def _serve(self, port: Any) -> None:
        reader = FrameReader()
        while not self._stop.is_set():
            now = self._clock()
            with self._lock:
                pending, self._pending = self._pending, None
            if pending is not None:
                outputs = pending[0]
                self._unacked = (self._write(port, SetMotors(outputs)), outputs, self._clock())
            elif self._unacked is not None and now - self._unacked[2] >= RESEND_S:
                outputs = self._unacked[1]
                self._counts["resent"] += 1
                self._unacked = (self._write(port, SetMotors(outputs)), outputs, self._clock())
            elif now - self._last_tx >= self._heartbeat_s:
                self._write(port, Heartbeat())
                self._counts["heartbeats"] += 1
            port.timeout = max(0.001, min(0.02, self._last_tx + self._heartbeat_s - self._clock()))
            data = port.read(max(1, port.in_waiting))
            try:
                for item in reader.feed(data):
                    self._handle(self._parse(item))
            except _Resync:
                self._session = False
                self._notify()
                if not self._handshake(port):
                    raise LinkError("the device dropped its session and did not answer HELLO") from None
                continue
            self._expire()
            self._notify()
        self._brake_on_close(port, reader)

    def _parse(self, item: Any) -> Message | None:
        if isinstance(item, FrameError):
            with self._lock:
                self._counts["crc_errors"] += 1
            return None
        try:
            return decode_message(item)
        except FrameError:
            with self._lock:
                self._counts["crc_errors"] += 1
            return None

    def _ack(self, seq: int, now: float) -> None:
        sent = self._inflight.pop(seq, None)
        if sent is None:
            return
        rtt = 1000.0 * (now - sent)
        with self._lock:
            self._counts["acked"] += 1
            self._rtt["rtt_ms"] = rtt
            self._rtt["rtt_max_ms"] = max(self._rtt["rtt_max_ms"], rtt)
            avg = self._rtt["rtt_avg_ms"]
            self._rtt["rtt_avg_ms"] = rtt if avg == 0.0 else 0.9 * avg + 0.1 * rtt
        self._last_ack = now

    def _handle(self, msg: Message | None) -> None:
        now = self._clock()
        match msg:
            case Ack(ref_seq=ref):
                self._ack(ref, now)
                if self._unacked is not None and self._unacked[0] == ref:
                    self._unacked = None
            case Status():
                self.last_status = msg
                self._ack(msg.ref_seq, now)
            case ErrorReport(code=code, ref_seq=ref):
                with self._lock:
                    self._counts["device_errors"] += 1
                self._inflight.pop(ref, None)
                if code == ErrorCode.NOT_READY:
                    with self._lock:
                        self._counts["resyncs"] += 1
                    raise _Resync()
                if code == ErrorCode.VERSION:
                    self._refuse(msg.detail)
                    raise LinkError(self.last_error or "version mismatch")
                if self._unacked is not None and code in (ErrorCode.CRC, ErrorCode.FRAME):
                    self._unacked = (self._unacked[0], self._unacked[1], now - RESEND_S)  # resend at once

    def _expire(self) -> None:
        now = self._clock()
        old = [s for s, t in self._inflight.items() if now - t > self._dead_after_s]
        for s in old:
            del self._inflight[s]
        if old:
            with self._lock:
                self._counts["lost"] += len(old)

    def _brake_on_close(self, port: Any, reader: FrameReader) -> None:
        if not self._session:
            return
        seq = self._write(port, SetMotors(ALL_BRAKED))
        deadline = self._clock() + 0.2
        port.timeout = 0.01
        while self._clock() < deadline:
            for item in reader.feed(port.read(max(1, port.in_waiting))):
                msg = self._parse(item)
                if isinstance(msg, Ack) and msg.ref_seq == seq:
                    return

    def _notify(self) -> None:
        now_healthy = self.healthy
        if now_healthy != self._was_healthy:
            self._was_healthy = now_healthy
            callback = self.on_change
            if callback is not None:
                callback(now_healthy)
