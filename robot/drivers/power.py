"""Panel and battery power: two INA219 monitors over I2C (smbus2), and the battery's state of charge.

State of charge is counted in coulombs (battery current integrated over time) and pulled back to the 3S Li-ion
open-circuit voltage curve whenever the battery has rested (almost no current) long enough for its voltage to
mean something: counting alone drifts, voltage alone lies under load.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from typing import Protocol

from robot.errors import HardwareUnavailable, SensorError
from robot.hardware.interfaces import PowerReading

# INA219 registers (datasheet SBOS448).
REG_CONFIG = 0x00
REG_SHUNT = 0x01
REG_BUS = 0x02
# The power-on default, written anyway in case another program changed it: 32 V bus range, shunt gain /8
# (+-320 mV), 12-bit conversions, shunt and bus continuous.
CONFIG_32V_320MV = 0x399F
SHUNT_LSB_V = 10e-6
BUS_LSB_V = 4e-3

# Open-circuit voltage of one Li-ion (NMC) cell against state of charge, at rest and room temperature.
CELL_OCV = (
    (3.00, 0.00),
    (3.45, 0.05),
    (3.68, 0.10),
    (3.74, 0.20),
    (3.77, 0.30),
    (3.79, 0.40),
    (3.82, 0.50),
    (3.87, 0.60),
    (3.92, 0.70),
    (4.00, 0.80),
    (4.10, 0.90),
    (4.20, 1.00),
)


def soc_from_rest_voltage(volts: float, cells: int = 3) -> float:
    """State of charge (0..1) of a rested Li-ion pack from its voltage, interpolating CELL_OCV."""
    v = volts / cells
    xs = [p[0] for p in CELL_OCV]
    if v <= xs[0]:
        return 0.0
    if v >= xs[-1]:
        return 1.0
    i = bisect.bisect_right(xs, v)
    (v0, s0), (v1, s1) = CELL_OCV[i - 1], CELL_OCV[i]
    return s0 + (s1 - s0) * (v - v0) / (v1 - v0)


class SocEstimator:
    """Coulomb counter corrected by the rest voltage. Pure: the caller passes time in seconds."""

    def __init__(
        self,
        capacity_mah: float,
        *,
        cells: int = 3,
        rest_a: float = 0.05,
        rest_s: float = 300.0,
        max_step_s: float = 60.0,
    ) -> None:
        self.capacity_as = capacity_mah * 3.6  # ampere-seconds
        self.cells = cells
        self.rest_a = rest_a
        self.rest_s = rest_s
        self.max_step_s = max_step_s
        self.soc: float | None = None
        self._last: float | None = None
        self._rest_since: float | None = None

    def update(self, volts: float, amps: float, now: float) -> float:
        """Add one reading (amps positive = charging); returns the state of charge 0..1."""
        if self.soc is None or self._last is None:
            # First reading: the voltage is all we know, loaded or not.
            self.soc = soc_from_rest_voltage(volts, self.cells)
            self._last = now
            self._rest_since = now if abs(amps) < self.rest_a else None
            return self.soc
        # A long gap (paused process, clock jump) would integrate a stale current: cap the step.
        dt = min(max(now - self._last, 0.0), self.max_step_s)
        self._last = now
        self.soc = min(1.0, max(0.0, self.soc + amps * dt / self.capacity_as))
        if abs(amps) < self.rest_a:
            if self._rest_since is None:
                self._rest_since = now
            elif now - self._rest_since >= self.rest_s:
                self.soc = soc_from_rest_voltage(volts, self.cells)
        else:
            self._rest_since = None
        return self.soc


class I2cBus(Protocol):
    """The part of smbus2.SMBus the INA219 needs (tests pass a fake)."""

    def read_word_data(self, i2c_addr: int, register: int) -> int: ...

    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None: ...


def _swap16(v: int) -> int:
    # SMBus words are little-endian; the INA219 sends its registers big-endian.
    return ((v & 0xFF) << 8) | ((v >> 8) & 0xFF)


class Ina219:
    """One INA219: bus voltage and current through its shunt."""

    def __init__(self, bus: I2cBus, addr: int, *, shunt_ohms: float = 0.1, name: str = "INA219") -> None:
        self._bus = bus
        self.addr = addr
        self.shunt_ohms = shunt_ohms
        self.name = name
        self.overflows = 0
        try:
            bus.write_word_data(addr, REG_CONFIG, _swap16(CONFIG_32V_320MV))
        except OSError as err:
            raise SensorError(
                f"{name} INA219 at I2C 0x{addr:02x}: no answer ({err}); check SDA/SCL/VCC and the address "
                "jumpers (i2cdetect -y 1)"
            ) from err

    def read(self) -> tuple[float, float]:
        """(bus volts, amps); amps positive when current flows from VIN+ to VIN-."""
        try:
            bus_raw = _swap16(self._bus.read_word_data(self.addr, REG_BUS))
            shunt_raw = _swap16(self._bus.read_word_data(self.addr, REG_SHUNT))
        except OSError as err:
            raise SensorError(f"{self.name} INA219 at I2C 0x{self.addr:02x}: read failed ({err})") from err
        if bus_raw & 0x1:
            # Math overflow: the shunt voltage is past the +-320 mV range; the current is clipped.
            self.overflows += 1
        volts = (bus_raw >> 3) * BUS_LSB_V
        if shunt_raw & 0x8000:
            shunt_raw -= 0x10000
        amps = shunt_raw * SHUNT_LSB_V / self.shunt_ohms
        return volts, amps


class Ina219Power:
    """PowerMonitor: one INA219 on the panel line, one on the battery line, and the SoC estimate."""

    def __init__(
        self,
        *,
        bus_number: int = 1,
        panel_addr: int = 0x40,
        battery_addr: int = 0x41,
        battery_mah: float = 2200.0,
        battery_nominal_v: float = 11.1,
        panel_shunt_ohms: float = 0.1,
        battery_shunt_ohms: float = 0.1,
        battery_charge_positive: bool = True,
        bus: I2cBus | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._own_bus = bus is None
        if bus is None:
            try:
                from smbus2 import SMBus
            except ImportError as err:  # pragma: no cover - smbus2 is a dependency
                raise HardwareUnavailable(
                    'smbus2 is not installed: pip install smbus2, or set hardware.power = "sim"'
                ) from err
            try:
                bus = SMBus(bus_number)
            except (OSError, FileNotFoundError) as err:
                raise HardwareUnavailable(
                    f"no I2C bus {bus_number} on this machine (/dev/i2c-{bus_number}): "
                    'set hardware.power = "sim" or enable I2C on the Raspberry Pi (raspi-config)'
                ) from err
        self._bus = bus
        self.panel = Ina219(bus, panel_addr, shunt_ohms=panel_shunt_ohms, name="panel")
        self.battery = Ina219(bus, battery_addr, shunt_ohms=battery_shunt_ohms, name="battery")
        self._sign = 1.0 if battery_charge_positive else -1.0
        self.soc = SocEstimator(battery_mah, cells=max(1, round(battery_nominal_v / 3.7)))
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False

    def read(self) -> PowerReading:
        """Read both monitors and update the state of charge."""
        with self._lock:
            pv, pa = self.panel.read()
            bv, ba = self.battery.read()
            ba *= self._sign
            soc = self.soc.update(bv, ba, self._clock())
        # A panel cannot sink current; small negative readings are shunt offset.
        return PowerReading(panel_v=pv, panel_a=max(pa, 0.0), battery_v=bv, battery_a=ba, soc=soc)

    def close(self) -> None:
        """Close the I2C bus if we opened it; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._own_bus:
            close = getattr(self._bus, "close", None)
            if close:
                close()

    def __enter__(self) -> Ina219Power:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
