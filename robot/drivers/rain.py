"""Rain sensor: a digital input (LM393 comparator board) through gpiozero, debounced towards safety.

Wet is reported at the first wet edge (the core's rain.confirm_s confirms it against splashes); dry only after
the input has stayed dry for `debounce_s`, so drops flickering on the plate read as rain, not as on/off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from robot.drivers._gpio import pin_factory_for


class RainDebouncer:
    """Pure debounce logic: feed raw edges with their times, ask whether it is raining now."""

    def __init__(self, debounce_s: float, raw: bool, now: float) -> None:
        self.debounce_s = debounce_s
        self._raw = raw
        self._since = now
        self._raining = raw
        self.edges = 0

    def edge(self, raw: bool, now: float) -> bool:
        """Record the input's new level; returns True when this edge makes it start raining."""
        if raw == self._raw:
            return False
        self.edges += 1
        self._raw, self._since = raw, now
        if raw and not self._raining:
            self._raining = True
            return True
        return False

    def raining(self, now: float) -> bool:
        """Debounced state: wet at once, dry after debounce_s of continuous dry input."""
        if self._raining and not self._raw and now - self._since >= self.debounce_s:
            self._raining = False
        return self._raining


class GpioRain:
    """RainSensor on one GPIO pin; `active_low` for the common boards whose DO goes low when wet."""

    def __init__(
        self,
        pin: int,
        *,
        active_low: bool = True,
        debounce_s: float = 2.0,
        on_change: Callable[[], None] | None = None,
        pin_factory: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        factory = pin_factory_for("rain", pin_factory)
        from gpiozero import DigitalInputDevice

        self.where = f"rain sensor on GPIO {pin}"
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._dev = DigitalInputDevice(pin, pull_up=active_low, pin_factory=factory)
        self._deb = RainDebouncer(debounce_s, bool(self._dev.is_active), clock())
        self._dev.when_activated = self._edge
        self._dev.when_deactivated = self._edge
        self._closed = False

    def _edge(self) -> None:
        # Called from gpiozero's event thread.
        with self._lock:
            started = self._deb.edge(bool(self._dev.is_active), self._clock())
        if started and self._on_change:
            self._on_change()

    def is_raining(self) -> bool:
        """Debounced: True from the first wet edge until the plate has been dry for debounce_s."""
        with self._lock:
            return self._deb.raining(self._clock())

    def stats(self) -> dict[str, int]:
        """How many raw edges the input made (a flickering count hints at a badly set comparator)."""
        return {"edges": self._deb.edges}

    def close(self) -> None:
        """Release the pin; safe to call twice."""
        if not self._closed:
            self._closed = True
            self._dev.close()

    def __enter__(self) -> GpioRain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
