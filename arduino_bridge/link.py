"""ArduinoLink: the MotorLink over a serial port (pyserial): the LinkSession (handshake, acknowledgements,
heartbeats, dead-link detection) plus finding, opening and re-opening the port, run by its own I/O thread so
send() never blocks the supervisor. On Linux, while the session is open, send() writes a command itself with
one non-blocking write, and the I/O thread wakes only for the replies and the session's own deadlines.
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import select
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import serial

from arduino_bridge.codec import check_outputs
from arduino_bridge.session import DEAD_AFTER_S, DEFAULT_WATCHDOG_MS, LinkSession
from robot.core.types import ALL_BRAKED, MotorOutputs
from robot.errors import LinkError

HANDSHAKE_S = 3.0  # an Uno resets when the port opens and its bootloader waits ~1.5 s before the sketch runs
RETRY_S = 0.25  # between HELLOs, and between connection attempts
VERSION_RETRY_S = 2.0  # after a version mismatch, try again this rarely (the firmware may get re-flashed)
# The longest the I/O thread waits in a read for a port that send() cannot wake (no cancel_read): a new command
# waits at most this long. A port it can wake is read until the session's next deadline (LinkSession.until_next:
# a heartbeat, a resend, its health running out), at most MAX_WAIT_S.
POLL_WAIT_S = 0.02
MAX_WAIT_S = 0.1
MIN_WAIT_S = 0.001
# What one os.read() of the port's descriptor asks for: more than a control tick can bring at 115200 baud (576
# bytes in 50 ms); what is left is read in the next round, at once.
READ_CHUNK = 4096
# send() writes a command itself only when the link has written nothing for this long: about a SET_MOTORS
# frame's time on the wire at 115200 baud (29 bytes, 10 bits each), so send() never writes faster than the
# wire carries frames. Commands closer together (a burst) go to the I/O thread, which writes the newest of
# those waiting at its next round, as it always did.
DIRECT_MIN_GAP_S = 0.0025
# Linux: the I/O thread waits on the port's descriptor itself (poll), woken through a pipe of its own, and
# send() writes commands on it (ArduinoLink._direct). Not macOS, whose poll() does not work on character
# devices such as ttys; there every port takes pyserial's read path.
FD_WAIT = sys.platform.startswith("linux")

Opener = Callable[..., Any]


def port_fd(port: Any) -> int | None:
    """The port's file descriptor when the I/O thread may read and write it itself: a POSIX port that pyserial
    opened non-blocking (the real serial ports, and ptys). None for any other port (loop://, socket://, a test
    double), which keeps pyserial's read, write and cancel_read."""
    fileno = getattr(port, "fileno", None)
    if not FD_WAIT or not callable(fileno):
        return None
    try:
        fd = fileno()
        if not isinstance(fd, int) or fd < 0 or os.get_blocking(fd):
            return None  # a blocking descriptor: a read or write of ours could block the thread
    except (OSError, ValueError, serial.SerialException):  # io.UnsupportedOperation is both
        return None
    return fd


def read_fd(fd: int) -> bytes:
    """What a non-blocking port that poll() found ready has for us, in one read. Nothing there (a spurious
    wake-up) reads as b""; ready with no data is a gone device, as pyserial's read() says."""
    try:
        data = os.read(fd, READ_CHUNK)
    except BlockingIOError:
        return b""
    if not data:
        raise serial.SerialException(
            "device reports readiness to read but returned no data "
            "(device disconnected or multiple access on port?)"
        )
    return data


def write_fd(port: Any, fd: int, wire: bytes) -> None:
    """Write a frame with one os.write() on the port's non-blocking descriptor. What the driver's buffer has
    no room for goes through pyserial's write(), which waits for room up to the port's write_timeout and
    raises SerialTimeoutException after it."""
    try:
        n = os.write(fd, wire)
    except BlockingIOError:
        n = 0
    if n < len(wire):
        port.write(wire[n:])


def read_waiting(port: Any) -> bytes:
    """What the port has for us: its first byte waited for up to the port's timeout (nothing when it runs out
    or cancel_read wakes it), and then the rest of what came with that byte. A reply wakes a one-byte read
    on its first byte; without the second read the thread went round its loop once more for the other nine
    or ten of an acknowledgement."""
    data = port.read(max(1, port.in_waiting))
    if len(data) == 1:
        rest = port.in_waiting
        if rest:
            data += port.read(rest)
    return data


class ArduinoLink:
    """The motor Arduino on a serial port: `send()` writes or queues, the I/O thread runs the LinkSession over
    the port.

    `url` is a pyserial URL or device path, a glob such as "/dev/ttyACM*" (a re-plugged board may come back
    under a new name), or a list of candidates tried in order. `on_change(healthy)` is called from the I/O
    thread when health flips. A version mismatch leaves the link unhealthy with the reason in `last_error`.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        baud: int = 115200,
        watchdog_ms: int = DEFAULT_WATCHDOG_MS,
        heartbeat_hz: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
        dead_after_s: float = DEAD_AFTER_S,
        open_port: Opener = serial.serial_for_url,
    ) -> None:
        self._session = LinkSession(
            watchdog_ms=watchdog_ms, heartbeat_hz=heartbeat_hz, dead_after_s=dead_after_s
        )
        self._urls = [url] if isinstance(url, str) else list(url)
        self._baud = baud
        self._clock = clock
        self._open_port = open_port
        self.on_change: Callable[[bool], None] | None = None
        self.port_name: str | None = None
        self._lock = threading.Lock()
        self._pending: tuple[MotorOutputs, float] | None = None
        self._stop = threading.Event()
        self._port: Any = None
        self._was_healthy = False
        self._connected_once = False
        self._reconnects = 0
        self._closed = False
        # The I/O thread's wake-up while it waits on the port's descriptor (port_fd): a command for it to
        # write, or close(), writes one byte when none is waiting (_woken); the thread reads it when it takes
        # the command, under the lock. _piped: the thread waits on the descriptor and this pipe (else send()
        # wakes it with pyserial's cancel_read).
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._woken = False
        self._piped = False
        # send() writes a command itself (one non-blocking os.write on _fd, the session under the lock) while
        # _direct: the thread serves the port on its descriptor, the session is open and nothing of an earlier
        # frame waits to be written (_tx_rest, what such a write had no room for: the thread writes it first).
        # The thread, woken only by the acknowledgement, then wakes once a tick instead of twice.
        self._direct = False
        self._fd = -1
        self._tx_rest = b""
        self._thread = threading.Thread(target=self._run, name="arduino-link", daemon=True)
        self._thread.start()

    # --- MotorLink

    def send(self, outputs: MotorOutputs) -> None:
        """Send these pin states: written at once (one non-blocking write, _direct; the link idle for
        DIRECT_MIN_GAP_S) or queued for the I/O thread, where the newest replaces one not yet written. Never
        blocks on I/O."""
        check_outputs(outputs)
        with self._lock:
            if self._closed:
                return
            now = self._clock()
            session = self._session
            if self._direct and session.open and now - session.last_tx >= DIRECT_MIN_GAP_S:
                self._write_locked(session.command(outputs, now))
                return
            self._pending = (outputs, now)
            if self._piped:
                self._wake_locked()
                return
            port = self._port
        cancel = getattr(port, "cancel_read", None)
        if cancel is not None:
            with contextlib.suppress(OSError, serial.SerialException):
                cancel()  # wake the I/O thread out of its read

    @property
    def healthy(self) -> bool:
        """Handshake done, versions match, and an acknowledgement came within the dead-link limit (250 ms)."""
        return not self._closed and self._session.healthy(self._clock())

    @property
    def last_error(self) -> str | None:
        """Why the link is not healthy (cannot open, no answer, version mismatch), or None."""
        return self._session.last_error

    @property
    def last_status(self) -> Any:
        """The newest STATUS report (codec.Status), or None."""
        return self._session.last_status

    def stats(self) -> dict[str, float]:
        """The session's counters (LinkSession.stats) plus reconnects and connected."""
        out = self._session.stats()
        out["reconnects"] = float(self._reconnects)
        out["connected"] = 1.0 if self._session.open else 0.0
        return out

    def close(self) -> None:
        """Brake every motor (if connected), stop the I/O thread and close the port; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            port = self._port
            self._stop.set()
            self._wake_locked()
        cancel = getattr(port, "cancel_read", None)
        if cancel is not None:
            with contextlib.suppress(OSError, serial.SerialException):
                cancel()
        self._thread.join(timeout=2.0)
        if not self._thread.is_alive():  # a thread still running might yet poll the pipe: leave it open then
            os.close(self._wake_r)
            os.close(self._wake_w)
        self._notify()

    def __enter__(self) -> ArduinoLink:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _wake_locked(self) -> None:
        """Wake the I/O thread out of its poll() (the lock held): one byte in the pipe, if none is there."""
        if not self._woken:
            self._woken = True
            with contextlib.suppress(OSError):  # the pipe holds one byte at most: never full
                os.write(self._wake_w, b"\x01")

    def _take_pending(self) -> tuple[MotorOutputs, float] | None:
        """The newest command not yet written, if any; empties the wake-up pipe. With the lock held."""
        pending, self._pending = self._pending, None
        if self._woken:
            self._woken = False
            with contextlib.suppress(OSError):
                os.read(self._wake_r, 64)
        return pending

    def _write_locked(self, wire: bytes) -> None:
        """One non-blocking os.write of a frame (the lock held, while _direct). What did not go out (no room
        in the driver's buffer, or an error) is left to the thread, woken for it: it writes that through
        pyserial (its write_timeout), which raises on a gone device, before anything else goes out."""
        try:
            n = os.write(self._fd, wire)
        except OSError:  # BlockingIOError: no room; any other: the thread's write raises it again
            n = 0
        if n < len(wire):
            self._tx_rest = wire[n:]
            self._direct = False
            self._wake_locked()

    # --- the I/O thread

    def _run(self) -> None:
        while not self._stop.is_set():
            port = self._connect()
            if port is None:
                self._stop.wait(VERSION_RETRY_S if self._session.refused else RETRY_S)
                continue
            try:
                self._serve(port)
            except (serial.SerialException, OSError, LinkError) as err:
                self._session.last_error = f"arduino on {self.port_name}: {err}; reconnecting"
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
                self._session.last_error = f"arduino on {name}: cannot open ({err}); check the USB cable"
                continue
            self.port_name = name
            self._session.where = f"arduino on {name}"
            self._session.reset()
            try:
                if self._handshake(port):
                    with self._lock:
                        self._port = port
                    if self._connected_once:
                        self._reconnects += 1
                    self._connected_once = True
                    return port
            except (serial.SerialException, OSError) as err:
                self._session.last_error = f"arduino on {name}: {err}"
            port.close()
            if self._session.refused:
                return None
        return None

    def _drop(self, port: Any) -> None:
        with self._lock:
            self._port = None
        self._session.reset()
        with contextlib.suppress(serial.SerialException, OSError):
            port.close()
        self._notify()

    def _handshake(self, port: Any) -> bool:
        """HELLO until the HELLO reply (or the deadline); True when the session is open and versions match."""
        session = self._session
        start = self._clock()
        port.reset_input_buffer()
        port.write(b"\x00")  # end any partial frame the device holds
        while not self._stop.is_set() and self._clock() - start < HANDSHAKE_S:
            port.write(session.hello(self._clock()))
            sent = self._clock()
            while self._clock() - sent < RETRY_S:
                session.receive(port.read(max(1, port.in_waiting)), self._clock())
                if session.refused:
                    self._notify()
                    return False
                if session.open:
                    with self._lock:
                        # A command older than the dead-link limit was meant for a robot that has moved on.
                        if (
                            self._pending is not None
                            and self._clock() - self._pending[1] > session.dead_after_s
                        ):
                            self._pending = None
                    self._notify()
                    return True
        session.last_error = f"arduino on {self.port_name}: no answer to HELLO within {HANDSHAKE_S} s"
        return False

    def _serve(self, port: Any) -> None:
        # Woken by send() for every command it writes (or, on a descriptor, by the replies to commands send()
        # wrote), the thread needs no other wake-up than the session's own deadlines, and the link's health is
        # looked at when it runs out rather than up to 20 ms after.
        fd = port_fd(port)
        if fd is not None:
            # The port's descriptor and the wake-up pipe in one poll(), one os.read() for what came, one
            # os.write() for a frame: pyserial's read() costs a select() per call and in_waiting an ioctl, 3-4
            # of each a tick (docs/performance.md, "The Pi tick, fifth round").
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            poller.register(self._wake_r, select.POLLIN)
            with self._lock:
                self._piped = True
                if self._pending is not None:  # sent while the thread still waited in pyserial's read
                    self._wake_locked()
            try:
                self._exchange_fd(port, fd, poller)
            finally:
                with self._lock:
                    self._piped = False
        else:
            self._exchange_pyserial(port)
        self._brake_on_close(port)

    def _exchange_fd(self, port: Any, fd: int, poller: select.poll) -> None:
        """_serve's loop on the port's descriptor: write what is due, poll() until the session's next
        deadline, a byte from the device or a wake-up, then read what came in one read. Meanwhile send()
        writes commands itself (_direct), so every use of the session here holds the lock."""
        session = self._session
        lock = self._lock
        with lock:
            self._fd = fd
        try:
            while not self._stop.is_set():
                with lock:
                    rest, self._tx_rest = self._tx_rest, b""
                if rest:  # what a write had no room for: out first, the lock not held (pyserial may wait)
                    port.write(rest)
                with lock:
                    pending = self._take_pending()
                    now = self._clock()
                    wire = session.command(pending[0], now) if pending is not None else session.due(now)
                    self._direct = True
                    if wire is not None:
                        self._write_locked(wire)
                    if not self._direct:
                        continue  # the rest of that frame first
                    # Whole milliseconds, rounded up: a deadline met up to 1 ms late, never early. A command
                    # that send() writes meanwhile only moves the deadlines later: the thread may wake early,
                    # not late.
                    wait_ms = max(
                        1, min(int(MAX_WAIT_S * 1000), math.ceil(session.until_next(self._clock()) * 1000.0))
                    )
                data = b""
                for ready, _ in poller.poll(wait_ms):
                    if ready == fd:
                        data = read_fd(fd)
                with lock:
                    session.receive(data, self._clock())
                    usable = session.open and not session.refused
                    if usable:
                        session.expire(self._clock())
                    else:
                        self._direct = False  # the session is this thread's alone until it is open again
                if usable:
                    self._notify()
                else:
                    self._resync(port)
        finally:
            with lock:
                self._direct = False
                self._fd = -1
                rest, self._tx_rest = self._tx_rest, b""
            if rest:
                port.write(rest)  # finish the frame begun (raises on a gone device: the port is dropped)

    def _exchange_pyserial(self, port: Any) -> None:
        """_serve's loop through pyserial's read() with a timeout (a port without a usable descriptor): the
        same, woken by cancel_read() where the port has it, else reading every POLL_WAIT_S."""
        session = self._session
        wakeable = callable(getattr(port, "cancel_read", None))
        longest = MAX_WAIT_S if wakeable else POLL_WAIT_S
        while not self._stop.is_set():
            now = self._clock()
            with self._lock:
                pending, self._pending = self._pending, None
            wire = session.command(pending[0], now) if pending is not None else session.due(now)
            if wire is not None:
                port.write(wire)
            # Whole milliseconds, rounded up (a deadline met up to 1 ms late, never early): the same wait comes
            # again and again, and pyserial reconfigures the port (termios calls) whenever it is set.
            wait = max(
                MIN_WAIT_S, min(longest, math.ceil(session.until_next(self._clock()) * 1000.0) / 1000.0)
            )
            if port.timeout != wait:
                port.timeout = wait
            session.receive(read_waiting(port), self._clock())
            if session.refused or not session.open:
                self._resync(port)
                continue
            session.expire(self._clock())
            self._notify()

    def _resync(self, port: Any) -> None:
        """The session closed while serving: refused (a version mismatch) ends it; a NOT_READY (the firmware's
        link watchdog tripped) is a HELLO again on the same port."""
        session = self._session
        if session.refused:
            raise LinkError(session.last_error or "version mismatch")
        self._notify()
        if not self._handshake(port):
            raise LinkError("the device dropped its session and did not answer HELLO")

    def _brake_on_close(self, port: Any) -> None:
        session = self._session
        if not session.open:
            return
        port.write(session.command(ALL_BRAKED, self._clock()))
        deadline = self._clock() + 0.2
        port.timeout = 0.01
        while self._clock() < deadline and session.command_pending:
            session.receive(port.read(max(1, port.in_waiting)), self._clock())

    def _notify(self) -> None:
        now_healthy = self.healthy
        if now_healthy != self._was_healthy:
            self._was_healthy = now_healthy
            callback = self.on_change
            if callback is not None:
                callback(now_healthy)
