"""Idle stepping (issue 14): a robot standing braked with nothing to do takes a full step once a second, sends the
braked frame every tick, and steps at once on any event. Virtual time only."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import SUNNY, FakeClock, FakeGps, FakeParts, FreshGps, Rig

from robot.config import Settings
from robot.core.types import ALL_BRAKED, Command, CommandKind, Mode, PowerSource, State
from robot.errors import ScaleError
from robot.hardware.interfaces import GpsFix

DT = 0.05  # the control period at the default 20 Hz


class OneHzGps(FreshGps):
    """The usual receiver: a new epoch once a second (every 20th read at 20 Hz), the last one in between."""

    def __init__(self, lat: float, lon: float) -> None:
        super().__init__(lat, lon)
        self.fix: GpsFix | None = None
        self.polls = 0

    def latest(self) -> GpsFix | None:
        self.polls += 1
        if self.fix is None or self.polls % 20 == 0:
            self.fix = super().latest()
        return self.fix


@pytest.fixture
def parts(parts: FakeParts) -> FakeParts:
    """The shared fake parts with a 1 Hz receiver (idle ticks step at once on each new epoch)."""
    parts.gps = OneHzGps(*parts.gps.value)
    return parts


def ticks(rig: Rig, clock: FakeClock, seconds: float) -> list[bool]:
    """Poll and tick every DT, as the simulator does; whether each tick was a full step. Every tick sends exactly
    one frame, and an idle tick only the brake."""
    full = []
    for _ in range(round(seconds / DT)):
        now = clock.advance(DT)
        rig.sup.poll_parts(now)
        steps, sent = rig.sup.steps, len(rig.link.sent)
        rig.sup.tick(now)
        assert len(rig.link.sent) == sent + 1
        full.append(rig.sup.steps == steps + 1)
        if not full[-1]:
            assert rig.link.sent[-1] == (now, ALL_BRAKED)
    return full


def paused(make_rig: Callable[..., Rig], **control: Any) -> tuple[Rig, FakeClock]:
    """A paused robot that has settled into idle stepping."""
    clock = FakeClock()
    rig = make_rig(clock=clock, start_mode="paused", **control)
    ticks(rig, clock, 1.0)
    assert rig.sup.last is not None and rig.sup.last.state is State.PAUSED
    return rig, clock


def test_a_paused_robot_steps_once_a_second_and_brakes_every_tick(make_rig: Callable[..., Rig]) -> None:
    rig, clock = paused(make_rig)
    assert rig.sup.idle
    t0, sent0 = clock.t, len(rig.link.sent)
    full = ticks(rig, clock, 10.0)
    assert sum(full) == 10  # control.idle_step_s = 1.0
    assert rig.sup.idle_ticks >= 190
    frames = rig.link.sent[sent0:]
    assert [m for _, m in frames] == [ALL_BRAKED] * 200
    # One frame every 50 ms, as before: the Arduino's 300 ms watchdog and the 250 ms dead-link limit never see
    # a gap.
    gaps = [b[0] - a[0] for a, b in itertools.pairwise([(t0, None), *frames])]
    assert max(gaps) == pytest.approx(DT)


def test_idle_stepping_off_steps_every_tick(make_rig: Callable[..., Rig]) -> None:
    rig, clock = paused(make_rig, idle_step_s=0.0)
    assert not rig.sup.idle
    assert all(ticks(rig, clock, 3.0))


def test_an_estop_wakes_a_full_step_on_the_tick_it_arrives_and_alerts_once(
    make_rig: Callable[..., Rig],
) -> None:
    rig, clock = paused(make_rig)
    ticks(rig, clock, 0.3)  # between full steps
    assert rig.commands.put(Command(CommandKind.ESTOP, at=clock.t, source="web"))
    assert ticks(rig, clock, DT) == [True]
    assert rig.sup.last is not None and rig.sup.last.state is State.ESTOP
    assert rig.link.sent[-1][1] == ALL_BRAKED
    full = ticks(rig, clock, 5.0)
    assert sum(full) <= 6 and rig.sup.idle  # e-stopped: idle again
    assert [a.kind for a in rig.outbox.recent(20)].count("estop") == 1


def test_leaving_idle_steps_every_tick_again(make_rig: Callable[..., Rig]) -> None:
    rig, clock = paused(make_rig)
    ticks(rig, clock, 0.5)
    assert rig.commands.put(Command(CommandKind.SET_MODE, at=clock.t, mode=Mode.AUTO, source="web"))
    full = ticks(rig, clock, 2.0)
    assert all(full)  # the command's tick and every one after it: cleaning is not idle
    assert rig.sup.last is not None and rig.sup.last.state is State.CLEANING
    assert rig.link.sent[-1][1].moving


def _latch(rig: Rig, tmp_path: Path) -> None:
    from robot.store import Store

    store = Store(tmp_path / "state.db")
    rig.sup.store, rig.sup._estop_seen = store, store.estop_generation
    store.latch_estop("e-stop button")  # its queued command lost (a full queue): the latch alone stops


EVENTS: dict[str, Callable[[Rig, Path], None]] = {
    "rain": lambda rig, _: setattr(rig.parts.rain, "value", True),
    "tray filled": lambda rig, _: setattr(rig.parts.scale, "value", 1.95),
    "tray emptied": lambda rig, _: setattr(rig.parts.scale, "value", 0.1),
    "link lost": lambda rig, _: rig.link.set_healthy(False),
    "scale failing": lambda rig, _: setattr(rig.parts.scale, "fail", ScaleError("tray scale: no data")),
    "battery critical": lambda rig, _: setattr(
        rig.parts.power, "value", dataclasses.replace(SUNNY, battery_v=9.5, soc=0.08)
    ),
    "reset command": lambda rig, _: rig.commands.put(Command(CommandKind.RESET, at=0.0, source="sms")),
    "e-stop latched in the store": _latch,
}


@pytest.mark.parametrize("event", EVENTS)
def test_an_event_wakes_a_full_step_on_the_next_tick(
    make_rig: Callable[..., Rig], tmp_path: Path, event: str
) -> None:
    rig, clock = paused(make_rig)
    ticks(rig, clock, 0.3)
    EVENTS[event](rig, tmp_path)
    assert ticks(rig, clock, DT) == [True]


def test_what_the_core_does_not_act_on_does_not_wake(make_rig: Callable[..., Rig]) -> None:
    rig, clock = paused(make_rig)
    while not ticks(rig, clock, DT)[0]:
        pass
    rig.parts.distance.value = 0.2  # braked already: an obstacle changes nothing
    rig.parts.scale.value = 0.55  # a little litter settling: below the tray's wake step (0.1 kg)
    rig.parts.power.value = dataclasses.replace(SUNNY, soc=0.79)
    assert ticks(rig, clock, 1.0) == [False] * 19 + [True]  # the next full step on time, a second later


def test_a_fix_after_none_wakes(make_rig: Callable[..., Rig], parts: Any) -> None:
    parts.gps = FakeGps(None)
    rig, clock = paused(make_rig)
    ticks(rig, clock, 0.3)
    lat, lon = rig.sup.site.to_latlon(*rig.sup.site.route.at(0.0))
    parts.gps.value = GpsFix(datetime(2024, 5, 1, 6, 0, tzinfo=UTC), lat, lon, 3, 0.0, None, 0.9, 10)
    assert ticks(rig, clock, DT) == [True]


def test_each_new_fix_wakes_so_navigation_sees_every_one(make_rig: Callable[..., Rig], parts: Any) -> None:
    rig, clock = paused(make_rig)
    epochs = []
    for _ in range(100):
        before = parts.gps.fix
        full = ticks(rig, clock, DT)[0]
        if parts.gps.fix is not before:
            epochs.append(full)
    assert epochs == [True] * 5
    assert rig.sup.nav.fix_key is not None and rig.sup.idle


def test_the_panel_falling_short_while_on_it_wakes(make_rig: Callable[..., Rig]) -> None:
    rig, clock = paused(make_rig)
    ticks(rig, clock, rig.sup.cfg.switch_dwell_s + 2.0)  # the relay moves to the panel (up to 1 s late)
    assert rig.parts.relay.source is PowerSource.PANEL and rig.sup.idle
    ticks(rig, clock, 0.3)
    rig.parts.power.value = dataclasses.replace(SUNNY, panel_a=0.1)  # 1.8 W: short of the 2.8 W load
    assert ticks(rig, clock, DT) == [True]
    assert rig.parts.relay.source is PowerSource.BATTERY


def test_rain_confirmation_runs_at_the_control_rate(make_rig: Callable[..., Rig]) -> None:
    """A short core timer (rain.confirm_s) keeps every tick a full step until it has ended."""
    rig, clock = paused(make_rig)
    ticks(rig, clock, 0.3)
    rig.parts.rain.value = True
    full = ticks(rig, clock, 3.0)
    confirm = round(rig.sup.cfg.rain_confirm_s / DT)
    assert all(full[: confirm + 1]) and not all(full[confirm + 2 :])
    assert rig.sup.core.rain and rig.sup.idle


def test_idle_ticks_keep_the_telemetry_fresh(make_rig: Callable[..., Rig]) -> None:
    rig, clock = paused(make_rig)
    rig.sup.telemetry_every_s = 0.2  # the robot's setting (ramudroid.app.TELEMETRY_EVERY_S)
    ticks(rig, clock, 0.3)
    before = rig.telemetry.version
    rig.parts.scale.value = 0.55  # no wake, but shown
    ticks(rig, clock, 5.0)
    # As full steps publish: every 0.2-0.25 s (whole 50 ms ticks).
    assert rig.telemetry.version - before >= 5.0 / 0.25 - 1
    tel = rig.telemetry.latest()
    assert tel is not None and clock.t - tel.at < 0.25
    assert tel.tray_kg == 0.55 and tel.state == State.PAUSED.value


def test_a_failing_tick_raises_as_a_step_does(make_rig: Callable[..., Rig]) -> None:
    """An exception in an idle tick reaches the caller (the runner brakes and exits), as one in step() does."""
    rig, clock = paused(make_rig)

    def broken(_outputs: Any) -> None:
        raise RuntimeError("serial port gone")

    rig.link.send = broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="serial port gone"):
        ticks(rig, clock, DT)


# ---- the simulator: the real link and the simulated Arduino ----------------------------------------------------

HEAD = "start = 2024-03-15T10:00:00\nduration_h = 1\nseed = 3\n[robot]\nbattery_soc = 0.9\n"


def test_an_estopped_robot_idles_without_tripping_the_arduino_watchdog() -> None:
    from sim import scenario as scen
    from sim.run import run_scenario

    ops = '[[operator]]\nat = "10:01:00"\naction = "estop"\n[[operator]]\nat = "10:04:00"\naction = "reset"\n'
    result = run_scenario(scen.parse(HEAD + ops, "t.toml"), duration_s=300.0)
    run, r = result.run, result.report
    assert run.supervisor.idle_ticks >= 180 * 19 - 5  # standing 180 s: all but about one tick a second idle
    stats = run.link.stats()
    assert stats["handshakes"] == 1 and stats["resyncs"] == 0 and stats["lost"] == 0
    assert not run.arduino.watchdog_tripped
    assert not [e for e in r["safety_events"] if e["kind"].startswith("link")]
    assert r["time_in_state_s"]["estop"] == pytest.approx(180.0, abs=0.06)  # the reset woke a step at once
    assert [a["kind"] for a in r["alerts"]].count("estop") == 1
    assert r["time_in_state_s"].get("cleaning", 0.0) > 30.0  # and it went back to work


def test_a_scenario_that_waits_decides_as_with_idle_stepping_off() -> None:
    """The tray full at the start, emptied by a person 5 minutes in: the full-tray wait idle (a full step a second)
    with idle stepping on, and the same run as with it off."""
    from sim import scenario as scen
    from sim.run import run_scenario

    text = HEAD.replace("battery_soc = 0.9\n", "battery_soc = 0.9\ntray_kg = 1.95\n")
    text += '[[operator]]\nat = "10:05:00"\naction = "tray_emptied"\n'
    sc = scen.parse(text, "t.toml")
    base = Settings()
    off = dataclasses.replace(base, control=dataclasses.replace(base.control, idle_step_s=0.0))
    on_run = run_scenario(sc, duration_s=600.0)
    off_run = run_scenario(sc, settings=off, duration_s=600.0)
    on, ref = on_run.report, off_run.report
    assert on_run.run.supervisor.idle_ticks > 250 * 19 and off_run.run.supervisor.idle_ticks == 0
    # Every fix reaches navigation on the tick it came and the wait ends on the person's command: the same run.
    for key in ("alerts", "time_in_state_s", "route_completion", "collisions", "brownout_s", "safety_events"):
        assert on[key] == ref[key], key


# ---- the real-time runner, on a virtual clock -------------------------------------------------------------------


def test_the_runner_ticks_at_the_control_rate_and_steps_when_due_or_woken(
    make_rig: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ramudroid run`'s loop: a frame every 50 ms of its clock, a full step a second, and an operator's e-stop
    stepped on the tick after it. The clock is virtual (each tick moves it 50 ms), so the loop never waits."""
    import asyncio

    from robot import runner as runner_mod
    from robot.runner import Runner

    # Every part read by the loop itself on the virtual clock, no poller thread on real time: the power monitor,
    # which always has a thread of its own, is handed over at each tick as its poller would deliver it.
    monkeypatch.setattr(runner_mod, "INLINE_PARTS", tuple(runner_mod.POLL_PERIOD_S))
    monkeypatch.setattr(runner_mod.Poller, "start", lambda _self: None)
    clock = FakeClock()
    rig = make_rig(clock=clock, start_mode="paused")
    seen: list[tuple[float, int, State]] = []

    def on_step(now: float) -> None:
        rig.sup.ingest("power", rig.parts.power.read(), now)
        assert rig.sup.last is not None
        seen.append((now, rig.sup.steps, rig.sup.last.state))
        if len(seen) == 300:
            rig.commands.put(Command(CommandKind.ESTOP, at=now, source="web"))
        clock.advance(DT)

    r = Runner(rig.sup, rate_hz=20, clock=clock, on_step=on_step)
    assert asyncio.run(asyncio.wait_for(r.run(install_signals=False, max_steps=400), 30.0)) == 0
    frames = rig.link.sent[1:-1]  # between the boot's brake and the close's
    assert len(frames) == 400 and {m for _, m in frames} == {ALL_BRAKED}
    assert max(b[0] - a[0] for a, b in itertools.pairwise(frames)) == pytest.approx(DT)
    steps = [s for _, s, _ in seen]
    assert 15 <= steps[299] - steps[0] <= 20  # 15 s paused: a full step a second (the first ones before idle)
    assert steps[300] == steps[299] + 1 and seen[300][2] is State.ESTOP  # woken: the next tick stepped
    assert 4 <= steps[-1] - steps[300] <= 6 and rig.sup.idle  # e-stopped: idle again


def test_a_robot_parking_on_a_low_battery_idles_at_the_park_and_parks_as_before() -> None:
    """Low battery at the start: the robot drives to the park, stands averaging fixes, arrives, charges. Standing
    there is idle (navigation still folds in every fix on the tick it comes), and it parks where it did."""
    from sim import scenario as scen
    from sim.run import run_scenario

    sc = scen.parse(HEAD.replace("battery_soc = 0.9", "battery_soc = 0.2"), "t.toml")
    base = Settings()
    off = dataclasses.replace(base, control=dataclasses.replace(base.control, idle_step_s=0.0))
    on_run, off_run = run_scenario(sc, duration_s=1200.0), run_scenario(sc, settings=off, duration_s=1200.0)
    sup = on_run.run.supervisor
    assert sup.last.state is State.LOW_BATTERY and sup.guidance.arrived
    assert sup.idle_ticks > 0.8 * 1200 / DT
    on, ref = on_run.report, off_run.report
    assert on["arrivals"]["park"] == ref["arrivals"]["park"] and on["arrivals"]["park"]["inside"] == 1
    assert on["alerts"] == ref["alerts"]
    assert on["time_in_state_s"] == ref["time_in_state_s"]
