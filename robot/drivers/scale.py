"""Tray scale: HX711 load-cell amplifier on two GPIO pins (gpiozero pin interface), filtered and calibrated.

Timing: the HX711 powers down when its clock (PD_SCK) stays high for more than 60 us. The clock is bit-banged
from Python, so any pulse can be stretched by the pin library or by the kernel preempting us. Every high pulse
is timed with perf_counter; a read with one pulse over PULSE_LIMIT_NS is thrown away and counted (stats()),
never used, so a slow pin factory costs retries, not wrong weights. See docs/hardware.md for the measurements.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robot.drivers._gpio import pin_factory_for
from robot.errors import ScaleError

# Wake this long (plus how late recent sleeps woke) before a conversion should end, then look every millisecond:
# covers the error of the period learned and the chip's clock running a little fast.
READY_EARLY_NS = 3_000_000
# DOUT seen high at most this long before it was seen low: the conversion's end is known to within it.
EDGE_SEEN_NS = 2_500_000
PULSE_LIMIT_NS = 50_000  # 60 us is the datasheet's power-down limit; keep a margin
RAW_MAX = 0x7FFFFF
RAW_MIN = -0x800000
CALIBRATION_FILE = "scale_calibration.json"


def twos_complement_24(value: int) -> int:
    """A 24-bit HX711 word as a signed integer."""
    value &= 0xFFFFFF
    return value - 0x1000000 if value & 0x800000 else value


def robust_mean(samples: list[int], k: float = 3.5) -> tuple[float, int]:
    """Mean of the samples within k median-absolute-deviations of the median, and how many were dropped.

    A bump while driving shows up as a few wild samples: the median ignores them and the mean of the rest
    keeps the resolution.
    """
    med = statistics.median(samples)
    mad = statistics.median(abs(s - med) for s in samples)
    # A MAD of 0 (quiet cell, few samples) must not reject every sample that differs by one count.
    spread = max(mad * 1.4826, 1.0)
    kept = [s for s in samples if abs(s - med) <= k * spread]
    return statistics.fmean(kept), len(samples) - len(kept)


@dataclass(frozen=True)
class Calibration:
    """Raw reading of the empty tray (offset) and raw counts per kilogram (scale)."""

    offset: float
    counts_per_kg: float | None = None

    def to_kg(self, raw: float) -> float:
        """Weight for a raw reading; needs counts_per_kg."""
        if not self.counts_per_kg:
            raise ScaleError("tray scale: not calibrated; run: ramudroid scale calibrate --known-kg 1.0")
        return (raw - self.offset) / self.counts_per_kg


def load_calibration(state_dir: Path) -> Calibration | None:
    """The saved calibration, or None when there is none (or it is unreadable)."""
    path = Path(state_dir).expanduser() / CALIBRATION_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        cpk = data.get("counts_per_kg")
        return Calibration(float(data["offset"]), None if cpk is None else float(cpk))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None  # a damaged file is no calibration (deep nesting, a list, garbage): never a crash


def save_calibration(state_dir: Path, cal: Calibration) -> Path:
    """Write the calibration atomically (a power cut mid-write must not lose the old one)."""
    d = Path(state_dir).expanduser()
    d.mkdir(parents=True, exist_ok=True)
    path = d / CALIBRATION_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"offset": cal.offset, "counts_per_kg": cal.counts_per_kg}, indent=1) + "\n")
    tmp.replace(path)
    return path


class Hx711:
    """The HX711 itself: wait for data ready, clock out 24 bits plus the gain pulse (channel A, gain 128)."""

    def __init__(
        self,
        dout_pin: int,
        sck_pin: int,
        *,
        pin_factory: Any = None,
        ready_timeout_s: float = 0.5,
        clock_ns: Callable[[], int] = time.perf_counter_ns,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        factory = pin_factory_for("scale", pin_factory)
        self.where = f"tray scale on GPIO {dout_pin}/{sck_pin}"
        self._dout = factory.pin(dout_pin)
        self._sck = factory.pin(sck_pin)
        self._dout.function = "input"
        # Pulled up, a disconnected DOUT reads "not ready" for ever, which is detected; floating could read 0.
        self._dout.pull = "up"
        self._sck.function = "output"
        self._sck.state = False
        self._timeout = ready_timeout_s
        self._clock_ns = clock_ns
        self._sleep = sleep
        self.counts: Counter[str] = Counter()
        self._closed = False
        # The chip's conversion period as learned from the gaps between conversions seen ending (_seen: the last
        # end seen closely), the last end seen at all (_mark), and how late the recent sleeps woke.
        self._gaps: deque[int] = deque(maxlen=8)
        self._period_ns: int | None = None
        self._seen: int | None = None
        self._mark: int | None = None
        self._late: deque[int] = deque(maxlen=8)

    def read_raw(self) -> int:
        """One conversion as a signed 24-bit count; ScaleError when the chip never says ready."""
        start = self._clock_ns()
        deadline = start + int(self._timeout * 1e9)
        if self._dout.state:
            # Sleep until just before the conversion under way should end, then look every millisecond. Looking
            # every millisecond for all of a conversion (100 ms at 10 per second, the RATE pin low) woke this
            # thread about a thousand times a second: more CPU than the rest of the robot (docs/performance.md).
            due = self._next_end_ns(start)
            early = READY_EARLY_NS + max(self._late, default=0)
            if due is not None and due - early > start:
                wake_at = min(due - early, deadline)
                self._sleep((wake_at - start) / 1e9)
                self._late.append(max(0, self._clock_ns() - wake_at))  # a busy machine wakes us late
            high_at = None
            while self._dout.state:
                high_at = self._clock_ns()
                if high_at > deadline:
                    self.counts["not_ready"] += 1
                    raise ScaleError(
                        f"{self.where}: no data for {self._timeout:.1f} s (DOUT stays high); "
                        "check the HX711 wiring and power or set hardware.scale = 'sim'"
                    )
                self._sleep(0.001)
            if high_at is not None:
                self._conversion_ended(high_at, self._clock_ns())
        sck, dout, now = self._sck, self._dout, self._clock_ns
        value = 0
        slowest = 0
        for _ in range(24):
            sck.state = True
            t_high = now()
            bit = dout.state
            sck.state = False
            slowest = max(slowest, now() - t_high)
            value = (value << 1) | bool(bit)
        # 25th pulse: channel A, gain 128 for the next conversion.
        sck.state = True
        t_high = now()
        sck.state = False
        slowest = max(slowest, now() - t_high)
        if slowest > PULSE_LIMIT_NS:
            self.counts["slow_pulse"] += 1
            raise _SlowPulse(slowest)
        return twos_complement_24(value)

    def _conversion_ended(self, high_at: int, low_at: int) -> None:
        """A conversion ended after `high_at` (DOUT last seen high) and by `low_at` (seen low). The next one ends
        a period after this one: predicted from `high_at`, it errs early. The period is the shortest gap
        between ends seen to within EDGE_SEEN_NS (a longer gap spans conversions nobody read)."""
        self._mark = high_at
        if low_at - high_at > EDGE_SEEN_NS:
            return
        last, self._seen = self._seen, low_at
        if last is not None and low_at > last:
            self._gaps.append(low_at - last)
            self._period_ns = min(self._gaps)

    def _next_end_ns(self, now: int) -> int | None:
        """When the conversion under way should end, on the period's grid from the last end seen; None while the
        period is unknown or the mark is more than a few periods old (the chip's clock drifts). If this thread
        woke too late to see an end, the mark stays: the chip converts without pause."""
        period, mark = self._period_ns, self._mark
        if period is None or mark is None or now - mark > 4 * period:
            return None
        return mark + ((now - mark) // period + 1) * period

    def close(self) -> None:
        """Leave the clock low (chip running) and release the pins; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        for pin in (self._sck, self._dout):
            with contextlib.suppress(Exception):
                pin.close()


class _SlowPulse(Exception):
    """A clock pulse was held high too long: the chip may have powered down mid-read."""


class Hx711Scale:
    """TrayScale on an HX711: outlier-filtered reads, tare and calibration persisted in the state dir."""

    def __init__(
        self,
        dout_pin: int,
        sck_pin: int,
        state_dir: str | Path,
        *,
        samples: int = 7,
        pin_factory: Any = None,
        ready_timeout_s: float = 0.5,
        clock_ns: Callable[[], int] = time.perf_counter_ns,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._hx = Hx711(
            dout_pin,
            sck_pin,
            pin_factory=pin_factory,
            ready_timeout_s=ready_timeout_s,
            clock_ns=clock_ns,
            sleep=sleep,
        )
        self._state_dir = Path(state_dir).expanduser()
        self._samples = max(3, samples)
        self.calibration = load_calibration(self._state_dir)
        self.outliers = 0

    @property
    def where(self) -> str:
        """The part and its pins, for messages."""
        return self._hx.where

    def read_raw_filtered(self) -> float:
        """Robust mean of `samples` raw reads; ScaleError when the amplifier is disconnected or stuck."""
        raws: list[int] = []
        attempts = 0
        while len(raws) < self._samples:
            attempts += 1
            if attempts > self._samples * 3:
                raise ScaleError(
                    f"{self.where}: clock pulses keep exceeding 60 us ({self._hx.counts['slow_pulse']} slow "
                    "reads); use a faster pin factory (lgpio) or a Pi 3 or newer"
                )
            try:
                raws.append(self._hx.read_raw())
            except _SlowPulse:
                continue
        if all(r in (RAW_MAX, RAW_MIN) for r in raws):
            raise ScaleError(
                f"{self.where}: reading saturated at {raws[0]}; check the load cell wires (E+/E-/A+/A-)"
            )
        if len(set(raws)) == 1:
            # A live 24-bit converter always shows noise in its low bits: identical words mean a stuck line.
            raise ScaleError(
                f"{self.where}: {len(raws)} identical readings ({raws[0]}); the HX711 looks disconnected, "
                "check DOUT/SCK wiring"
            )
        mean, dropped = robust_mean(raws)
        self.outliers += dropped
        return mean

    def read_kg(self) -> float:
        """Filtered tray weight in kg."""
        if self.calibration is None or not self.calibration.counts_per_kg:
            raise ScaleError(
                f"{self.where}: not calibrated; run: ramudroid scale tare, then ramudroid scale calibrate "
                "--known-kg 1.0"
            )
        return self.calibration.to_kg(self.read_raw_filtered())

    def tare(self) -> Calibration:
        """Take the current (empty tray) reading as zero, keep the scale factor, and save."""
        offset = self.read_raw_filtered()
        cpk = self.calibration.counts_per_kg if self.calibration else None
        self.calibration = Calibration(offset, cpk)
        save_calibration(self._state_dir, self.calibration)
        return self.calibration

    def calibrate(self, known_kg: float) -> Calibration:
        """With `known_kg` on the tray (after a tare), compute counts per kg and save."""
        if not known_kg > 0:
            raise ScaleError(f"tray scale: --known-kg {known_kg}: must be a weight above 0 kg")
        if self.calibration is None:
            raise ScaleError("tray scale: no tare yet; empty the tray and run: ramudroid scale tare")
        raw = self.read_raw_filtered()
        cpk = (raw - self.calibration.offset) / known_kg
        if abs(cpk) < 10:
            raise ScaleError(
                f"{self.where}: {known_kg} kg moved the reading by only {raw - self.calibration.offset:.0f} "
                "counts; is the weight on the tray and the load cell wired?"
            )
        self.calibration = Calibration(self.calibration.offset, cpk)
        save_calibration(self._state_dir, self.calibration)
        return self.calibration

    def stats(self) -> dict[str, int]:
        """Slow-pulse retries, not-ready timeouts and outlier samples dropped so far."""
        return {**self._hx.counts, "outliers": self.outliers}

    def close(self) -> None:
        """Release the pins; safe to call twice."""
        self._hx.close()

    def __enter__(self) -> Hx711Scale:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
