"""The status LCD: the Pi driver (RPLCD) against a fake PCF8574 + HD44780 at the byte level, its simulated
twin, what it shows, and the thread that refreshes it."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from robot.alerts import AlertOutbox
from robot.config import Settings, from_dict
from robot.core.types import ALL_BRAKED, Alert, Severity
from robot.drivers.lcd import I2cLcd, fit_lines
from robot.drivers.sim import SimLcd
from robot.errors import HardwareError
from robot.hardware.factory import build_part
from robot.lcd_view import LcdView, lcd_lines
from robot.telemetry import Telemetry, TelemetryBus

pytest.importorskip("RPLCD")


class Hd44780Backpack:
    """A PCF8574 at `address` wired to an HD44780 the usual way (P0 RS, P1 RW, P2 E, P3 backlight, P4-P7 D4-D7).

    Every byte written to the expander sets those wires; the controller latches D7-D4 when E falls, as the
    datasheet says. It powers up in 8-bit mode (D3-D0 are not wired: they read 0) until a function set with
    DL = 0; in 4-bit mode two strobes make one byte. `state` picks how the last run left it."""

    def __init__(self, address: int = 0x27, state: str = "power-on") -> None:
        self.address = address
        self.port = 0
        self.eight_bit = state == "power-on"
        self.pending: int | None = 0x8 if state == "half-byte" else None
        self.ddram = [0x20] * 0x80
        self.ac = 0
        self.to_cgram = False
        self.two_lines = False
        self.display_on = False
        self.writes = 0
        self.connected = True

    def write_byte(self, addr: int, value: int) -> None:
        if not self.connected or addr != self.address:
            raise OSError(121, "Remote I/O error")
        self.writes += 1
        falling = bool(self.port & 0x04) and not value & 0x04
        self.port = value
        if falling:
            assert not value & 0x02, "RW must stay low: the HD44780 would drive the bus"
            self._strobe(value >> 4, rs=bool(value & 0x01))

    def power_cycle(self) -> None:
        self.__init__(self.address)  # type: ignore[misc]

    @property
    def backlight(self) -> bool:
        return bool(self.port & 0x08)

    def _strobe(self, nibble: int, rs: bool) -> None:
        if self.eight_bit:
            self._execute(nibble << 4, rs)
        elif self.pending is None:
            self.pending = nibble
        else:
            byte, self.pending = (self.pending << 4) | nibble, None
            self._execute(byte, rs)

    def _execute(self, byte: int, rs: bool) -> None:
        if rs:
            if not self.to_cgram:
                self.ddram[self.ac] = byte
                self.ac = (self.ac + 1) & 0x7F
        elif byte & 0x80:
            self.ac, self.to_cgram = byte & 0x7F, False
        elif byte & 0x40:
            self.to_cgram = True
        elif byte & 0x20:
            self.eight_bit, self.two_lines = bool(byte & 0x10), bool(byte & 0x08)
        elif byte & 0x08:
            self.display_on = bool(byte & 0x04)
        elif byte & 0x04:
            assert byte & 0x02, "entry mode must increment"
        elif byte & 0x02:
            self.ac = 0
        elif byte & 0x01:
            self.ddram, self.ac = [0x20] * 0x80, 0

    def text(self) -> tuple[str, str]:
        """What a person reads on the 16x2 glass (row 1 is DDRAM 0x00-0x0F, row 2 is 0x40-0x4F)."""
        return (
            "".join(map(chr, self.ddram[0x00:0x10])),
            "".join(map(chr, self.ddram[0x40:0x50])),
        )

    @property
    def readable(self) -> bool:
        return self.display_on and self.two_lines and self.backlight


LINES = ("CLEANING   B 82%", "tray 1.24kg  62%")


@pytest.mark.parametrize("state", ["power-on", "4-bit", "half-byte"])
def test_driver_puts_both_lines_on_the_glass_from_any_state_the_last_run_left(state: str) -> None:
    glass = Hd44780Backpack(state=state)
    with I2cLcd(bus=glass, address=0x27) as lcd:
        lcd.show(LINES)
        assert glass.text() == LINES
        assert glass.readable and not glass.eight_bit


def test_driver_writes_only_the_rows_that_changed() -> None:
    glass = Hd44780Backpack()
    lcd = I2cLcd(bus=glass)
    lcd.show(LINES)
    before = glass.writes
    lcd.show(LINES)
    assert glass.writes == before  # nothing changed, nothing on the bus
    lcd.show((LINES[0], "!stopped: obstac"))
    per_row = glass.writes - before
    assert glass.text() == (LINES[0], "!stopped: obstac")
    assert 0 < per_row <= 17 * 8  # one row: 16 characters and its address, 8 bus writes each (4 a nibble)


def test_driver_fits_text_to_what_the_rom_can_show() -> None:
    glass = Hd44780Backpack()
    with I2cLcd(bus=glass) as lcd:
        lcd.show(["Café ~ 100% \\ ok and far too long", "x"])
    assert glass.text() == ("Caf? ? 100% ? ok", "x" + " " * 15)
    assert fit_lines(["a"], 4, 3) == ("a   ", "    ", "    ")


def test_missing_backpack_is_one_clear_error() -> None:
    with pytest.raises(HardwareError, match=r"LCD at 0x3f on I2C bus 1: no answer .*hardware\.lcd_addr"):
        I2cLcd(bus=Hd44780Backpack(address=0x27), address=0x3F)


def test_display_that_stops_answering_raises_then_comes_back_after_a_power_cycle() -> None:
    glass = Hd44780Backpack()
    lcd = I2cLcd(bus=glass)
    lcd.show(LINES)
    glass.connected = False
    with pytest.raises(HardwareError, match="no answer"):
        lcd.show(("FAULT      B 80%", LINES[1]))
    glass.power_cycle()  # it lost its 5 V too: 8-bit mode, blank
    lcd.show(("FAULT      B 80%", LINES[1]))
    assert glass.text() == ("FAULT      B 80%", LINES[1]) and glass.readable
    lcd.close()
    lcd.close()
    with pytest.raises(HardwareError, match="after close"):
        lcd.show(LINES)


def test_factory_builds_the_configured_lcd() -> None:
    assert build_part("lcd", from_dict({"hardware": {"lcd": "none"}})) is None
    twin = build_part("lcd", Settings())
    assert isinstance(twin, SimLcd) and twin.size == (16, 2)
    twin.show(LINES)
    twin.show(LINES)
    assert twin.lines == LINES and twin.updates == 1


def telemetry(at: float = 100.0, **over: object) -> Telemetry:
    base: dict = {
        "at": at, "wall": 0.0, "state": "cleaning", "mode": "auto", "reason": "on route", "goal": "route",
        "power_source": "panel", "motors": ALL_BRAKED, "tray_kg": 1.24, "battery_soc": 0.82,
    }  # fmt: skip
    base.update(over)
    return Telemetry(**base)


def test_lines_show_state_battery_and_tray() -> None:
    assert lcd_lines(None, None, tray_capacity_kg=2.0, tick=0) == ("RAMUDROID", "starting...")
    assert lcd_lines(telemetry(), None, tray_capacity_kg=2.0, tick=0) == LINES
    t = telemetry(state="sheltering", battery_soc=1.0, tray_kg=None)
    assert lcd_lines(t, None, tray_capacity_kg=2.0, tick=0) == ("TO SHELTER B100%", "tray --")
    t = telemetry(state="estop", battery_soc=None, tray_kg=1.9)
    assert lcd_lines(t, None, tray_capacity_kg=2.0, tick=0) == ("E-STOP     B --%", "tray 1.90kg  95%")
    for state in ("cleaning", "obstacle_stop", "critical_battery", "outside_fence", "route_done", "stuck"):
        top, _ = lcd_lines(telemetry(state=state), None, tray_capacity_kg=2.0, tick=0)
        assert len(top) == 16 and top.endswith("B 82%") and top[10] == " "


def test_the_last_alert_takes_turns_with_the_tray_line_16_characters_a_page() -> None:
    alert = Alert("obstacle", Severity.INFO, "stopped: obstacle at 0.32 m", at=95.0)
    pages = [lcd_lines(telemetry(), alert, tray_capacity_kg=2.0, tick=i)[1] for i in range(8)]
    assert pages == [LINES[1], LINES[1], "!stopped: obstac", "le at 0.32 m"] * 2
    old = Alert("obstacle", Severity.INFO, "stopped: obstacle at 0.32 m", at=95.0 - 601.0)
    assert {lcd_lines(telemetry(), old, tray_capacity_kg=2.0, tick=i)[1] for i in range(4)} == {LINES[1]}
    long = Alert("fault", Severity.CRITICAL, "fault: " + "abcdefghijklmnopqrstuvwxyz" * 4, at=99.0)
    assert (
        len({lcd_lines(telemetry(), long, tray_capacity_kg=2.0, tick=i)[1] for i in range(20)}) == 1 + 3
    )  # tray, 3 pages


def test_view_refreshes_in_its_own_thread_and_leaves_a_last_word() -> None:
    bus, outbox, lcd = TelemetryBus(), AlertOutbox(), SimLcd()
    bus.publish(telemetry())
    view = LcdView(lcd, bus, outbox, tray_capacity_kg=2.0, period_s=0.01)
    deadline = time.monotonic() + 5
    while lcd.lines != LINES:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    view.close()
    view.close()
    assert lcd.lines == ("STOPPED         ", "motors braked   ")


class BrokenLcd(SimLcd):
    def show(self, lines: object) -> None:
        raise HardwareError("LCD at 0x27 on I2C bus 1: no answer")


def test_a_failing_display_is_counted_and_said_once(caplog: pytest.LogCaptureFixture) -> None:
    view = LcdView(BrokenLcd(), TelemetryBus(), AlertOutbox(), tray_capacity_kg=2.0, start=False)
    with caplog.at_level(logging.WARNING, logger="robot.lcd_view"):
        for _ in range(5):
            view.refresh()
    assert view.errors == 5
    assert caplog.text.count("no answer") == 1 and "carries on without its display" in caplog.text


def test_the_robot_shows_its_state_on_the_simulated_lcd_and_stopped_when_closed(tmp_path: Path) -> None:
    from ramudroid.app import Robot

    settings = from_dict({"robot": {"state_dir": str(tmp_path)}})
    clock = time.monotonic
    robot = Robot(settings, clock=clock)
    try:
        assert robot.lcd_view is not None and isinstance(robot.lcd_view.lcd, SimLcd)
        robot.supervisor.step(clock())
        top, bottom = robot.lcd_view.refresh()
        assert top[:10].strip() in {"FAULT", "GPS WAIT", "CLEANING"} and top.endswith("%")
        assert bottom.startswith("tray") or bottom.startswith("!")
    finally:
        robot.close()
    assert robot.lcd_view.lcd.lines[0].strip() == "STOPPED"


def test_a_robot_without_its_lcd_still_starts(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A Pi LCD that is not there (no RPLCD, no /dev/i2c-7 here) is a warning, not a robot that will not run."""
    from ramudroid.app import Robot

    settings = from_dict({"robot": {"state_dir": str(tmp_path)}, "hardware": {"lcd": "pi", "lcd_i2c_bus": 7}})
    with (
        caplog.at_level(logging.WARNING, logger="ramudroid.app"),
        Robot(settings, clock=time.monotonic) as robot,
    ):
        assert robot.lcd_view is None
    assert "running without the LCD" in caplog.text
