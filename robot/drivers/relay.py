"""Power-source relay: a gpiozero OutputDevice; energised = panel, released = battery.

Released means battery so that a dead Pi, a reboot or a closed driver leaves the loads on the battery, which
is there at night too. The hysteresis that decides when to switch lives in the core; this only applies it.
"""

from __future__ import annotations

from typing import Any

from robot.core.types import PowerSource
from robot.drivers._gpio import pin_factory_for


class GpioRelay:
    """PowerRelay on one GPIO pin."""

    def __init__(self, pin: int, *, active_high: bool = True, pin_factory: Any = None) -> None:
        factory = pin_factory_for("relay", pin_factory)
        from gpiozero import OutputDevice

        self.where = f"power relay on GPIO {pin}"
        self._dev = OutputDevice(pin, active_high=active_high, initial_value=False, pin_factory=factory)
        self._source = PowerSource.BATTERY
        self.switches = 0
        self._closed = False

    def select(self, source: PowerSource) -> None:
        """Connect the loads to `source`; a no-op when already there (no needless relay clicks)."""
        source = PowerSource(source)
        if source == self._source:
            return
        if source == PowerSource.PANEL:
            self._dev.on()
        else:
            self._dev.off()
        self._source = source
        self.switches += 1

    @property
    def source(self) -> PowerSource:
        """The source the loads are on now."""
        return self._source

    def close(self) -> None:
        """Release the relay (loads back on the battery) and the pin; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._dev.off()
        self._source = PowerSource.BATTERY
        self._dev.close()

    def __enter__(self) -> GpioRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
