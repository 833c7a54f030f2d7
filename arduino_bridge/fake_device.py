"""FakeArduino: a SimArduino behind a pseudo-terminal, run by a thread, for hardware-in-the-loop tests of the
link
and the whole supervisor. It records every applied pin state with its time and can be unplugged and re-
plugged.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from arduino_bridge.sim_arduino import SimArduino
from robot.core.types import MotorOutputs


class FakeArduino:
    """The motor Arduino on a pty. `path` is what to open: the symlink `<link_dir>/<name>` when link_dir is
    given (so tests can use a glob such as ttyACM*), else the pty slave itself."""

    def __init__(
        self,
        *,
        link_dir: Path | None = None,
        name: str = "ttyACM0",
        clock: Callable[[], float] = time.monotonic,
        protocol_version: int | None = None,
        build_id: int | None = None,
    ) -> None:
        self._clock = clock
        self._link_dir = Path(link_dir) if link_dir is not None else None
        self._protocol_version = protocol_version
        self._build_id = build_id  # None: this controller's own firmware build
        self._lock = threading.Lock()
        self.history: list[tuple[float, MotorOutputs]] = []
        self.received = 0
        self._hung = False
        self._stop = threading.Event()
        self._master = -1
        self._slave = -1
        self._thread: threading.Thread | None = None
        self.sim = self._new_sim()
        self._plug(name)

    def _new_sim(self) -> SimArduino:
        if self._protocol_version is None:
            return SimArduino(boot_at=self._clock(), build_id=self._build_id)
        return SimArduino(
            boot_at=self._clock(), protocol_version=self._protocol_version, build_id=self._build_id
        )

    def reflash(self, build_id: int | None = None, protocol_version: int | None = None) -> None:
        """New firmware was uploaded: the board reboots running this build (None: this controller's)."""
        with self._lock:
            self._build_id = build_id
            self._protocol_version = protocol_version
            self.sim = self._new_sim()
            self._record()

    # --- plugging

    def _plug(self, name: str) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing: a serial line carries raw bytes
        tty.setraw(self._master)
        self.slave_path = os.ttyname(self._slave)
        if self._link_dir is not None:
            link = self._link_dir / name
            link.unlink(missing_ok=True)
            link.symlink_to(self.slave_path)
            self.path = str(link)
        else:
            self.path = self.slave_path
        self._record()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="fake-arduino", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        """Unplug: the device node disappears and the host's reads fail; the board loses its USB power."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
        if self._link_dir is not None:
            Path(self.path).unlink(missing_ok=True)
        with self._lock:
            self.sim = self._new_sim()  # powered off: everything low
            self._record()

    def replug(self, name: str | None = None) -> None:
        """Plug back in, as a freshly booted board; `name` gives it a new device name (e.g. ttyACM1)."""
        if self._master >= 0:
            self.cut()
        self._plug(name or Path(self.path).name)

    def hang(self) -> None:
        """The board stops answering (port stays open); its watchdog still brakes, as the real firmware's
        does."""
        self._hung = True

    def resume(self) -> None:
        """The board answers again."""
        self._hung = False

    def inject(self, data: bytes) -> None:
        """Send raw bytes to the host (line noise, a corrupted reply)."""
        os.write(self._master, data)

    # --- observation

    @property
    def pins(self) -> MotorOutputs:
        """The pin states applied now."""
        with self._lock:
            return self.sim.pins

    def pins_at(self, t: float) -> MotorOutputs:
        """The pin states applied at time `t` (from the history)."""
        with self._lock:
            state = self.history[0][1]
            for at, pins in self.history:
                if at > t:
                    break
                state = pins
            return state

    def _record(self) -> None:
        pins = self.sim.pins
        if not self.history or self.history[-1][1] != pins:
            self.history.append((self._clock(), pins))

    # --- the device thread

    def _run(self) -> None:
        master = self._master
        while not self._stop.is_set():
            ready, _, _ = select.select([master], [], [], 0.005)
            data = b""
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:  # the host closed its side: keep waiting, as a board would
                    data = b""
            with self._lock:
                now = self._clock()
                if self._hung or not data:
                    self.sim.tick(now)
                    reply = b""
                else:
                    self.received += len(data)
                    reply = self.sim.feed(data, now)
                self._record()
            if reply:
                with contextlib.suppress(OSError):
                    os.write(master, reply)
            if ready and not data:
                time.sleep(0.005)  # nobody on the other side: do not spin

    def close(self) -> None:
        """Stop the thread and remove the device; safe to call twice."""
        if self._master >= 0:
            self.cut()

    def __enter__(self) -> FakeArduino:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
