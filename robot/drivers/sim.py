"""Simulated twins of every part: each implements the part's interface and reads its value from `source`,
a callable the simulator's world provides (a benign constant by default)."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Sequence
from typing import Any

from robot.core.types import PowerSource
from robot.drivers.lcd import fit_lines
from robot.errors import HardwareError
from robot.hardware.interfaces import GpsFix, PowerReading

DEFAULT_POWER = PowerReading(panel_v=18.1, panel_a=1.4, battery_v=11.9, battery_a=0.3, soc=0.8)


class _SimPart:
    """Closing and the context manager, shared by the twins."""

    name = "sim part"

    def __init__(self) -> None:
        self.closed = False

    def _check_open(self) -> None:
        if self.closed:
            raise HardwareError(f"{self.name}: used after close()")

    def close(self) -> None:
        """Mark closed; safe to call twice."""
        self.closed = True

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _SimEcho(_SimPart):
    """A distance twin that, like the real driver, wakes the runner once as the road turns unsafe."""

    def __init__(self, stop_distance_m: float, on_change: Callable[[], None] | None) -> None:
        super().__init__()
        self._stop = stop_distance_m
        self._on_change = on_change
        self._unsafe = False
        self._lock = threading.Lock()

    def _note(self, unsafe: bool) -> None:
        with self._lock:
            entered = unsafe and not self._unsafe
            self._unsafe = unsafe
        if entered and self._on_change:
            self._on_change()


class SimGps(_SimPart):
    """GpsReceiver twin; the default source has no fix (the robot waits for GPS, which is safe)."""

    name = "sim GPS"

    def __init__(self, source: Callable[[], GpsFix | None] = lambda: None) -> None:
        super().__init__()
        self._source = source

    def latest(self) -> GpsFix | None:
        """Whatever the world says the receiver sees now."""
        self._check_open()
        return self._source()


class SimScale(_SimPart):
    """TrayScale twin: an empty tray by default; a source may raise ScaleError to act disconnected."""

    name = "sim tray scale"

    def __init__(self, source: Callable[[], float] = lambda: 0.0) -> None:
        super().__init__()
        self._source = source

    def read_kg(self) -> float:
        """The world's tray weight in kg."""
        self._check_open()
        return float(self._source())


class SimRain(_SimPart):
    """RainSensor twin: dry by default; calls on_change when it sees rain start."""

    name = "sim rain sensor"

    def __init__(
        self, source: Callable[[], bool] = lambda: False, on_change: Callable[[], None] | None = None
    ) -> None:
        super().__init__()
        self._source = source
        self._on_change = on_change
        self._last = False
        self._lock = threading.Lock()

    def is_raining(self) -> bool:
        """The world's rain, as the sensor plate sees it."""
        self._check_open()
        raining = bool(self._source())
        with self._lock:
            started = raining and not self._last
            self._last = raining
        if started and self._on_change:
            self._on_change()
        return raining


class SimDistance(_SimEcho):
    """ObstacleSensor twin: 2 m of clear road by default; None from the source means no echo."""

    name = "sim distance sensor"

    def __init__(
        self,
        source: Callable[[], float | None] = lambda: 2.0,
        *,
        stop_distance_m: float = 0.5,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(stop_distance_m, on_change)
        self._source = source

    def distance_m(self) -> float | None:
        """Metres to the obstacle ahead, or None (unknown)."""
        self._check_open()
        d = self._source()
        self._note(d is None or d < self._stop)
        return None if d is None else float(d)


class SimSideDistance(_SimEcho):
    """SideSensors twin: clear on both sides (4 m, nothing in range) by default; None means no echo."""

    name = "sim side sensors"

    def __init__(
        self,
        source: Callable[[], tuple[float | None, float | None]] = lambda: (4.0, 4.0),
        *,
        stop_distance_m: float = 0.25,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(stop_distance_m, on_change)
        self._source = source

    def distances_m(self) -> tuple[float | None, float | None]:
        """Metres to the nearest thing on the left and on the right, each None when unknown."""
        self._check_open()
        left, right = self._source()
        self._note(left is None or right is None or min(left, right) < self._stop)
        return (None if left is None else float(left), None if right is None else float(right))


class SimPower(_SimPart):
    """PowerMonitor twin: a sunny afternoon with a well-charged battery by default."""

    name = "sim power monitor"

    def __init__(self, source: Callable[[], PowerReading] = lambda: DEFAULT_POWER) -> None:
        super().__init__()
        self._source = source

    def read(self) -> PowerReading:
        """The world's electrical state."""
        self._check_open()
        return self._source()


class SimCamera(_SimPart):
    """Camera twin: the world's view when a simulator feeds it, else a numbered test card (JPEG, Pillow)."""

    name = "sim camera"

    def __init__(
        self, source: Callable[[], bytes] | None = None, *, width: int = 640, height: int = 480
    ) -> None:
        super().__init__()
        self._frame = 0
        self._lock = threading.Lock()
        self.size = (width, height)
        self._source = source or self._test_card

    def _test_card(self) -> bytes:
        from PIL import Image, ImageDraw  # only the test card needs Pillow, and only when asked for a frame

        with self._lock:
            self._frame += 1
            frame = self._frame
        w, h = self.size
        img = Image.new("RGB", self.size, (40, 40, 40))
        d = ImageDraw.Draw(img)
        bars = (
            (235, 235, 235),
            (235, 235, 0),
            (0, 235, 235),
            (0, 235, 0),
            (235, 0, 235),
            (235, 0, 0),
            (0, 0, 235),
        )
        for i, colour in enumerate(bars):
            d.rectangle((i * w // len(bars), 0, (i + 1) * w // len(bars), h * 2 // 3), fill=colour)
        d.text((8, h * 2 // 3 + 8), f"frame {frame}: {self.name}, no world", fill=(255, 255, 255))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=75)
        return buf.getvalue()

    def snapshot_jpeg(self) -> bytes:
        """One JPEG frame."""
        self._check_open()
        return self._source()


class SimRelay(_SimPart):
    """PowerRelay twin: starts on the battery, like the real relay released."""

    name = "sim power relay"

    def __init__(self) -> None:
        super().__init__()
        self._source = PowerSource.BATTERY
        self.switches = 0

    def select(self, source: PowerSource) -> None:
        """Switch the loads to `source`."""
        self._check_open()
        source = PowerSource(source)
        if source != self._source:
            self._source = source
            self.switches += 1

    @property
    def source(self) -> PowerSource:
        """The source the loads are on."""
        return self._source


class SimLcd(_SimPart):
    """StatusLcd twin: keeps what the 16x2 display shows (`lines`) and counts the changes."""

    name = "sim LCD"

    def __init__(self, cols: int = 16, rows: int = 2) -> None:
        super().__init__()
        self.size = (cols, rows)
        self.lines = fit_lines((), cols, rows)
        self.updates = 0

    def show(self, lines: Sequence[str]) -> None:
        """What the real display would show after the same call."""
        self._check_open()
        fitted = fit_lines(lines, *self.size)
        if fitted != self.lines:
            self.lines = fitted
            self.updates += 1
