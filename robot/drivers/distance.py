"""Forward distance: HC-SR04 through gpiozero's DistanceSensor; no echo means "unknown", never "clear".

gpiozero drops failed pings from its median queue and keeps reporting the last good median, so a sensor that
stopped answering would look like a clear road. Every ping result is recorded here instead, and distance_m()
answers None when the last pings all failed or no good ping is recent.
"""

from __future__ import annotations

import statistics
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable
from typing import Any

from robot.drivers._gpio import pin_factory_for


class EchoWindow:
    """Pure: the recent ping results (metres or None) and the distance they add up to; pings older than
    `stale_s` seconds (obstacle.stale_s, the one setting) no longer count."""

    def __init__(
        self,
        *,
        stale_s: float,
        window: int = 5,
        miss_limit: int = 3,
        stop_distance_m: float = 0.5,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._pings: deque[tuple[float, float | None]] = deque(maxlen=max(window, miss_limit))
        self._window = window
        self._stale_s = stale_s
        self._miss_limit = miss_limit
        self._stop = stop_distance_m
        self._on_change = on_change
        self._unsafe = True  # unknown until the first pings come back
        self.no_echo = 0
        self.pings = 0

    def add(self, metres: float | None, now: float) -> None:
        """Record one ping; calls on_change when the road ahead turns unsafe (too near, or unknown)."""
        self.pings += 1
        if metres is None:
            self.no_echo += 1
        self._pings.append((now, metres))
        d = self.distance(now)
        unsafe = d is None or d < self._stop
        if unsafe and not self._unsafe and self._on_change:
            self._on_change()
        self._unsafe = unsafe

    def distance(self, now: float) -> float | None:
        """Median of the recent good pings, or the farther of the last two when both are inside the stop distance;
        None (unknown) if the last miss_limit failed or all are stale."""
        recent = list(self._pings)
        tail = recent[-self._miss_limit :]
        if len(tail) == self._miss_limit and all(m is None for _, m in tail):
            return None
        fresh = [(t, m) for t, m in recent[-self._window :] if now - t <= self._stale_s]
        good = [m for _, m in fresh if m is not None]
        last_two = [m for _, m in fresh[-2:]]
        if len(last_two) == 2 and all(m is not None and m < self._stop for m in last_two):
            # Quick to stop, slow to go: two pings in a row inside the stop distance are an object (one alone may
            # be a stray echo), while the median of five would wait for a third, one more ping cycle. Going again
            # still needs the median clear.
            return max(m for m in last_two if m is not None)
        return statistics.median(good) if good else None


class GpioDistance:
    """ObstacleSensor: HC-SR04 on a trigger and an echo pin (echo through a 5 V -> 3.3 V divider)."""

    def __init__(
        self,
        trigger_pin: int,
        echo_pin: int,
        *,
        max_distance_m: float = 4.0,
        stop_distance_m: float = 0.5,
        stale_s: float,
        ping_gap_s: float = 0.03,
        on_change: Callable[[], None] | None = None,
        pin_factory: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        factory = pin_factory_for("distance", pin_factory)
        from gpiozero import DistanceSensor
        from gpiozero.exc import DistanceSensorNoEcho, PWMSoftwareFallback

        # We count failed pings ourselves; gpiozero's warnings would only flood the journal.
        warnings.filterwarnings("ignore", category=DistanceSensorNoEcho)
        warnings.filterwarnings("ignore", category=PWMSoftwareFallback)
        self.where = f"distance sensor on GPIO {trigger_pin}/{echo_pin}"
        self._clock = clock
        self._lock = threading.Lock()
        self.stale_s = stale_s  # pings older than this no longer count (obstacle.stale_s)
        self._window = EchoWindow(stale_s=stale_s, stop_distance_m=stop_distance_m, on_change=on_change)
        self._max = max_distance_m
        record = self._record

        class RecordingSensor(DistanceSensor):
            """gpiozero's DistanceSensor, also handing every ping result to the driver."""

            def _read(self) -> float | None:
                try:
                    value = super()._read()
                except AttributeError:
                    # gpiozero's close() releases the trigger before stopping this thread: a last ping dies.
                    return None
                record(value)
                return value

        self._dev = RecordingSensor(
            echo=echo_pin, trigger=trigger_pin, max_distance=max_distance_m, partial=True, pin_factory=factory
        )
        # gpiozero waits a fixed 60 ms after each ping's end (echo or timeout) before the next; its queue thread
        # reads the wait before every ping, so the configured gap applies from the second ping on
        # (hardware.distance_ping_gap_s: the two-ping stop takes two cycles, so this is most of the sensor's
        # share of obstacle -> brake).
        self.ping_gap_s = ping_gap_s
        self._dev._queue.sample_wait = ping_gap_s
        self._closed = False

    def _record(self, fraction: float | None) -> None:
        # gpiozero's queue thread: a fraction of max_distance (1.0 = nothing within range), or None.
        metres = None if fraction is None else fraction * self._max
        with self._lock:
            self._window.add(metres, self._clock())

    def distance_m(self) -> float | None:
        """Metres to the nearest obstacle ahead (max_distance_m when nothing in range), None when unknown."""
        with self._lock:
            return self._window.distance(self._clock())

    def stats(self) -> dict[str, int]:
        """Pings sent and pings without an echo."""
        with self._lock:
            return {"pings": self._window.pings, "no_echo": self._window.no_echo}

    def close(self) -> None:
        """Stop pinging and release the pins; safe to call twice."""
        if not self._closed:
            self._closed = True
            queue = getattr(self._dev, "_queue", None)
            if queue is not None:
                # Stop the ping thread before gpiozero releases the pins under it.
                queue.stop()
            self._dev.close()

    def __enter__(self) -> GpioDistance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GpioSideDistance:
    """SideSensors: two HC-SR04s at the front corners, looking out to the left and the right, each a
    GpioDistance on its own trigger and echo pins (pinging on its own; they look 100 degrees apart, so one
    hears little of the other's burst, and a stray echo alone never stops the robot: see EchoWindow)."""

    def __init__(
        self,
        left_pins: tuple[int, int],
        right_pins: tuple[int, int],
        *,
        max_distance_m: float = 4.0,
        stop_distance_m: float = 0.25,
        stale_s: float,
        ping_gap_s: float = 0.03,
        on_change: Callable[[], None] | None = None,
        pin_factory: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        kw: dict[str, Any] = {
            "max_distance_m": max_distance_m,
            "stop_distance_m": stop_distance_m,
            "stale_s": stale_s,
            "ping_gap_s": ping_gap_s,
            "on_change": on_change,
            "pin_factory": pin_factory,
            "clock": clock,
        }
        self.left = GpioDistance(*left_pins, **kw)
        try:
            self.right = GpioDistance(*right_pins, **kw)
        except BaseException:
            self.left.close()
            raise
        self.where = f"side sensors on GPIO {left_pins[0]}/{left_pins[1]} and {right_pins[0]}/{right_pins[1]}"

    def distances_m(self) -> tuple[float | None, float | None]:
        """Metres to the nearest thing on the left and on the right (max_distance_m: nothing in range; None:
        unknown)."""
        return self.left.distance_m(), self.right.distance_m()

    def stats(self) -> dict[str, int]:
        """Pings sent and pings without an echo, both sensors together."""
        a, b = self.left.stats(), self.right.stats()
        return {k: a[k] + b[k] for k in a}

    def close(self) -> None:
        """Stop both sensors and release their pins; safe to call twice."""
        try:
            self.left.close()
        finally:
            self.right.close()

    def __enter__(self) -> GpioSideDistance:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
