"""HX711 tray scale on MockFactory pins: calibration, filtering, and a disconnected amplifier."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from robot.drivers.mockpins import attach_mock_hx711
from robot.drivers.scale import Hx711Scale, robust_mean, twos_complement_24
from robot.errors import ScaleError

DOUT, SCK = 5, 6


class FakeNs:
    """A nanosecond clock that only advances when told (and a sleep that advances it)."""

    def __init__(self) -> None:
        self.t = 0
        self.step = 1_000  # 1 us per call: a fast pin factory

    def __call__(self) -> int:
        self.t += self.step
        return self.t

    def sleep(self, s: float) -> None:
        self.t += int(s * 1e9)


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.reset()


def make_scale(
    factory: MockFactory, tmp_path: Path, next_raw: Callable[[], int | None], clock: FakeNs
) -> Hx711Scale:
    attach_mock_hx711(factory, DOUT, SCK, next_raw)
    return Hx711Scale(DOUT, SCK, tmp_path, pin_factory=factory, clock_ns=clock, sleep=clock.sleep)


def test_tare_calibrate_and_read_persist_across_restarts(factory: MockFactory, tmp_path: Path) -> None:
    rng = random.Random(3)
    load = {"kg": 0.0}
    raw = lambda: -52_000 + int(load["kg"] * 41_000) + rng.randint(-40, 40)  # noqa: E731
    clock = FakeNs()
    with make_scale(factory, tmp_path, raw, clock) as scale:
        with pytest.raises(ScaleError, match="not calibrated"):
            scale.read_kg()
        scale.tare()
        load["kg"] = 1.0
        scale.calibrate(1.0)
        load["kg"] = 1.7
        assert scale.read_kg() == pytest.approx(1.7, abs=0.005)
    saved = json.loads((tmp_path / "scale_calibration.json").read_text())
    assert saved["counts_per_kg"] == pytest.approx(41_000, rel=0.01)
    factory.reset()
    with make_scale(factory, tmp_path, raw, FakeNs()) as again:
        assert again.read_kg() == pytest.approx(1.7, abs=0.005)


def test_bump_samples_are_rejected_by_the_median_filter(factory: MockFactory, tmp_path: Path) -> None:
    seq = iter([1000, 1003, 998, 1001, 250_000, 999, 1002, -300_000, 1000, 1001] * 10)
    (tmp_path / "scale_calibration.json").write_text(json.dumps({"offset": 0, "counts_per_kg": 1000}))
    with make_scale(factory, tmp_path, lambda: next(seq), FakeNs()) as scale:
        assert scale.read_kg() == pytest.approx(1.0, abs=0.005)
        assert scale.stats()["outliers"] >= 1


def test_disconnected_amplifier_raises_instead_of_reading_zero(factory: MockFactory, tmp_path: Path) -> None:
    (tmp_path / "scale_calibration.json").write_text(json.dumps({"offset": 0, "counts_per_kg": 1000}))
    with (
        make_scale(factory, tmp_path, lambda: None, FakeNs()) as scale,
        pytest.raises(ScaleError, match=r"GPIO 5/6: no data .*HX711 wiring"),
    ):
        scale.read_kg()


def test_dout_stuck_low_reads_identical_words_and_is_detected(factory: MockFactory, tmp_path: Path) -> None:
    (tmp_path / "scale_calibration.json").write_text(json.dumps({"offset": 0, "counts_per_kg": 1000}))
    with (
        make_scale(factory, tmp_path, lambda: 0, FakeNs()) as scale,
        pytest.raises(ScaleError, match="disconnected"),
    ):
        scale.read_kg()


def test_saturated_reading_points_at_load_cell_wires(factory: MockFactory, tmp_path: Path) -> None:
    (tmp_path / "scale_calibration.json").write_text(json.dumps({"offset": 0, "counts_per_kg": 1000}))
    with (
        make_scale(factory, tmp_path, lambda: 0x7FFFFF, FakeNs()) as scale,
        pytest.raises(ScaleError, match="saturated"),
    ):
        scale.read_kg()


def test_slow_clock_pulses_are_retried_and_a_too_slow_factory_is_named(
    factory: MockFactory, tmp_path: Path
) -> None:
    (tmp_path / "scale_calibration.json").write_text(json.dumps({"offset": 0, "counts_per_kg": 1000}))
    rng = random.Random(1)
    clock = FakeNs()
    with make_scale(factory, tmp_path, lambda: 5000 + rng.randint(-5, 5), clock) as scale:
        clock.step = 70_000  # every pulse held high 70 us: past the HX711's 60 us power-down limit
        with pytest.raises(ScaleError, match="60 us"):
            scale.read_kg()
        assert scale.stats()["slow_pulse"] >= 7
        clock.step = 1_000
        assert scale.read_kg() == pytest.approx(5.0, abs=0.01)


def test_sck_idles_low_and_each_read_clocks_25_pulses(factory: MockFactory, tmp_path: Path) -> None:
    (tmp_path / "scale_calibration.json").write_text(json.dumps({"offset": 0, "counts_per_kg": 1000}))
    rng = random.Random(2)
    with make_scale(factory, tmp_path, lambda: rng.randint(0, 100), FakeNs()) as scale:
        sck = factory.pin(SCK)
        sck.clear_states()
        scale.read_raw_filtered()
        highs = sum(1 for s in sck.states if s.state)
        assert highs == 25 * 7 and sck.state is False


def test_calibrate_rejects_nonsense(factory: MockFactory, tmp_path: Path) -> None:
    rng = random.Random(4)
    with make_scale(factory, tmp_path, lambda: rng.randint(0, 5), FakeNs()) as scale:
        with pytest.raises(ScaleError, match="no tare"):
            scale.calibrate(1.0)
        scale.tare()
        with pytest.raises(ScaleError, match="above 0"):
            scale.calibrate(0.0)
        with pytest.raises(ScaleError, match="moved the reading by only"):
            scale.calibrate(1.0)


def test_pure_helpers() -> None:
    assert twos_complement_24(0xFFFFFF) == -1 and twos_complement_24(0x800000) == -0x800000
    assert twos_complement_24(0x7FFFFF) == 0x7FFFFF
    mean, dropped = robust_mean([10, 11, 9, 10, 10_000])
    assert mean == pytest.approx(10) and dropped == 1


class SleepCountingNs(FakeNs):
    """FakeNs that counts its sleeps, and wakes `late_ns` late when told (a busy machine)."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeps = 0
        self.late_ns = 0

    def sleep(self, s: float) -> None:
        self.sleeps += 1
        self.t += int(s * 1e9) + self.late_ns


@pytest.mark.parametrize("sps", [10, 80])
def test_a_conversion_is_awaited_with_one_sleep_and_a_few_looks_and_none_is_missed(
    factory: MockFactory, tmp_path: Path, sps: int
) -> None:
    (tmp_path / "scale_calibration.json").write_text(json.dumps({"offset": 0, "counts_per_kg": 1000}))
    rng = random.Random(5)
    clock = SleepCountingNs()
    attach_mock_hx711(factory, DOUT, SCK, lambda: 1000 + rng.randint(-40, 40), sps=sps, clock_ns=clock)
    period_ns = 1e9 / sps
    with Hx711Scale(DOUT, SCK, tmp_path, pin_factory=factory, clock_ns=clock, sleep=clock.sleep) as scale:
        scale.read_kg()  # the first conversions are looked for every millisecond: the period is learned
        for late_ns in (0, 5_000_000):  # on time, then every wake-up 5 ms late (past the 3 ms it wakes early)
            clock.late_ns = late_ns
            clock.sleeps, t0, reads = 0, clock.t, 4
            for _ in range(reads):
                assert scale.read_kg() == pytest.approx(1.0, abs=0.05)
            conversions = 7 * reads
            # One after another, none missed: 7 conversions a reading, as fast as the chip makes them.
            assert clock.t - t0 <= (conversions + 1) * period_ns
            # Looking every millisecond took about period / 1 ms looks a conversion (100 at 10 a second).
            assert clock.sleeps <= 6 * conversions, f"{clock.sleeps / conversions:.1f} sleeps a conversion"
