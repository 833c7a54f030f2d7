"""The robot's 16x2 HD44780 character LCD on a PCF8574 I2C backpack, driven through RPLCD.

RPLCD (maintained, pure Python) knows the HD44780's 4-bit start-up dance and the backpack's pin map (P0 RS,
P1 RW, P2 E, P3 backlight, P4-P7 D4-D7); it is imported only when a real display is asked for. The bus is
smbus2's, or one passed in (tests hand in a fake PCF8574).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

from robot.errors import HardwareError, HardwareUnavailable

# The HD44780's A00 ROM (the common one) has ASCII from 0x20 to 0x7D except 0x5C (a yen sign) and 0x7E/0x7F
# (arrows): anything else is shown as '?', so a message never turns into ROM katakana.
_SHOWN = frozenset(chr(c) for c in range(0x20, 0x7E)) - {"\\"}


def fit_lines(lines: Sequence[str], cols: int, rows: int) -> tuple[str, ...]:
    """Exactly `rows` lines of exactly `cols` characters the display can show."""
    out = []
    for i in range(rows):
        text = lines[i] if i < len(lines) else ""
        text = "".join(c if c in _SHOWN else "?" for c in text[:cols])
        out.append(text.ljust(cols))
    return tuple(out)


class I2cLcd:
    """A 16x2 HD44780 LCD behind a PCF8574 backpack at `address` on I2C bus `bus_number` (StatusLcd).

    Writes only the rows that changed. Raises HardwareError (with the fix) when the backpack does not answer."""

    def __init__(
        self, *, bus_number: int = 1, address: int = 0x27, cols: int = 16, rows: int = 2, bus: Any = None
    ) -> None:
        self.size = (cols, rows)
        self._where = f"LCD at 0x{address:02x} on I2C bus {bus_number}"
        try:
            from RPLCD.i2c import CharLCD
        except ImportError as err:
            raise HardwareUnavailable(
                f"{self._where}: RPLCD is not installed; pip install 'ramudroid[pi]' or set hardware.lcd = 'sim'"
            ) from err
        self._own_bus = bus is None
        if bus is None:
            try:
                from smbus2 import SMBus

                bus = SMBus(bus_number)
            except OSError as err:
                raise HardwareError(
                    f"{self._where}: cannot open /dev/i2c-{bus_number} ({err.strerror or err}); enable I2C "
                    "(sudo raspi-config nonint do_i2c 0) and add this user to the i2c group"
                ) from err
        self._bus = bus

        class _OnOurBus(CharLCD):
            def _init_connection(self) -> None:  # RPLCD opens SMBus(port) here; ours is open already
                self.bus = bus
                time.sleep(0.05)  # what RPLCD waits for a PCF8574 after power-up

        # Each (re)start runs the HD44780's initialisation, which brings it into 4-bit mode from any state.
        self._start = lambda: _OnOurBus(
            "PCF8574", address, port=bus_number, cols=cols, rows=rows, charmap="A00", auto_linebreaks=False
        )
        self._closed = False
        try:
            self._lcd = self._start()
        except OSError as err:
            self.close()
            raise HardwareError(
                f"{self._where}: no answer ({err.strerror or err}); check SDA/SCL (GPIO 2/3), the 5 V supply and "
                "hardware.lcd_addr (0x27, or 0x3F on PCF8574A backpacks: i2cdetect -y 1 shows it)"
            ) from err
        self._shown: tuple[str, ...] | None = fit_lines((), cols, rows)

    def show(self, lines: Sequence[str]) -> None:
        """Show the lines; only rows that changed are written (about 1 ms per character on the bus)."""
        if self._closed:
            raise HardwareError(f"{self._where}: used after close()")
        cols, rows = self.size
        want = fit_lines(lines, cols, rows)
        try:
            if self._shown is None:  # it stopped answering, maybe lost power too: start it afresh
                self._lcd = self._start()
                self._shown = fit_lines((), cols, rows)
            for row, text in enumerate(want):
                if text != self._shown[row]:
                    self._lcd.cursor_pos = (row, 0)
                    self._lcd.write_string(text)
                    self._shown = (*self._shown[:row], text, *self._shown[row + 1 :])
        except OSError as err:
            self._shown = None
            raise HardwareError(
                f"{self._where}: no answer ({err.strerror or err}); check the wiring"
            ) from err

    def _close_bus(self) -> None:
        if self._own_bus:
            with contextlib.suppress(OSError):
                self._bus.close()

    def close(self) -> None:
        """Release the bus (the display keeps its last text, backlight on); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._close_bus()

    def __enter__(self) -> I2cLcd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
