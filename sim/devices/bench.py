"""The wired parts on a bench: gpiozero MockFactory pins and a fake INA219 I2C bus, driven from the world.

The real Pi drivers (GpioRain, GpioDistance, Hx711Scale, Ina219Power, GpioRelay) open these pins and this bus
exactly as they open the robot's, so the simulator exercises their debouncing, echo timing, bit-banging and
register decoding too. The bench plays the other side of each wire: the rain board's comparator output, the
HC-SR04's echo pulse, the HX711's serial words, the INA219's registers, and the relay coil read back into the
world. update() copies the world onto the wires once (tests and virtual-clock loops call it); start() runs it
in a thread at `rate_hz` for real-time runs.
"""

from __future__ import annotations

import contextlib
import logging
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from robot.config import Settings
from robot.core.types import PowerSource
from robot.drivers.power import BUS_LSB_V, REG_BUS, REG_CONFIG, REG_SHUNT, SHUNT_LSB_V
from robot.drivers.scale import Calibration, save_calibration
from robot.errors import ScaleError
from robot.hardware.factory import BENCH_PARTS

log = logging.getLogger(__name__)

SPEED_OF_SOUND_M_S = 343.26  # what gpiozero's DistanceSensor assumes
ECHO_DELAY_S = 0.0005  # trigger to echo rise; the HC-SR04 sends its 8-cycle burst first
BENCH_OFFSET_COUNTS = 84_000  # the empty tray's raw HX711 reading on this bench
BENCH_COUNTS_PER_KG = 105_000.0  # a 5 kg bar cell at gain 128 gives about this
BENCH_NOISE_COUNTS = 20.0  # a live HX711 always shows noise in its low bits (the driver checks)
SHUNT_RAW_LIMIT = 32_000  # +-320 mV at PGA /8, in 10 uV steps
BUS_RAW_LIMIT = 0x1FFF  # 13 bits of 4 mV
BUS_CNVR = 0x2  # conversion ready
BUS_OVF = 0x1  # math overflow: the shunt voltage is out of range
I2C_NO_ACK = 121  # errno EREMOTEIO, what smbus2 raises for an address nobody answers
TRIM_STATES = 256  # MockPin keeps every edge; a long run would grow the lists without end


def _pin_classes() -> tuple[type, type, type]:
    """MockPin subclasses for the bench (gpiozero is imported lazily, like everywhere else)."""
    from gpiozero.pins.mock import MockPin, PinState

    class SensorOutputPin(MockPin):
        """An input wired to a sensor board's output: the board's level beats the Pi's pull resistor."""

        def __init__(self, factory: Any, info: Any) -> None:
            super().__init__(factory, info)
            self.level: bool | None = None

        def _set_pull(self, value: Any) -> None:
            super()._set_pull(value)
            self.apply()

        def apply(self) -> None:
            """Drive the board's level onto the pin (only an input can be driven)."""
            if self.level is None or self._function != "input":
                return
            self.drive_high() if self.level else self.drive_low()

    class EchoPin(MockPin):
        """HC-SR04 echo: a pulse whose recorded length is exactly the flight time, whatever sleep() does."""

        def __init__(self, factory: Any, info: Any) -> None:
            super().__init__(factory, info)
            self._exact: float | None = None

        _state: Any  # MockPin's own, set by its constructor
        _last_change: float

        def _change_state(self, value: Any) -> bool:
            # Same as MockPin's, but the falling edge may carry an exact timestamp.
            exact, self._exact = self._exact, None
            if self._state == value:
                return False
            t = time.monotonic() if exact is None else exact
            self._state = value
            self.states.append(PinState(t - self._last_change, value))
            self._last_change = t
            return True

        def pulse(self, seconds: float) -> None:
            """Go high, wait, go low with the fall stamped `seconds` after the rise."""
            if self._function != "input":
                return
            self.drive_high()
            rise = self._last_change
            time.sleep(seconds)
            self._exact = rise + seconds
            self.drive_low()

    class TriggerPin(MockPin):
        """HC-SR04 trigger: each rising edge sends one echo of the current `echo_s` (None: no echo at all)."""

        def __init__(self, factory: Any, info: Any, echo_pin: Any = None) -> None:
            super().__init__(factory, info)
            self.echo_pin = echo_pin
            self.echo_s: float | None = None
            self._thread: threading.Thread | None = None

        def _set_state(self, value: Any) -> None:
            super()._set_state(value)
            if not value:
                return
            if self._thread is not None:
                self._thread.join()
            echo_s = self.echo_s
            if echo_s is None or self.echo_pin is None:
                return  # the driver times out and counts a ping without echo
            self._thread = threading.Thread(target=self._echo, args=(echo_s,), name="bench-echo", daemon=True)
            self._thread.start()

        def _echo(self, echo_s: float) -> None:
            time.sleep(ECHO_DELAY_S)
            self.echo_pin.pulse(echo_s)

    return SensorOutputPin, EchoPin, TriggerPin


class FakeIna219Bus:
    """An smbus2-like I2C bus with INA219 register files at the given addresses; others do not answer."""

    def __init__(self, addresses: tuple[int, ...]) -> None:
        self._lock = threading.Lock()
        self.regs: dict[int, dict[int, int]] = {
            a: {REG_CONFIG: 0x399F, REG_BUS: 0, REG_SHUNT: 0} for a in addresses
        }
        self.reads = 0
        self.closed = False

    @staticmethod
    def _swap16(v: int) -> int:
        # SMBus words travel little-endian; the INA219's registers are big-endian.
        return ((v & 0xFF) << 8) | ((v >> 8) & 0xFF)

    def set_reading(self, addr: int, volts: float, amps: float, shunt_ohms: float) -> None:
        """Load one monitor's registers as its ADC would convert `volts` on the bus and `amps` in its shunt."""
        shunt = round(amps * shunt_ohms / SHUNT_LSB_V)
        overflow = abs(shunt) > SHUNT_RAW_LIMIT
        # Past +-320 mV the chip clips the shunt reading and raises its overflow flag.
        shunt = max(-SHUNT_RAW_LIMIT, min(SHUNT_RAW_LIMIT, shunt))
        bus = max(0, min(BUS_RAW_LIMIT, round(volts / BUS_LSB_V)))
        with self._lock:
            regs = self.regs[addr]
            regs[REG_BUS] = (bus << 3) | BUS_CNVR | (BUS_OVF if overflow else 0)
            regs[REG_SHUNT] = shunt & 0xFFFF

    def read_word_data(self, i2c_addr: int, register: int) -> int:
        """One register as smbus2 returns it (byte-swapped); OSError 121 for a missing device."""
        with self._lock:
            regs = self.regs.get(i2c_addr)
            if regs is None or self.closed:
                raise OSError(I2C_NO_ACK, "Remote I/O error")
            self.reads += 1
            return self._swap16(regs.get(register, 0))

    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None:
        """Store a register write (the driver writes the configuration)."""
        with self._lock:
            regs = self.regs.get(i2c_addr)
            if regs is None or self.closed:
                raise OSError(I2C_NO_ACK, "Remote I/O error")
            regs[register] = self._swap16(value)

    def close(self) -> None:
        """Like SMBus.close(): later transfers fail."""
        self.closed = True

    def __enter__(self) -> FakeIna219Bus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wants_bench(settings: Settings) -> bool:
    """True when settings.sim.drivers is "real" and at least one wired part is simulated."""
    hw = settings.hardware
    return settings.sim.drivers == "real" and any(getattr(hw, p) == "sim" for p in BENCH_PARTS)


class PinBench:
    """Mock GPIO pins and a fake I2C bus wired as on the robot, their far ends driven from a simulated world.

    `world` needs raining(), distance_m(), tray_kg(), power_reading() and set_power_source() (sim.world.World).
    The HX711 calibration matching the bench is written into `state_dir` (a temporary directory by default,
    removed on close); pass `bench.state_dir` to Hx711Scale. With `clock` (a virtual clock), the drivers the
    factory builds on this bench debounce, age readings and count charge on it; the HC-SR04's pings still
    take real time (gpiozero's thread), so a run much faster than real time sees the distance as stale.
    """

    def __init__(
        self,
        world: Any,
        settings: Settings,
        *,
        state_dir: str | Path | None = None,
        rate_hz: float = 50.0,
        seed: int = 1,
        clock: Callable[[], float] | None = None,
    ) -> None:
        from gpiozero.pins.mock import MockFactory

        from robot.drivers.mockpins import attach_mock_hx711

        if not 1.0 <= rate_hz <= 1000.0:
            raise ValueError(f"bench rate_hz = {rate_hz}: must be between 1 and 1000")
        self.world = world
        # The drivers built on this bench keep time by it (None: their default, time.monotonic).
        self.clock = clock
        hw = settings.hardware
        self._hw = hw
        self.period_s = 1.0 / rate_hz
        self._own_dir = state_dir is None
        self.state_dir = (
            Path(tempfile.mkdtemp(prefix="ramudroid-bench-")) if state_dir is None else Path(state_dir)
        )
        self.calibration = Calibration(float(BENCH_OFFSET_COUNTS), BENCH_COUNTS_PER_KG)
        try:
            save_calibration(self.state_dir, self.calibration)
        except OSError as err:
            self._remove_own_dir()
            raise ScaleError(
                f"pin bench: cannot write the bench scale calibration into {self.state_dir} ({err.strerror}); "
                "pass a writable state_dir"
            ) from err
        self.pin_factory = MockFactory()
        sensor_pin, echo_pin, trigger_pin = _pin_classes()
        self._rain_pin = self.pin_factory.pin(hw.rain_pin, pin_class=sensor_pin)
        echo = self.pin_factory.pin(hw.distance_echo_pin, pin_class=echo_pin)
        self._trigger = self.pin_factory.pin(hw.distance_trigger_pin, pin_class=trigger_pin, echo_pin=echo)
        self._relay_pin = self.pin_factory.pin(hw.relay_pin)
        self._relay_driven = False
        self._rng = random.Random(seed)
        self._tray_kg = 0.0
        attach_mock_hx711(self.pin_factory, hw.scale_dout_pin, hw.scale_sck_pin, self._next_hx711_word)
        self.bus = FakeIna219Bus((hw.power_panel_addr, hw.power_battery_addr))
        self.updates = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.update()

    # ---- the far ends of the wires
    def _next_hx711_word(self) -> int:
        # Called by the HX711 mock from the scale driver's thread at each conversion.
        raw = (
            self.calibration.offset
            + self._tray_kg * BENCH_COUNTS_PER_KG
            + self._rng.gauss(0.0, BENCH_NOISE_COUNTS)
        )
        return max(-0x800000, min(0x7FFFFF, round(raw)))

    def update(self) -> None:
        """Copy the world onto the wires once, and the relay coil back into the world."""
        hw, w = self._hw, self.world
        wet = bool(w.raining())
        # Most LM393 boards pull DO low when wet (hardware.rain_active_low).
        self._rain_pin.level = (not wet) if hw.rain_active_low else wet
        self._rain_pin.apply()
        d = w.distance_m()
        self._trigger.echo_s = None if d is None else 2.0 * max(0.0, float(d)) / SPEED_OF_SOUND_M_S
        self._tray_kg = float(w.tray_kg())
        r = w.power_reading()
        self.bus.set_reading(hw.power_panel_addr, r.panel_v, r.panel_a, hw.power_panel_shunt_ohms)
        # The battery monitor may be wired either way round; the driver flips it back by config.
        battery_a = r.battery_a if hw.power_battery_charge_positive else -r.battery_a
        self.bus.set_reading(hw.power_battery_addr, r.battery_v, battery_a, hw.power_battery_shunt_ohms)
        source = self.relay_source()
        if source is not None and source != w.power_source:
            w.set_power_source(source)
        self.updates += 1
        if self.updates % 64 == 0:
            self._trim_histories()

    def relay_source(self) -> PowerSource | None:
        """Where the relay pin puts the loads (energised = panel); None until a driver has driven the pin."""
        pin = self._relay_pin
        if pin.function != "output":
            # A released pin (driver closed) leaves the coil off: battery. Never driven: a real relay is in
            # use instead, and the world follows that one.
            return PowerSource.BATTERY if self._relay_driven else None
        self._relay_driven = True
        energised = bool(pin.state) == self._hw.relay_active_high
        return PowerSource.PANEL if energised else PowerSource.BATTERY

    def _trim_histories(self) -> None:
        for pin in list(self.pin_factory.pins.values()):
            if len(pin.states) > TRIM_STATES:
                pin.clear_states()

    # ---- real-time running
    def start(self) -> None:
        """Run update() every period in a daemon thread until close()."""
        if self._closed:
            raise RuntimeError("pin bench: closed; build a new one")
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="pin-bench", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            try:
                self.update()
            except Exception:  # a world read-out failing must not freeze every wire for good
                self.errors += 1
                if self.errors == 1 or self.errors % 1000 == 0:
                    log.exception("pin bench: update failed (%d times)", self.errors)
            next_t += self.period_s
            delay = next_t - time.monotonic()
            if delay < 0.0:
                next_t = time.monotonic()  # fell behind: do not try to catch up in a burst
                delay = 0.0
            self._stop.wait(delay)

    def close(self) -> None:
        """Stop the thread and remove the temporary state directory; close the drivers first. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self.bus.close()
        self._remove_own_dir()

    def _remove_own_dir(self) -> None:
        if self._own_dir:
            with contextlib.suppress(OSError):
                shutil.rmtree(self.state_dir)

    def __enter__(self) -> PinBench:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
