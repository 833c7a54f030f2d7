"""The in-process fast run: the real supervisor against the world on a virtual clock, as fast as it goes.

One loop, no threads: t += dt; the Arduino's clock ticks; the world moves with the pins the Arduino applied;
scheduled faults are injected; the supervisor reads every part and decides; the recorder notes what happened.
The link is the real protocol (DirectLink speaking frames to a SimArduino), so a link fault is a real one.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arduino_bridge.direct import DirectLink
from arduino_bridge.sim_arduino import SimArduino
from robot.alerts import AlertOutbox
from robot.commands import CommandQueue
from robot.config import HardwareSettings, Settings
from robot.core.types import Mode, PowerSource
from robot.power_down import PowerDown, PowerDownPlan
from robot.telemetry import TelemetryBus
from sim.report import Recorder
from sim.scenario import Fault, Scenario
from sim.world import World

PROGRESS_EVERY_S = 60.0  # simulated seconds between progress callbacks
# While the Pi is powered down nothing on the robot moves or decides: the world (battery, sun, rain, alarms)
# advances in one-second steps, exact for its piecewise-constant loads, 20 times fewer than at the control rate.
OFF_STRIDE_S = 1.0
SIM_WAKE = "sim-rtc-wake"  # the wake command the simulated robot runs: its RTC alarm sets the world's latch


class SimClock:
    """The virtual clock every simulated part reads: seconds since the scenario's start."""

    __slots__ = ("t",)

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class FaultyArduino(SimArduino):
    """The simulated Arduino with a noisy USB cable: flips one bit in each of the next N bytes it receives."""

    def __init__(self, *, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pending_corruptions = 0
        self.corrupted = 0
        self._k = seed * 2654435761 % 2**32 or 1

    def corrupt(self, count: int) -> None:
        """Corrupt the next `count` received bytes."""
        self.pending_corruptions += count

    def feed(self, data: bytes, now: float) -> bytes:
        if self.pending_corruptions > 0 and data:
            buf = bytearray(data)
            # Spread the flips over the frame: xorshift, deterministic per seed.
            for _ in range(min(self.pending_corruptions, len(buf))):
                self._k ^= (self._k << 13) & 0xFFFFFFFF
                self._k ^= self._k >> 17
                self._k ^= (self._k << 5) & 0xFFFFFFFF
                buf[self._k % len(buf)] ^= 1 << (self._k >> 8) % 8
                self.pending_corruptions -= 1
                self.corrupted += 1
            data = bytes(buf)
        return super().feed(data, now)


@dataclass
class SimRun:
    """Everything one in-process run is made of."""

    scenario: Scenario
    settings: Settings
    world: World
    clock: SimClock
    arduino: FaultyArduino
    link: DirectLink
    parts: Any
    supervisor: Any
    recorder: Recorder
    outbox: AlertOutbox
    commands: CommandQueue
    telemetry: TelemetryBus
    stops: list[tuple[float, str, str]] = dataclasses.field(default_factory=list)  # (t, reason, detail)
    boots: int = 0


@dataclass
class RunResult:
    """The outcome of a run: the report dict and the objects behind it."""

    report: dict[str, Any]
    run: SimRun
    wall_s: float


def sim_settings(settings: Settings | None = None) -> Settings:
    """The given settings with every part simulated (the simulator drives no real hardware)."""
    base = settings if settings is not None else Settings()
    return dataclasses.replace(base, hardware=HardwareSettings())


def _supervisor(
    cfg: Settings,
    parts: Any,
    link: Any,
    world: World,
    outbox: AlertOutbox,
    commands: CommandQueue,
    telemetry: TelemetryBus,
    clock: SimClock,
) -> Any:
    from robot.supervisor import Supervisor

    # The simulated robot has the RTC wake wiring of docs/power.md; its telemetry shows the scenario's clock.
    start = world.utc_time(0.0).timestamp()
    return Supervisor(
        cfg,
        parts,
        link,
        site=world.site,
        outbox=outbox,
        commands=commands,
        telemetry=telemetry,
        state_dir=None,
        can_sleep=True,
        wall=lambda: start + clock.t,
    )


def build(scenario: Scenario, settings: Settings | None = None, seed: int | None = None) -> SimRun:
    """World, simulated parts, Arduino, link and the real supervisor for one scenario."""
    from robot.hardware.factory import build_parts

    cfg = sim_settings(settings)
    world = World(scenario, seed, receiver=cfg.gps.receiver)
    clock = SimClock()
    arduino = FaultyArduino(seed=world.seed)
    link = DirectLink(arduino, clock, watchdog_ms=cfg.hardware.arduino_watchdog_ms)
    parts = build_parts(cfg, world=world)
    outbox, commands, telemetry = AlertOutbox(), CommandQueue(), TelemetryBus()
    sup = _supervisor(cfg, parts, link, world, outbox, commands, telemetry, clock)
    recorder = Recorder(
        world,
        stop_distance_m=cfg.obstacle.stop_distance_m,
        tray_full_kg=cfg.tray.capacity_kg * cfg.tray.full_fraction,
        critical_soc=cfg.power.critical_soc,
        critical_v=cfg.power.critical_v,
        low_soc=cfg.power.low_soc,
    )
    run = SimRun(
        scenario, cfg, world, clock, arduino, link, parts, sup, recorder, outbox, commands, telemetry
    )
    recorder.nav.guidance = lambda: _guidance(run)
    return run


def _guidance(run: SimRun) -> Any:
    """Navigation's newest answer, when it was computed for the goal of the decision just made: the supervisor
    guides towards the last decision's goal, so on the step the goal changes (park -> shelter) its answer is
    about the old one (an arrival at the park is no arrival at the shelter). The supervisor of the moment: a
    boot after a power-down makes a new one."""
    sup = run.supervisor
    if sup is None or sup.last is None or sup.nav.goal != str(sup.last.goal):
        return None
    return sup.guidance


class FaultInjector:
    """Applies the scenario's faults at their times and undoes them when their duration ends."""

    def __init__(self, run: SimRun) -> None:
        self.run = run
        self.pending: list[Fault] = list(run.scenario.faults)
        self.undo: list[tuple[float, str, Callable[[], None]]] = []

    def due(self, t: float) -> bool:
        """True when something is to be done at t (cheap check for the loop)."""
        return bool(self.pending and self.pending[0].at_s <= t) or bool(self.undo and self.undo[0][0] <= t)

    def apply(self, t: float) -> None:
        """Inject every fault due at t and undo every one that has ended."""
        r = self.run
        while self.undo and self.undo[0][0] <= t:
            _, kind, fn = self.undo.pop(0)
            fn()
            r.recorder.fault(t, kind, "ended")
        while self.pending and self.pending[0].at_s <= t:
            f = self.pending.pop(0)
            note = self._inject(f, t)
            r.recorder.fault(t, f.kind, note)

    def _later(self, t: float, kind: str, fn: Callable[[], None]) -> None:
        self.undo.append((t, kind, fn))
        self.undo.sort(key=lambda u: u[0])

    def _inject(self, f: Fault, t: float) -> str:
        r = self.run
        w = r.world
        if f.kind == "link_cut":
            r.link.cut = True
            r.recorder.link_cut(t)

            def replug() -> None:
                r.link.cut = False

            self._later(t + f.duration_s, "link_replug", replug)
            return f"unplugged for {f.duration_s:g} s"
        if f.kind == "corrupt_bytes":
            r.arduino.corrupt(f.count)
            return f"{f.count} bytes to the Arduino corrupted"
        if f.kind == "gps_loss":
            w.lose_gps(f.duration_s)
            return f"no fix for {f.duration_s:g} s"
        if f.kind == "gps_jump":
            w.jump_gps(f.duration_s, f.jump_m)
            return f"fixes {f.jump_m:g} m off for {f.duration_s:g} s"
        if f.kind == "stuck_sensor":
            w.stick(f.sensor, f.duration_s)
            return f"{f.sensor} stuck for {f.duration_s:g} s"
        if f.kind == "modem_gone":
            fake = _fake_modem(r.parts)
            if fake is None:
                return "no simulated modem in this run"
            fake.set_mute(True)
            self._later(t + f.duration_s, "modem_back", lambda: fake.set_mute(False))
            return f"modem silent for {f.duration_s:g} s"
        return "unknown fault kind"  # unreachable: scenario validation names the allowed kinds


class SimPi:
    """The Pi's planned power-down and its boot, in the simulator: the real PowerDown with a command runner that
    sets the world's wake alarm and halts the world's Pi, and a boot that starts a new supervisor the way
    `ramudroid run` starts after power-up (what the store would hand it: the mode, the e-stop, the route
    progress, and a critical battery already reported)."""

    def __init__(self, run: SimRun) -> None:
        self.run = run
        self.last_core: Any = None
        self.last_nav: Any = None
        self.last_plan: PowerDownPlan | None = None

    def _command(self, argv: Any) -> None:
        w = self.run.world
        if argv and argv[0] == SIM_WAKE:
            start = w.utc_time(0.0).timestamp()
            w.set_wake_alarm(float(argv[1]) - start)
        elif tuple(argv) == tuple(self.run.settings.power.poweroff_command):
            w.pi_halt()

    def _record(self, reason: str, detail: str) -> None:
        self.run.stops.append((self.run.clock.t, reason, detail))

    def power_down(self, plan: PowerDownPlan) -> bool:
        """Carry the plan out; False when the robot must stay up (no wake alarm for a night)."""
        r = self.run
        pd = PowerDown(
            poweroff_command=r.settings.power.poweroff_command,
            wake_command=(SIM_WAKE, "{epoch}"),
            run=self._command,
            record_reason=self._record,
            close=[("braked, progress saved", r.supervisor.close)],
        )
        if not pd.arm(plan):
            r.supervisor.refuse_power_down()
            return False
        self.last_core, self.last_nav, self.last_plan = r.supervisor.core, r.supervisor.nav, plan
        pd.finish(plan)
        r.link.close()
        r.parts.relay.select(PowerSource.BATTERY)  # the relay's coil loses the Pi's GPIO: released
        r.supervisor = None
        return True

    def crashed(self) -> None:
        """The supply went without a power-down (the charge controller's cut): no goodbye, no record."""
        r = self.run
        if r.supervisor is not None:
            self.last_core, self.last_nav, self.last_plan = r.supervisor.core, r.supervisor.nav, None
            r.link.close()
            r.parts.relay.select(PowerSource.BATTERY)
            r.supervisor = None

    def boot(self) -> None:
        """Power came back: a new process, a new link to the same Arduino, the state the store kept."""
        r = self.run
        r.link = DirectLink(r.arduino, r.clock, watchdog_ms=r.settings.hardware.arduino_watchdog_ms)
        sup = _supervisor(r.settings, r.parts, r.link, r.world, r.outbox, r.commands, r.telemetry, r.clock)
        core = self.last_core
        if core is not None:
            # Boot rule (issue 9): a person's stop stays; the battery's alerts were already sent before the stop.
            plan = self.last_plan
            sup.core = sup.core._replace(
                mode=core.mode if core.mode is Mode.AUTO else Mode.PAUSED,
                estop=core.estop,
                critical=plan is not None and plan.reason == "critical_battery",
                low_battery=core.low_battery,
            )
            sup.nav = self.last_nav
        r.supervisor = sup
        r.boots += 1


def _fake_modem(parts: Any) -> Any:
    """The FakeSim800 behind the parts' simulated modem, if there is one."""
    modem = getattr(parts, "modem", None)
    for attr in ("fake", "device", "sim800"):
        fake = getattr(modem, attr, None)
        if fake is not None and hasattr(fake, "set_mute"):
            return fake
    return modem if modem is not None and hasattr(modem, "set_mute") else None


def run_scenario(
    scenario: Scenario,
    *,
    settings: Settings | None = None,
    seed: int | None = None,
    duration_s: float | None = None,
    progress: Callable[[float], None] | None = None,
) -> RunResult:
    """Run the scenario (or its first duration_s seconds) as fast as it goes; brakes at the end."""
    run = build(scenario, settings, seed)
    total = scenario.duration_s if duration_s is None else min(duration_s, scenario.duration_s)
    dt = 1.0 / run.settings.control.rate_hz
    steps = round(total / dt)
    every = max(1, int(PROGRESS_EVERY_S / dt))
    stride = max(1, round(OFF_STRIDE_S / dt))
    world, arduino, rec, clock = run.world, run.arduino, run.recorder, run.clock
    relay = run.parts.relay
    faults = FaultInjector(run)
    pi = SimPi(run)
    # The loop makes millions of short-lived, acyclic objects: scanning them for reference cycles is wasted work.
    gc_threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()  # the world's tables and the site never die: keep them out of every collection
    gc.set_threshold(50_000, 50, 100)
    started = time.perf_counter()
    t = 0.0
    i = 0
    try:
        while i < steps:
            sup = run.supervisor
            n = 1 if sup is not None else min(stride, steps - i)
            i += n
            t = i * dt
            clock.t = t
            arduino.tick(t)
            world.set_power_source(relay.source)
            world.advance(n * dt, arduino.pins)
            if faults.due(t):
                faults.apply(t)
            if sup is None:
                rec.off_step(t, n * dt)
                if world.pi_state == "on":
                    pi.boot()
            elif world.pi_state != "on":
                pi.crashed()
                rec.off_step(t, n * dt)
            else:
                sup.poll_parts(t)
                rec.step(t, dt, sup.step(t), arduino.pins)
                if sup.power_down_plan is not None:
                    pi.power_down(sup.power_down_plan)
            if progress is not None and i // every != (i - n) // every:
                progress(i / steps)
    finally:
        gc.set_threshold(*gc_threshold)
        gc.unfreeze()
        if run.supervisor is not None:
            run.supervisor.close()
        _close_parts(run.parts)
        run.link.close()
    rec.finish(t)
    wall = time.perf_counter() - started
    if progress is not None:
        progress(1.0)
    return RunResult(rec.report(wall), run, wall)


def _close_parts(parts: Any) -> None:
    close = getattr(parts, "close", None)
    if close is not None:
        close()


def run_to_dir(result: RunResult, out_dir: Path, *, plots: bool = True) -> list[Path]:
    """Write report.json and the plots of a finished run."""
    return result.run.recorder.write(out_dir, result.wall_s, plots=plots)
