"""ArduinoLink over a pseudo-terminal against FakeArduino (the SimArduino in a thread): handshake, commands,
heartbeats, dead-link detection, re-plug under a new device name, version refusal and braking on close.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import serial

from arduino_bridge import link as link_module
from arduino_bridge import session as session_module
from arduino_bridge.fake_device import FakeArduino
from arduino_bridge.link import ArduinoLink, port_fd, read_fd, read_waiting, write_fd
from robot.core.types import ALL_BRAKED, MotorOutputs, PinState
from robot.errors import ConfigError, ProtocolError
from robot.hardware.interfaces import MotorLink

FWD = MotorOutputs(*(PinState(1, 0, 200),) * 5)
BACK = MotorOutputs(*(PinState(0, 1, 90),) * 5)
pytestmark = pytest.mark.timeout(30)


def wait_for(cond: Callable[[], bool], timeout: float = 3.0) -> float:
    """Poll until cond() holds; returns the seconds it took (the pty link runs on the wall clock)."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.002)
    return time.monotonic() - start


@pytest.fixture
def device(tmp_path: Path) -> Iterator[FakeArduino]:
    with FakeArduino(link_dir=tmp_path) as dev:
        yield dev


@pytest.fixture
def link(device: FakeArduino, tmp_path: Path) -> Iterator[ArduinoLink]:
    with ArduinoLink(str(tmp_path / "ttyACM*")) as lk:
        wait_for(lambda: lk.healthy)
        yield lk


def test_link_handshakes_and_every_command_reaches_the_pins(device: FakeArduino, link: ArduinoLink) -> None:
    assert isinstance(link, MotorLink)
    for outputs in (FWD, BACK, ALL_BRAKED):
        link.send(outputs)
        wait_for(lambda o=outputs: device.pins == o, 1.0)  # type: ignore[misc]
    wait_for(lambda: link.stats()["acked"] >= 4, 1.0)  # HELLO + three commands
    stats = link.stats()
    assert stats["lost"] == 0 and 0 < stats["rtt_ms"] < 50


def test_send_never_blocks_and_the_newest_command_wins(device: FakeArduino, link: ArduinoLink) -> None:
    start = time.perf_counter()
    for i in range(2000):
        link.send(MotorOutputs(*(PinState(1, 0, i % 256),) * 5))
    link.send(FWD)
    assert time.perf_counter() - start < 0.5
    wait_for(lambda: device.pins == FWD, 1.0)
    assert link.healthy


def test_heartbeats_keep_the_device_watchdog_fed(device: FakeArduino, link: ArduinoLink) -> None:
    link.send(FWD)
    wait_for(lambda: device.pins == FWD, 1.0)
    before = link.stats()["heartbeats"]
    time.sleep(0.6)  # real time on purpose: the heartbeat rate itself is under test
    assert link.stats()["heartbeats"] - before >= 6  # >= 10 Hz
    assert device.pins == FWD and not device.sim.watchdog_tripped and link.healthy


def test_unplug_is_detected_within_300_ms_and_replug_under_a_new_name_reconnects(
    device: FakeArduino, link: ArduinoLink
) -> None:
    changes: list[bool] = []
    link.on_change = changes.append
    link.send(FWD)
    wait_for(lambda: device.pins == FWD, 1.0)
    device.cut()
    assert wait_for(lambda: not link.healthy, 1.0) <= 0.3
    # Either the loss itself or the first failed re-open is reported, depending on who wins the race.
    assert link.last_error and ("reconnecting" in link.last_error or "cannot open" in link.last_error)
    device.replug("ttyACM1")
    wait_for(lambda: link.healthy, 3.0)
    assert link.port_name and link.port_name.endswith("ttyACM1")
    assert device.pins == ALL_BRAKED  # a fresh board waits for the next command
    link.send(BACK)
    wait_for(lambda: device.pins == BACK, 1.0)
    assert link.stats()["reconnects"] == 1
    assert changes[:2] == [False, True]


def test_silent_board_is_detected_its_watchdog_brakes_and_the_session_resumes(
    device: FakeArduino, link: ArduinoLink
) -> None:
    link.send(FWD)
    wait_for(lambda: device.pins == FWD, 1.0)
    device.hang()
    t_unhealthy = wait_for(lambda: not link.healthy, 1.0)
    assert t_unhealthy <= 0.3
    wait_for(lambda: device.pins == ALL_BRAKED, 1.0)
    braked_at = next(t for t, p in reversed(device.history) if p == ALL_BRAKED)
    moving_since = next(t for t, p in reversed(device.history) if p == FWD)
    assert braked_at - moving_since < 0.3 + 0.3  # last valid frame was at most one heartbeat after FWD
    device.resume()
    wait_for(lambda: link.healthy, 2.0)
    assert link.stats()["resyncs"] >= 1
    link.send(FWD)
    wait_for(lambda: device.pins == FWD, 1.0)


def test_line_noise_is_counted_and_tolerated(device: FakeArduino, link: ArduinoLink) -> None:
    device.inject(b"\x07\x13\x99\x00\x02\x01\x00")
    wait_for(lambda: link.stats()["crc_errors"] >= 2, 1.0)
    link.send(FWD)
    wait_for(lambda: device.pins == FWD, 1.0)
    assert link.healthy


def test_version_mismatch_refuses_to_drive(tmp_path: Path) -> None:
    with (
        FakeArduino(link_dir=tmp_path, protocol_version=2) as dev,
        ArduinoLink(str(tmp_path / "ttyACM0")) as lk,
    ):
        wait_for(lambda: lk.last_error is not None and "protocol version" in lk.last_error, 2.0)
        lk.send(FWD)
        time.sleep(0.1)
        assert not lk.healthy and dev.pins == ALL_BRAKED
        assert all(p == ALL_BRAKED for _, p in dev.history)
        assert "version 2" in (lk.last_error or "") and "refusing to drive" in (lk.last_error or "")


def test_close_brakes_first_and_is_idempotent(device: FakeArduino, tmp_path: Path) -> None:
    lk = ArduinoLink(str(tmp_path / "ttyACM0"))
    wait_for(lambda: lk.healthy)
    lk.send(FWD)
    wait_for(lambda: device.pins == FWD, 1.0)
    lk.close()
    assert device.pins == ALL_BRAKED and not device.sim.watchdog_tripped  # braked by command, not by timeout
    lk.close()
    lk.send(FWD)
    time.sleep(0.05)
    assert device.pins == ALL_BRAKED and not lk.healthy


def test_no_device_stays_unhealthy_and_says_why(tmp_path: Path) -> None:
    with ArduinoLink(str(tmp_path / "ttyACM9")) as lk:
        wait_for(lambda: lk.last_error is not None, 1.0)
        assert not lk.healthy and "cannot open" in (lk.last_error or "")


def test_bad_values_and_settings_are_rejected_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        ArduinoLink(str(tmp_path / "x"), watchdog_ms=1500)
    with pytest.raises(ConfigError):
        ArduinoLink(str(tmp_path / "x"), heartbeat_hz=5.0)
    with ArduinoLink(str(tmp_path / "x")) as lk, pytest.raises(ProtocolError):
        lk.send(MotorOutputs(PinState(2, 0, 0), *FWD[1:]))


class VirtualPort:
    """A serial port on a virtual clock with the SimArduino behind it: each read that finds nothing waits its
    whole timeout in virtual time at once. Records every read's timeout and every time the timeout is set."""

    def __init__(self, clock: list[float], *, wakeable: bool, fileno: bool = False) -> None:
        from arduino_bridge.sim_arduino import SimArduino

        self._clock = clock
        self._sim = SimArduino(build_id=0)
        self._inbox = b""
        self._timeout = 0.02
        self.waits: list[float] = []
        self.timeouts_set = 0
        if wakeable:
            self.cancel_read = lambda: None
        if fileno:  # as pyserial's loop:// and socket:// ports: io.RawIOBase's fileno(), which raises
            self.fileno = io.RawIOBase().fileno

    @property
    def timeout(self) -> float:
        return self._timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        self.timeouts_set += 1
        self._timeout = value

    @property
    def in_waiting(self) -> int:
        return len(self._inbox)

    def reset_input_buffer(self) -> None:
        self._inbox = b""

    def write(self, data: bytes) -> int:
        self._inbox += self._sim.feed(data, self._clock[0])
        return len(data)

    def read(self, size: int = 1) -> bytes:
        if not self._inbox:
            self.waits.append(self._timeout)
            self._clock[0] += self._timeout
            self._sim.tick(self._clock[0])
            return b""
        out, self._inbox = self._inbox[:size], self._inbox[size:]
        return out

    def close(self) -> None:
        pass


@pytest.mark.parametrize(("wakeable", "fileno"), [(True, False), (False, False), (True, True)])
def test_the_io_thread_waits_for_the_sessions_deadlines_when_send_can_wake_it(
    wakeable: bool, fileno: bool
) -> None:
    clock = [100.0]
    # A port without a descriptor (fileno() raises, as loop:// does) keeps pyserial's reads and cancel_read.
    port = VirtualPort(clock, wakeable=wakeable, fileno=fileno)
    # Heartbeats at 16 Hz: 62.5 ms, exact in binary, so the virtual clock lands on each deadline exactly.
    lk = ArduinoLink("virtual", heartbeat_hz=16.0, clock=lambda: clock[0], open_port=lambda *a, **k: port)
    try:
        wait_for(lambda: len(port.waits) >= 40)  # a few ms of real time: virtual waits cost none
        healthy = lk.healthy
    finally:
        lk.close()
    waits = port.waits[5:40]  # past the handshake
    assert healthy  # heartbeats answered on time, the firmware's watchdog fed
    if wakeable:
        # Nothing to do until the next heartbeat: one wait of 62.5 ms (rounded up to 63), not four of 20 ms.
        assert set(waits) == {0.063}
        assert port.timeouts_set <= 3  # set once, not before every read (pyserial reconfigures the port)
    else:
        # A port send() cannot wake is looked at every 20 ms, so a new command waits at most that long.
        assert max(waits) == pytest.approx(0.02)


class ArrivingPort:
    """pyserial's read() on a port where `arriving` comes in while a read waits: a read of n returns as soon as n
    bytes are there, the first read that finds nothing waits for the next arrival (or its timeout)."""

    def __init__(self, *arrivals: bytes) -> None:
        self._arrivals = list(arrivals)
        self._buffer = b""
        self.reads: list[int] = []

    @property
    def in_waiting(self) -> int:
        return len(self._buffer)

    def read(self, size: int = 1) -> bytes:
        self.reads.append(size)
        if not self._buffer and self._arrivals:
            self._buffer = self._arrivals.pop(0)  # came in during the wait
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


def test_a_reply_that_wakes_a_one_byte_read_is_read_whole_in_the_same_round() -> None:
    ack = bytes(range(1, 12))  # 11 bytes, as an acknowledgement frame
    port = ArrivingPort(ack, b"\x00")
    assert read_waiting(port) == ack
    assert port.reads == [1, 10]  # woken by its first byte, then the ten that came with it
    assert read_waiting(port) == b"\x00"  # one byte alone: nothing more to read
    assert port.reads[2:] == [1]
    assert read_waiting(port) == b""  # the timeout (or cancel_read) with nothing there
    assert port.reads[3:] == [1]


def test_bytes_already_waiting_are_read_in_one_read() -> None:
    port = ArrivingPort()
    port._buffer = b"\x01\x02\x03"
    assert read_waiting(port) == b"\x01\x02\x03" and port.reads == [3]


# --- the I/O thread on the port's own descriptor (Linux): poll() on it and a wake-up pipe, os.read, os.write


def test_a_pty_port_is_served_on_its_descriptor_not_through_pyserials_reads(tmp_path: Path) -> None:
    ports: list[Any] = []
    reads: list[int] = []

    def open_port(*args: Any, **kwargs: Any) -> Any:
        port = serial.serial_for_url(*args, **kwargs)
        ports.append(port)
        return port

    with (
        FakeArduino(link_dir=tmp_path) as dev,
        ArduinoLink(str(tmp_path / "ttyACM0"), open_port=open_port) as lk,
    ):
        wait_for(lambda: lk.healthy)
        port = ports[-1]
        assert port_fd(port) == port.fileno()
        port.read = lambda size=1: (
            reads.append(size) or b""
        )  # the handshake's reads are done: none may follow
        for outputs in (FWD, BACK, FWD, ALL_BRAKED):
            lk.send(outputs)
            wait_for(lambda o=outputs: dev.pins == o, 1.0)  # type: ignore[misc]
        acked = lk.stats()["acked"]
        wait_for(lambda: lk.stats()["acked"] > acked, 1.0)  # acknowledgements still read, now by os.read
        assert reads == [] and lk.healthy and lk.stats()["lost"] == 0


def test_send_wakes_the_thread_waiting_on_the_descriptor_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Heartbeats every 50 s, the dead-link limit 1000 s and the longest wait 60 s: the thread, with no
    # deadline for the next 50 s, writes a command at once only if send() wakes it. The board runs on a clock
    # 1000 times slower than real time, so that its 300 ms watchdog does not trip meanwhile. Margin: 5 s of
    # real time for a wake-up that takes well under a millisecond, against the 50 s an unwoken thread would
    # sleep.
    monkeypatch.setattr(link_module, "MAX_WAIT_S", 60.0)
    monkeypatch.setattr(session_module, "MIN_HEARTBEAT_HZ", 0.01)
    start = time.monotonic()

    def slow() -> float:
        return 1000.0 + (time.monotonic() - start) / 1000.0

    with (
        FakeArduino(link_dir=tmp_path, clock=slow) as dev,
        ArduinoLink(str(tmp_path / "ttyACM0"), heartbeat_hz=0.02, dead_after_s=1000.0) as lk,
    ):
        wait_for(lambda: lk.healthy)
        for outputs in (FWD, BACK):
            lk.send(outputs)
            wait_for(lambda o=outputs: dev.pins == o, 5.0)  # type: ignore[misc]
        assert lk.stats()["heartbeats"] == 0  # the commands went out on send()'s wake-up, not a deadline
    assert dev.pins == ALL_BRAKED  # close() wakes the thread too, and it brakes on its way out


def test_port_fd_takes_only_a_non_blocking_descriptor() -> None:
    class NoFileno:
        pass

    class Fd:
        def __init__(self, fd: int) -> None:
            self.fileno = lambda: fd

    r, w = os.pipe()
    try:
        assert port_fd(NoFileno()) is None
        assert port_fd(serial.serial_for_url("loop://")) is None  # fileno() raises io.UnsupportedOperation
        assert port_fd(Fd(r)) is None  # blocking: an os.read of ours could hang the thread
        os.set_blocking(r, False)
        assert port_fd(Fd(r)) == r
    finally:
        os.close(r)
        os.close(w)


def test_read_fd_reads_what_is_there_and_a_ready_port_without_data_is_a_gone_device() -> None:
    r, w = os.pipe()
    os.set_blocking(r, False)
    try:
        assert read_fd(r) == b""  # a spurious wake-up: nothing there, no error
        os.write(w, b"\x01\x02\x03")
        assert read_fd(r) == b"\x01\x02\x03"  # everything waiting, in one read
        os.close(w)
        w = -1
        with pytest.raises(serial.SerialException, match="disconnected"):
            read_fd(r)  # end of file: what an unplugged device looks like
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


def test_write_fd_hands_what_the_port_has_no_room_for_to_pyserials_write() -> None:
    class Port:
        def __init__(self) -> None:
            self.written: list[bytes] = []

        def write(self, data: bytes) -> int:
            self.written.append(data)
            return len(data)

    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        port = Port()
        write_fd(port, w, b"frame")
        assert os.read(r, 64) == b"frame" and port.written == []  # one os.write, pyserial not involved
        with pytest.raises(BlockingIOError):
            while True:  # fill the pipe: the next write finds no room
                os.write(w, b"\x00" * 4096)
        write_fd(port, w, b"frame")
        assert port.written == [b"frame"]  # pyserial waits for room (its write_timeout), or raises
    finally:
        os.close(r)
        os.close(w)


def test_close_closes_the_wake_up_pipe_once(tmp_path: Path) -> None:
    lk = ArduinoLink(str(tmp_path / "ttyACM9"))
    fds = (lk._wake_r, lk._wake_w)
    lk.close()
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)
    lk.close()  # idempotent: nothing closed twice
    lk.send(FWD)  # after close: ignored, no write to a closed pipe


class PtyBoard:
    """A SimArduino answering on a pty from a thread of its own until stop(); then the test reads the wire."""

    def __init__(self) -> None:
        import threading
        import tty

        from arduino_bridge.sim_arduino import SimArduino

        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self._sim = SimArduino(boot_at=time.monotonic(), build_id=None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import select

        while not self._stop.is_set():
            if select.select([self.master], [], [], 0.005)[0]:
                reply = self._sim.feed(os.read(self.master, 4096), time.monotonic())
                if reply:
                    os.write(self.master, reply)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def frames(self, until: Callable[[list[Any]], bool], timeout: float = 3.0) -> list[Any]:
        """Decode what the host wrote (read from the pty) until `until(messages)` holds."""
        import select

        from arduino_bridge.codec import FrameReader, decode_message

        reader, messages = FrameReader(), []
        start = time.monotonic()
        while not until(messages):
            assert time.monotonic() - start < timeout, f"not seen within {timeout} s: {messages}"
            if select.select([self.master], [], [], 0.01)[0]:
                for item in reader.feed(os.read(self.master, 65536)):
                    if not isinstance(item, Exception):
                        messages.append(decode_message(item))
        return messages

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


def test_send_writes_the_command_to_the_port_itself_before_it_returns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from arduino_bridge.codec import SetMotors

    monkeypatch.setattr(link_module, "DIRECT_MIN_GAP_S", 0.0)  # a heartbeat just before must not matter here
    board = PtyBoard()
    try:
        with ArduinoLink(board.path) as lk:
            wait_for(lambda: lk.healthy)
            board.stop()  # the board stops reading: what is on the wire stays there for the test
            lk.send(FWD)
            # Already in the pty when send() returned: one os.write on the caller's thread, the I/O thread not
            # woken for it (it wakes for the acknowledgement). Heartbeats may come first; the read waits for
            # nothing.
            got = board.frames(lambda ms: any(isinstance(m, SetMotors) for m in ms), timeout=0.0 + 3.0)
            assert [m.outputs for m in got if isinstance(m, SetMotors)] == [FWD]
            assert not lk._woken  # nothing in the wake-up pipe: the thread was not woken for the command
    finally:
        board.close()


def test_a_frame_the_port_has_no_room_for_is_finished_by_the_thread_before_anything_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from arduino_bridge.codec import Heartbeat, SetMotors

    monkeypatch.setattr(
        link_module, "DIRECT_MIN_GAP_S", 0.0
    )  # send() writes FWD itself, whatever came before
    board = PtyBoard()
    try:
        with ArduinoLink(board.path) as lk:
            wait_for(lambda: lk.healthy)
            board.stop()
            # Fill the pty towards the board (nobody reads it now) until a write finds no room.
            filler = os.open(board.path, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY)
            try:
                with pytest.raises(BlockingIOError):
                    while True:
                        os.write(filler, b"\x00" * 256)  # empty frames: skipped by the board's reader
            finally:
                os.close(filler)
            lk.send(FWD)  # no room: send() hands the frame to the thread, never waits itself
            lk.send(BACK)  # queued behind it: the wire is the thread's until that frame is out
            # Drain the pty at once: the thread's pyserial write waits for room up to its write_timeout (0.2
            # s), which this loop's first read makes within milliseconds. Margin: 0.2 s for a read started at
            # once.
            got = board.frames(lambda ms: sum(isinstance(m, SetMotors) for m in ms) >= 2, timeout=3.0)
            motors = [m.outputs for m in got if isinstance(m, SetMotors)]
            assert motors == [FWD, BACK]  # whole frames, in order: FWD (finished by the thread), then BACK
            assert all(isinstance(m, SetMotors | Heartbeat) for m in got)
            assert lk.stats()["reconnects"] == 0
    finally:
        board.close()


def test_a_command_right_after_another_frame_goes_to_the_thread_and_a_later_one_is_written_by_send(
    tmp_path: Path,
) -> None:
    import threading

    # The clock stands still: for send() every command comes 0 s after the link's last frame, closer than
    # DIRECT_MIN_GAP_S, so none is written by the sending thread; the I/O thread writes them (the newest wins).
    frozen = [1000.0]
    writers: list[str] = []
    with (
        FakeArduino(link_dir=tmp_path) as dev,
        ArduinoLink(str(tmp_path / "ttyACM0"), clock=lambda: frozen[0]) as lk,
    ):
        wait_for(lambda: lk.healthy)
        real_write = lk._write_locked

        def write_locked(wire: bytes) -> None:
            writers.append(threading.current_thread().name)
            real_write(wire)

        lk._write_locked = write_locked  # type: ignore[method-assign]
        for outputs in (FWD, BACK, FWD):
            lk.send(outputs)
        wait_for(lambda: dev.pins == FWD, 1.0)
        assert writers and set(writers) == {"arduino-link"}  # a burst: coalesced by the thread, as always
        writers.clear()
        frozen[0] += 1.0 / 64  # 15.6 ms later (exact in binary): the link has been idle long enough
        lk.send(BACK)
        assert writers[:1] == [
            threading.current_thread().name
        ]  # written by send() itself, before it returned
        wait_for(lambda: dev.pins == BACK, 1.0)
