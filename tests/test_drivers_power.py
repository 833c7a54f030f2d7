"""INA219 panel/battery monitors on a fake I2C bus, and the state-of-charge estimate."""

from __future__ import annotations

import pytest

from robot.drivers.power import (
    REG_BUS,
    REG_CONFIG,
    REG_SHUNT,
    Ina219Power,
    SocEstimator,
    soc_from_rest_voltage,
)
from robot.errors import SensorError


def swap(v: int) -> int:
    return ((v & 0xFF) << 8) | (v >> 8)


class FakeBus:
    """Two INA219s as register files; words go over SMBus little-endian, as smbus2 returns them."""

    def __init__(self, present: tuple[int, ...] = (0x40, 0x41)) -> None:
        self.regs: dict[int, dict[int, int]] = {a: {} for a in present}
        self.closed = False

    def set(self, addr: int, volts: float, shunt_mv: float, overflow: bool = False) -> None:
        self.regs[addr][REG_BUS] = (round(volts / 0.004) << 3) | 0x2 | int(overflow)
        self.regs[addr][REG_SHUNT] = round(shunt_mv * 100) & 0xFFFF

    def read_word_data(self, addr: int, reg: int) -> int:
        if addr not in self.regs:
            raise OSError(121, "Remote I/O error")
        return swap(self.regs[addr].get(reg, 0))

    def write_word_data(self, addr: int, reg: int, value: int) -> None:
        if addr not in self.regs:
            raise OSError(121, "Remote I/O error")
        self.regs[addr][reg] = swap(value)

    def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_reads_panel_and_battery_in_volts_and_amps() -> None:
    bus = FakeBus()
    bus.set(0x40, 18.1, 140.0)  # 140 mV over 0.1 ohm = 1.4 A
    bus.set(0x41, 11.4, -25.0)  # discharging 0.25 A
    with Ina219Power(bus=bus, clock=Clock()) as power:
        r = power.read()
    assert bus.regs[0x40][REG_CONFIG] == 0x399F
    assert r.panel_v == pytest.approx(18.1, abs=0.004) and r.panel_a == pytest.approx(1.4)
    assert r.battery_v == pytest.approx(11.4, abs=0.004) and r.battery_a == pytest.approx(-0.25)
    assert r.panel_w == pytest.approx(25.34, abs=0.01)
    assert 0.0 < r.soc < 1.0


def test_missing_monitor_names_its_address() -> None:
    with pytest.raises(SensorError, match=r"battery INA219 at I2C 0x41.*i2cdetect"):
        Ina219Power(bus=FakeBus(present=(0x40,)))


def test_overflow_is_counted_and_reversed_battery_wiring_can_be_flipped() -> None:
    bus = FakeBus()
    bus.set(0x40, 17.0, 320.0, overflow=True)
    bus.set(0x41, 12.0, 30.0)
    power = Ina219Power(bus=bus, battery_charge_positive=False, clock=Clock())
    r = power.read()
    assert power.panel.overflows == 1
    assert r.battery_a == pytest.approx(-0.3)
    power.close()
    power.close()
    assert not bus.closed  # a bus passed in belongs to the caller


def test_rest_voltage_curve_of_a_3s_pack() -> None:
    assert soc_from_rest_voltage(12.6) == 1.0
    assert soc_from_rest_voltage(9.0) == 0.0
    assert soc_from_rest_voltage(3 * 3.82) == pytest.approx(0.5)
    assert soc_from_rest_voltage(11.1) < soc_from_rest_voltage(11.4) < soc_from_rest_voltage(12.0)


def test_coulomb_counting_then_correction_at_rest() -> None:
    est = SocEstimator(2200, rest_s=300)
    assert est.update(3 * 3.82, 0.0, 0.0) == pytest.approx(0.5)
    # One hour at -1.1 A takes half of 2.2 Ah, in 60 s steps; the loaded voltage is ignored.
    t = 0.0
    for _ in range(60):
        t += 60
        soc = est.update(10.5, -1.1, t)
    assert soc == pytest.approx(0.0, abs=0.01)
    # Resting now: after rest_s the voltage (which says 50 %) wins over the count.
    est.update(3 * 3.82, 0.0, t + 1)
    assert est.soc == pytest.approx(0.0, abs=0.01)
    est.update(3 * 3.82, 0.0, t + 400)
    assert est.soc == pytest.approx(0.5)


def test_a_long_gap_does_not_integrate_a_stale_current() -> None:
    est = SocEstimator(2200, max_step_s=60)
    est.update(3 * 3.92, 0.0, 0.0)
    est.update(3 * 3.92, -2.0, 10_000.0)
    assert est.soc == pytest.approx(0.7 - 2.0 * 60 / (2200 * 3.6), abs=1e-6)
