"""AvrEmulator: the real firmware running in simavr (through our harness), its UART on a pseudo-terminal and
its
motor pins reported with simulated timestamps. Used by the hardware-in-the-loop tests and bench/bridge.py.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from arduino_bridge.firmware_build import build_firmware, build_harness
from robot.core.types import ALL_BRAKED, MotorOutputs, PinState
from robot.errors import FirmwareBuildError


@dataclass(frozen=True, slots=True)
class PinEvent:
    """One channel's effective pins changed at simulated time `ns`."""

    ns: int
    channel: int
    state: PinState


def build_all(out: Path) -> tuple[Path, Path]:
    """Build the firmware ELF and the harness into `out`; returns (elf, harness)."""
    return build_firmware(out).elf, build_harness(out)


class AvrEmulator:
    """Runs `harness elf --realtime`; `path` is the pty to open, `events`/`rx_ns`/`tx_ns` fill in as it
    runs."""

    def __init__(self, elf: Path, harness: Path, *, realtime: bool = True, max_ms: float = 60_000.0) -> None:
        cmd = [str(harness), str(elf), "--max-ms", str(max_ms)]
        if realtime:
            cmd.append("--realtime")
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.events: list[PinEvent] = []
        self.rx_ns: list[int] = []
        self.tx_ns: list[int] = []
        self._cond = threading.Condition()
        self.path = ""
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith("PTY "):
                self.path = line.split()[1]
                break
        if not self.path:
            self._proc.kill()
            raise FirmwareBuildError("simavr harness: exited without reporting its pseudo-terminal")
        self._reader = threading.Thread(target=self._read, name="simavr-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            parts = line.split()
            with self._cond:
                if parts[:1] == ["PIN"] and len(parts) == 6:
                    ns, ch, in1, in2, en = map(int, parts[1:])
                    self.events.append(PinEvent(ns, ch, PinState(in1, in2, en)))
                elif parts[:1] == ["RX"]:
                    self.rx_ns.append(int(parts[1]))
                elif parts[:1] == ["TX"]:
                    self.tx_ns.append(int(parts[1]))
                self._cond.notify_all()

    def pins_at(self, ns: int | None = None) -> MotorOutputs:
        """The effective pins at simulated time `ns` (None: the latest)."""
        with self._cond:
            state = list(ALL_BRAKED)
            for e in self.events:
                if ns is not None and e.ns > ns:
                    break
                state[e.channel] = e.state
            return MotorOutputs(*state)

    def wait(self, cond: Callable[[], bool], timeout: float = 5.0) -> None:
        """Block (wall clock) until cond() holds, re-checked whenever the harness reports something."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not cond():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("simavr: condition not met in time")
                self._cond.wait(left)

    def first_ns(self, cond: Callable[[MotorOutputs], bool], after_ns: int = 0) -> int | None:
        """Simulated time of the first pin event after `after_ns` at which cond(pins) holds."""
        with self._cond:
            events = list(self.events)
        state = list(ALL_BRAKED)
        for e in events:
            state[e.channel] = e.state
            if e.ns > after_ns and cond(MotorOutputs(*state)):
                return e.ns
        return None

    def close(self) -> None:
        """Stop the emulator; safe to call twice."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> AvrEmulator:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
