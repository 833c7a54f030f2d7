"""The asyncio Runner with fake parts and a fake link: wakes on safety events, brakes on every way out."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from conftest import SUNNY, FakeClock, Rig

from robot import runner as runner_mod
from robot.core.types import ALL_BRAKED, PowerSource, State
from robot.errors import ScaleError
from robot.hardware.interfaces import PowerReading
from robot.runner import Runner
from robot.telemetry import Telemetry, TelemetryBus

pytestmark = pytest.mark.timeout(30)


def aio(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run an async test on a fresh event loop (the standard library's; no plugin needed)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(fn(*args, **kwargs))

    return wrapper


async def until(cond: Callable[[], bool], limit_s: float = 3.0, poke: Runner | None = None) -> None:
    """Wait (real time, polling every 5 ms) for cond; `poke` wakes the runner on each poll to step at once."""
    end = time.monotonic() + limit_s
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not reached in time")
        if poke is not None:
            poke.wake()
        await asyncio.sleep(0.005)


def moving(rig: Rig) -> bool:
    return bool(rig.link.sent) and rig.link.sent[-1][1].moving


@pytest.fixture
def fast_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Poll every part every 5 ms, so warming up (three GPS fixes) takes milliseconds, not a second."""
    for name in runner_mod.POLL_PERIOD_S:
        monkeypatch.setitem(runner_mod.POLL_PERIOD_S, name, 0.005)
    monkeypatch.setattr(runner_mod, "POWER_RESTING_POLL_S", 0.005)


@aio
async def test_obstacle_reading_wakes_the_loop_and_a_brake_goes_out_before_the_next_tick(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()  # the real clock: this test is about real latency
    period = 0.2
    steps: list[tuple[float, int]] = []
    armed: dict[str, float] = {}

    def on_step(now: float) -> None:
        steps.append((now, r.wakeups))
        # Two steps after arming with no wake in between: the last one was a tick, the next is 200 ms away.
        tick = len(steps) >= 2 and steps[-1][1] == steps[-2][1]
        if tick and "inject" not in armed and now >= armed.get("arm", float("inf")):
            rig.parts.distance.value = 0.2
            armed["inject"] = now
            armed["wakes"] = r.wakeups

    r = Runner(rig.sup, rate_hz=1 / period, on_step=on_step)
    task = asyncio.create_task(r.run(install_signals=False))
    await until(lambda: moving(rig), poke=r)
    armed["arm"] = time.monotonic()
    await until(lambda: "inject" in armed, limit_s=2.0)
    t_inject = armed["inject"]
    await until(lambda: bool(rig.link.brakes_after(t_inject)), limit_s=1.0)
    braked_at = rig.link.brakes_after(t_inject)[0]
    r.stop()
    assert await task == 0
    print(f"obstacle to brake: {1000 * (braked_at - t_inject):.1f} ms (tick {1000 * period:.0f} ms)")
    assert braked_at - t_inject < period / 2, (
        f"brake {1000 * (braked_at - t_inject):.0f} ms after the obstacle"
    )
    assert r.wakeups > armed["wakes"]  # the reading woke the loop; it did not wait for the tick
    stopped = [t for t, m in rig.link.sent if t >= t_inject and m == ALL_BRAKED]
    assert stopped and stopped[0] == braked_at
    assert any(a.kind == "obstacle" for a in rig.outbox.recent(20))


@aio
async def test_link_loss_wakes_the_loop_and_brakes_before_the_next_tick(
    make_rig: Callable[..., Rig], fast_polls: None
) -> None:
    rig = make_rig()
    r = Runner(rig.sup, rate_hz=5)
    task = asyncio.create_task(r.run(install_signals=False))
    await until(lambda: moving(rig), poke=r)
    await asyncio.sleep(0.01)
    t0 = time.monotonic()
    rig.link.set_healthy(False)  # the link's own thread would call on_change
    await until(lambda: bool(rig.link.brakes_after(t0)), limit_s=1.0)
    latency = rig.link.brakes_after(t0)[0] - t0
    r.stop()
    assert await task == 0
    assert latency < 0.1
    assert rig.sup.last is not None and rig.sup.last.state is State.FAULT


class FailingTelemetry(TelemetryBus):
    """A telemetry bus that raises once told to: an unexpected bug inside the supervisor's step."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = False

    def publish(self, t: Telemetry) -> None:
        if self.fail:
            raise RuntimeError("publish exploded")
        super().publish(t)


@aio
async def test_exception_inside_supervisor_step_brakes_and_exits_1(
    make_rig: Callable[..., Rig], caplog: pytest.LogCaptureFixture, fast_polls: None
) -> None:
    bus = FailingTelemetry()
    rig = make_rig(telemetry=bus)
    r = Runner(rig.sup, rate_hz=5)
    task = asyncio.create_task(r.run(install_signals=False))
    await until(lambda: moving(rig), poke=r)
    bus.fail = True
    t0 = time.monotonic()
    r.wake()
    with caplog.at_level(logging.ERROR, logger="robot.runner"):
        code = await asyncio.wait_for(task, 1.0)
    assert code == 1
    assert rig.link.sent[-1][1] == ALL_BRAKED and rig.link.sent[-1][0] >= t0
    assert "publish exploded" in caplog.text or "crashed" in caplog.text


@aio
async def test_stop_brakes_and_returns_0(make_rig: Callable[..., Rig], fast_polls: None) -> None:
    rig = make_rig()
    r = Runner(rig.sup, rate_hz=5)
    task = asyncio.create_task(r.run(install_signals=False))
    await until(lambda: moving(rig), poke=r)
    t0 = time.monotonic()
    r.stop()
    assert await asyncio.wait_for(task, 1.0) == 0
    assert rig.link.sent[-1][1] == ALL_BRAKED and rig.link.sent[-1][0] >= t0


@aio
async def test_sigterm_brakes_and_exits_cleanly(make_rig: Callable[..., Rig], fast_polls: None) -> None:
    rig = make_rig()
    r = Runner(rig.sup, rate_hz=5)
    task = asyncio.create_task(r.run(install_signals=True))
    await until(lambda: moving(rig), poke=r)
    t0 = time.monotonic()
    os.kill(os.getpid(), signal.SIGTERM)
    assert await asyncio.wait_for(task, 1.0) == 0
    assert rig.link.sent[-1][1] == ALL_BRAKED and rig.link.sent[-1][0] >= t0


@aio
async def test_part_whose_read_raises_is_counted_goes_stale_and_faults(
    make_rig: Callable[..., Rig], fast_polls: None
) -> None:
    clock = FakeClock()
    rig = make_rig(clock=clock)
    r = Runner(rig.sup, rate_hz=5, clock=clock)
    task = asyncio.create_task(r.run(install_signals=False))
    await until(lambda: moving(rig), poke=r)
    rig.parts.scale.fail = ScaleError("tray scale on GPIO 5/6: no data")
    await until(lambda: rig.sup.readings.scale.errors >= 3)
    # Virtual time passes beyond the staleness limit; the other parts keep answering at the new time.
    clock.advance(rig.sup.cfg.sensor_stale_s + 0.5)
    at: dict[str, Any] = {}
    await until(
        lambda: all(getattr(rig.sup.readings, n).at == clock.t for n in ("power", "rain", "distance"))
    )
    at["t"] = clock.t
    await until(lambda: rig.sup.last is not None and rig.sup.last.state is State.FAULT, poke=r)
    r.stop()
    assert await task == 0
    d = rig.sup.last
    assert d is not None and "tray scale" in d.reason
    tel = rig.telemetry.latest()
    assert tel is not None and tel.counters["scale_errors"] >= 3
    assert any(a.kind == "fault" for a in rig.outbox.recent(20))
    assert rig.link.sent[-1][1] == ALL_BRAKED


@aio
async def test_operator_command_wakes_the_loop(make_rig: Callable[..., Rig], fast_polls: None) -> None:
    from robot.core.types import Command, CommandKind

    rig = make_rig()
    r = Runner(rig.sup, rate_hz=5)
    task = asyncio.create_task(r.run(install_signals=False))
    await until(lambda: moving(rig), poke=r)
    await asyncio.sleep(0.01)
    t0 = time.monotonic()
    rig.commands.put(Command(CommandKind.ESTOP, at=t0, source="test"))
    await until(lambda: bool(rig.link.brakes_after(t0)), limit_s=1.0)
    latency = rig.link.brakes_after(t0)[0] - t0
    r.stop()
    assert await task == 0
    assert latency < 0.1
    assert rig.sup.last is not None and rig.sup.last.state is State.ESTOP


@aio
async def test_at_the_control_rate_the_loop_reads_the_non_blocking_parts_itself(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    readers: dict[str, set[int]] = {}
    for name in ("distance", "rain", "gps", "power", "scale"):
        part = getattr(rig.parts, name)
        read = part._read

        def traced(read: Callable[[], Any] = read, name: str = name) -> Any:
            readers.setdefault(name, set()).add(threading.get_ident())
            return read()

        part._read = traced
    r = Runner(rig.sup, rate_hz=20)
    n = 12
    assert await asyncio.wait_for(r.run(install_signals=False, max_steps=n), 5.0) == 0
    loop_thread = threading.get_ident()
    # No thread of their own: read in the loop, just before the step that uses them.
    assert readers["distance"] == readers["rain"] == readers["gps"] == {loop_thread}
    assert loop_thread not in readers["power"] | readers["scale"]  # blocking reads: a poller thread each
    assert sorted(name for p in r._pollers for name in p.names) == ["power", "scale"]
    assert len(r._pollers) == 2
    # Distance every step (its period is the tick's), rain and GPS every second step (theirs is twice it).
    assert rig.parts.distance.reads == n
    assert rig.parts.rain.reads == rig.parts.gps.reads == n // 2


@aio
async def test_a_drivers_wake_makes_the_next_step_read_its_part_and_brake(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    seen: list[tuple[float, float, bool]] = []
    woke: dict[str, float] = {}

    def on_step(now: float) -> None:
        seen.append((now, rig.sup.readings.distance.value, rig.sup.readings.rain.value))
        if len(seen) % 2 == 1 and "at" not in woke and moving(rig):
            # The step just taken had an even index, so the next one is not due to read rain: only the wake
            # makes it. A driver's thread sees both at once and wakes the runner.
            def driver() -> None:
                rig.parts.distance.value = 0.2
                rig.parts.rain.value = True
                woke["at"] = time.monotonic()
                r.wake_threadsafe()

            threading.Timer(0.01, driver).start()

    r = Runner(rig.sup, rate_hz=20, on_step=on_step)
    task = asyncio.create_task(r.run(install_signals=False))
    await until(lambda: "at" in woke, limit_s=10.0)
    t0 = woke["at"]
    await until(lambda: bool(rig.link.brakes_after(t0)), limit_s=1.0)
    r.stop()
    assert await task == 0
    after = [(t, d, rain) for t, d, rain in seen if t >= t0]
    assert after[0][1] == 0.2 and after[0][2] is True  # the first step after the wake read both parts
    braked = rig.link.brakes_after(t0)[0]
    assert braked - t0 < 0.04, f"brake {1000 * (braked - t0):.0f} ms after the wake (tick 50 ms)"


def test_the_power_monitor_rests_only_on_the_battery_well_above_critical(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    r = Runner(rig.sup, rate_hz=20)
    cfg = rig.sup.cfg
    fast, rest = runner_mod.POLL_PERIOD_S["power"], runner_mod.POWER_RESTING_POLL_S
    assert (fast, rest) == (0.05, 0.2)
    healthy = replace(SUNNY, battery_v=cfg.critical_v + 1.5, soc=0.8)

    def pace(reading: PowerReading | None, **core: Any) -> float:
        rig.sup.core = rig.sup.core._replace(**{"power": PowerSource.BATTERY, **core})
        r._delivered.pop("power", None)
        if reading is not None:
            r._delivered["power"] = reading
        return r._power_pace()

    assert pace(healthy) == rest
    assert r._power_resting
    assert pace(healthy, power=PowerSource.PANEL) == fast  # a shadow must move the relay within the hold-up
    assert not r._power_resting
    assert pace(None) == fast  # nothing read yet
    assert pace(healthy, critical=True) == fast
    assert pace(replace(healthy, soc=cfg.low_soc)) == fast
    assert pace(replace(healthy, battery_v=cfg.critical_v + runner_mod.POWER_FAST_ABOVE_CRITICAL_V)) == fast
    assert pace(replace(healthy, battery_v=float("nan"))) == fast
    assert pace(replace(healthy, soc=float("nan"))) == fast
    # Never slower than the control rate asks, whatever the resting period.
    r_slow = Runner(rig.sup, rate_hz=20)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(runner_mod.POLL_PERIOD_S, "power", 0.5)
        r_slow._delivered["power"] = healthy
        rig.sup.core = rig.sup.core._replace(power=PowerSource.BATTERY)
        assert r_slow._power_pace() == 0.5


def test_a_step_that_puts_the_loads_on_the_panel_wakes_the_resting_power_poller(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    outer: list[float] = []
    r = Runner(rig.sup, rate_hz=20, on_step=outer.append)
    r._loop = None  # no loop: the poller's readings are dropped; this test only watches its wake-ups
    poller = runner_mod.Poller([("power", rig.parts.power.read, 0.05, None)], r._deliver, pace=r._power_pace)
    r._power_poller = poller
    r._follow_relay_after_each_step()
    assert r.on_step is not None
    r._delivered["power"] = SUNNY
    rig.sup.core = rig.sup.core._replace(power=PowerSource.BATTERY)
    assert r._power_pace() == runner_mod.POWER_RESTING_POLL_S
    r.on_step(1.0)  # still on the battery: the poller rests
    assert not poller.kick_pending()
    rig.sup.core = rig.sup.core._replace(power=PowerSource.PANEL)
    r.on_step(1.05)  # the step moved the relay to the panel: read now
    assert poller.kick_pending()
    assert not r._power_resting
    assert poller._kick.acquire(blocking=False)  # the thread takes the kick
    r.on_step(1.1)  # kicked once, not at every step
    assert not poller.kick_pending()
    assert outer == [1.0, 1.05, 1.1]  # the runner's own on_step still runs after each step


class CountedWaits:
    """Stands in for a Poller's kick lock: records each wait's timeout, returns at once (no kick), stops after
    `n`."""

    def __init__(self, poller: runner_mod.Poller, n: int, clock: FakeClock) -> None:
        self.poller, self.n, self.clock = poller, n, clock
        self.waits: list[float] = []

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self.waits.append(round(timeout, 9))
        self.clock.advance(timeout)
        if len(self.waits) >= self.n:
            self.poller._stop.set()
        return False

    def release(self) -> None:
        pass

    def locked(self) -> bool:
        return True


def test_a_paced_poller_waits_what_its_pace_says_less_the_reads_time() -> None:
    clock = FakeClock()
    got: list[tuple[str, Any, float]] = []
    paces = iter([0.2, 0.05, 0.2])

    def read() -> float:
        clock.advance(0.01)  # an I2C read that takes 10 ms
        return 1.0

    poller = runner_mod.Poller(
        [("power", read, 0.05, None)],
        lambda name, value, err, age: got.append((name, value, clock.t)),
        clock,
        pace=lambda: next(paces),
    )
    waits = CountedWaits(poller, 3, clock)
    poller._kick = waits  # type: ignore[assignment]
    poller._run()  # in this thread, on the virtual clock
    assert waits.waits == [0.19, 0.04, 0.19]
    assert [round(t - 1000.0, 9) for _, _, t in got] == [0.01, 0.21, 0.26]
