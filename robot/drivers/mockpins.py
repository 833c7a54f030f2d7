"""Fakes of wired parts on gpiozero's MockFactory, shipped like gpiozero's own MockTriggerPin: an HX711."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def attach_mock_hx711(
    factory: Any,
    dout_pin: int,
    sck_pin: int,
    next_raw: Callable[[], int | None],
    *,
    sps: float | None = None,
    clock_ns: Callable[[], int] = time.perf_counter_ns,
) -> None:
    """Make `sck_pin` of a MockFactory clock out HX711 words on `dout_pin`.

    `next_raw()` gives each conversion's signed 24-bit value, or None for "never ready" (a disconnected amp).
    Each word is ready at once, or with `sps` as on the chip: it converts without pause at that rate (10 with
    its RATE pin low, as on most boards; 80 high), DOUT high until the next conversion ends (by `clock_ns`).
    """
    from gpiozero.pins.mock import MockPin

    period_ns = None if sps is None else round(1e9 / sps)

    class Hx711DoutPin(MockPin):
        """DOUT of a mock HX711: high while the chip converts, whatever word is loaded."""

        ready_at: int | None = None

        def _get_state(self) -> Any:
            if self.ready_at is not None and clock_ns() < self.ready_at:
                return True
            return super()._get_state()

    dout = factory.pin(dout_pin, pin_class=Hx711DoutPin)

    class Hx711SckPin(MockPin):
        """SCK of a mock HX711: each rising edge shifts the next bit onto DOUT."""

        def __init__(self, factory: Any, info: Any) -> None:
            super().__init__(factory, info)
            self.word: int | None = None
            self.pulses = 0

        def load(self) -> None:
            raw = next_raw()
            self.pulses = 0
            if period_ns is not None:
                # The conversion after the last one read, or the newest if the reader came later than that.
                now = clock_ns()
                last = dout.ready_at
                ready = now + period_ns if last is None else last + period_ns
                if ready < now:
                    ready += (now - ready) // period_ns * period_ns
                dout.ready_at = ready
            if dout.function != "input":
                return
            if raw is None:
                self.word = None
                dout.drive_high()
            else:
                self.word = raw & 0xFFFFFF
                dout.drive_low()

        def _set_state(self, value: Any) -> None:
            super()._set_state(value)
            if not value or self.word is None:
                return
            self.pulses += 1
            if self.pulses <= 24:
                bit = (self.word >> (24 - self.pulses)) & 1
                dout.drive_high() if bit else dout.drive_low()
            elif self.pulses == 25:
                # Gain pulse: DOUT goes high until the next conversion is ready (at once, here).
                dout.drive_high()
                self.load()

    sck = factory.pin(sck_pin, pin_class=Hx711SckPin)
    original = dout._set_pull

    def set_pull(value: Any) -> None:
        # The driver's pull-up on DOUT drives the mock high: the first word becomes ready after it.
        original(value)
        sck.load()

    dout._set_pull = set_pull
