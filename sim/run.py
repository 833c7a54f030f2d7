"""The in-process fast run: the real supervisor against the world on a virtual clock, as fast as it goes.

One loop, no threads: t += dt; the Arduino's clock ticks; the world moves with the pins the Arduino applied;
scheduled faults are injected; the supervisor reads every part and decides; the recorder notes what happened.
The link is the real protocol (DirectLink speaking frames to a SimArduino), so a link fault is a real one.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from arduino_bridge.direct import DirectLink
from arduino_bridge.sim_arduino import SimArduino
from robot.alerts import AlertOutbox
from robot.commands import CommandQueue, EmergencyStop
from robot.config import HardwareSettings, Settings
from robot.core.types import Command, CommandKind, Mode, PowerSource
from robot.power_down import PowerDown, PowerDownPlan
from robot.telemetry import TelemetryBus
from sim.report import Recorder
from sim.scenario import Fault, OperatorAction, Scenario
from sim.trace import DecisionLog
from sim.world import SENSOR_RANGE_M, World

PROGRESS_EVERY_S = 60.0  # simulated seconds between progress callbacks
# While the Pi is powered down nothing on the robot moves or decides: the world (battery, sun, rain, alarms)
# advances in one-second steps, exact for its piecewise-constant loads, 20 times fewer than at the control rate.
OFF_STRIDE_S = 1.0
# Nothing reads the telemetry during a fast run (no dashboard): once a simulated second, and on every change of
# decision, is enough for what is read after it (tests, the last state).
SIM_TELEMETRY_EVERY_S = 1.0
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

    def __init__(self, *, seed: int = 0, boot_at: float = 0.0) -> None:
        # Named, not **kwargs: compiled (`ramudroid accel`), an empty **kwargs reached SimArduino as a float.
        super().__init__(boot_at=boot_at)
        self.pending_corruptions = 0
        self.corrupted = 0
        self._k = seed * 2654435761 % 2**32 or 1

    def corrupt(self, count: int) -> None:
        """Corrupt the next `count` received bytes."""
        self.pending_corruptions += count

    def take_motors(self, outputs: Any, seq: int, now: float) -> int | None:
        if self.pending_corruptions > 0:
            return None  # the frame's bytes are to be corrupted: they go through feed()
        return super().take_motors(outputs, seq, now)

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
    trace: DecisionLog | None = None  # the decision trace (`sim run --log`), when asked for
    operator: Any = None  # the OperatorTimeline of the run (what was done, what was refused)


@dataclass
class RunResult:
    """The outcome of a run: the report dict and the objects behind it."""

    report: dict[str, Any]
    run: SimRun
    wall_s: float


def sim_settings(settings: Settings | None = None) -> Settings:
    """The given settings with every part simulated (the simulator drives no real hardware), the side sensors
    fitted: the simulated robot is the one the shipped scenarios measure (docs/behaviour.md, side sensors)."""
    base = settings if settings is not None else Settings()
    return dataclasses.replace(base, hardware=HardwareSettings(side="sim"))


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
        telemetry_every_s=SIM_TELEMETRY_EVERY_S,
    )


def build(scenario: Scenario, settings: Settings | None = None, seed: int | None = None) -> SimRun:
    """World, simulated parts, Arduino, link and the real supervisor for one scenario."""
    from robot.hardware.factory import build_parts

    cfg = sim_settings(settings)
    world = World(
        scenario,
        seed,
        receiver=cfg.gps.receiver,
        geometry=cfg.geometry.body(),
        rain_confirm_s=cfg.rain.confirm_s,
        side_bearing_deg=cfg.hardware.side_bearing_deg,
    )
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
    recorder.pass_count = lambda: run.supervisor.passes if run.supervisor is not None else None
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
            if r.trace is not None:
                r.trace.event(t, "fault", kind=kind, note="ended")
        while self.pending and self.pending[0].at_s <= t:
            f = self.pending.pop(0)
            note = self._inject(f, t)
            r.recorder.fault(t, f.kind, note)
            if r.trace is not None:
                r.trace.event(t, "fault", kind=f.kind, note=note)

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
        if f.kind == "modem_no_network":
            fake = _fake_modem(r.parts)
            if fake is None:
                return "no simulated modem in this run"
            fake.set_registered(False)
            self._later(t + f.duration_s, "network_back", lambda: fake.set_registered(True))
            return f"modem without network for {f.duration_s:g} s"
        if f.kind == "gps_degraded":
            w.degrade_gps(f.duration_s, f.cep_m)
            return f"fixes at {f.cep_m:g} m CEP for {f.duration_s:g} s"
        if f.kind in ("echo_false", "echo_missing"):
            phantom = f.kind == "echo_false"
            w.echo_fault(f.duration_s, f.distance_m if phantom else SENSOR_RANGE_M, f.rate)
            what = f"a phantom echo at {f.distance_m:g} m" if phantom else "no echo"
            return f"{what} in {f.rate * 100:g} % of readings for {f.duration_s:g} s"
        if f.kind == "relay_welded":
            w.weld_relay(f.duration_s)
            return f"relay welded on {w.source.value} for {f.duration_s:g} s"
        if f.kind == "scale_drift":
            w.drift_scale(f.duration_s, f.kg_per_h)
            return f"scale zero drifting {f.kg_per_h:+g} kg/h for {f.duration_s:g} s"
        if f.kind == "rain_sensor_wet":
            w.wet_rain_sensor(f.duration_s)
            return (
                f"rain sensor wet for {f.duration_s:g} s, {'in rain' if w.is_raining else 'under a dry sky'}"
            )
        if f.kind == "pi_reset":
            return "the Pi reset by a supply dip" if w.pi_reset() else "the Pi was not running"
        if f.kind == "pushed":
            w.push(f.distance_m, f.heading_deg)
            return f"pushed {f.distance_m:g} m towards {f.heading_deg:g} deg"
        return "unknown fault kind"  # unreachable: scenario validation names the allowed kinds


DRIVE_REPEAT_S = 0.1  # the dashboard's joystick sends a drive tick every 100 ms (web/static/app.js DRIVE_MS)


class OperatorTimeline:
    """The scenario's [operator] actions, put at their times on the one command queue the dashboard uses (the
    e-stop through the same EmergencyStop, without a store). While the Pi is off nothing takes them: refused."""

    def __init__(self, run: SimRun) -> None:
        self.run = run
        self.estop = EmergencyStop(run.commands, None, run.clock)
        # (t, order, action, left, right, noted): a drive is its ticks, then the release; only the first tick
        # and the release are noted (and traced), not every repeat.
        due: list[tuple[float, int, OperatorAction, float, float, bool]] = []
        for n, a in enumerate(run.scenario.operator):
            if a.action != "drive":
                due.append((a.at_s, n, a, 0.0, 0.0, True))
                continue
            ticks = max(1, math.ceil(a.duration_s / DRIVE_REPEAT_S))
            due += [(a.at_s + k * DRIVE_REPEAT_S, n, a, a.left, a.right, k == 0) for k in range(ticks)]
            # Released: the explicit zero stops at once (the deadman would, half a second later).
            due.append((a.at_s + a.duration_s, n, a, 0.0, 0.0, True))
        due.sort(key=lambda d: (d[0], d[1]))
        self.pending = due
        self.done: list[dict[str, Any]] = []

    def due(self, t: float) -> bool:
        """True when an action is due at t."""
        return bool(self.pending) and self.pending[0][0] <= t + 1e-9

    def apply(self, t: float) -> None:
        """Put every action due at t on the command queue."""
        r = self.run
        while self.due(t):
            _, _, a, left, right, noted = self.pending.pop(0)
            taken = r.supervisor is not None and self._put(a, t, left, right)
            if a.action == "tray_emptied":
                r.world.empty_tray()  # the person empties it whether or not the button reaches the Pi
            if not noted:
                continue
            note = (
                "" if taken else ("refused: the Pi is off" if r.supervisor is None else "refused: queue full")
            )
            self.done.append(
                {"at_s": round(t, 3), "action": a.action, "left": left, "right": right, "note": note}
            )
            if r.trace is not None:
                extra: dict[str, Any] = {"mode": a.mode} if a.mode else {}
                if a.action == "drive":
                    extra = {"left": left, "right": right}
                r.trace.event(t, "operator", action=a.action, note=note, **extra)

    def _put(self, a: OperatorAction, t: float, left: float, right: float) -> bool:
        q = self.run.commands
        if a.action == "estop":
            return self.estop("operator").applied
        if a.action == "reset":
            return q.put(Command(CommandKind.RESET, at=t, source="operator"))
        if a.action == "mode":
            return q.put(Command(CommandKind.SET_MODE, at=t, mode=Mode(a.mode), source="operator"))
        if a.action == "tray_emptied":
            return q.put(Command(CommandKind.TRAY_EMPTIED, at=t, source="operator"))
        return q.put(Command(CommandKind.DRIVE, at=t, left=left, right=right, source="operator"))


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
        if self.run.trace is not None:
            self.run.trace.event(self.run.clock.t, "power_down", reason=reason, detail=detail)

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
            if r.trace is not None:
                r.trace.event(
                    r.clock.t, "pi_lost", pi=r.world.pi_state, note="supply lost without a power-down"
                )
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
        if r.trace is not None:
            r.trace.event(r.clock.t, "boot", boots=r.boots, mode=sup.core.mode.value, estop=sup.core.estop)


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
    log: TextIO | None = None,
) -> RunResult:
    """Run the scenario (or its first duration_s seconds) as fast as it goes; brakes at the end. With `log`, the
    decision trace goes there as JSON lines (sim.trace)."""
    run = build(scenario, settings, seed)
    if log is not None:
        run.trace = DecisionLog(log, run.world)
    trace = run.trace
    total = scenario.duration_s if duration_s is None else min(duration_s, scenario.duration_s)
    dt = 1.0 / run.settings.control.rate_hz
    steps = round(total / dt)
    every = max(1, int(PROGRESS_EVERY_S / dt))
    stride = max(1, round(OFF_STRIDE_S / dt))
    world, arduino, rec, clock = run.world, run.arduino, run.recorder, run.clock
    relay = run.parts.relay
    faults = FaultInjector(run)
    operator = OperatorTimeline(run)
    run.operator = operator
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
            if operator.pending and operator.due(t):
                operator.apply(t)
            if sup is None:
                rec.off_step(t, n * dt)
                if world.pi_state == "on":
                    pi.boot()
            elif world.pi_state != "on":
                pi.crashed()
                rec.off_step(t, n * dt)
            else:
                sup.poll_parts(t)
                decision = sup.tick(t)  # a full step, or an idle tick while the robot waits braked
                rec.step(t, dt, decision, arduino.pins)
                if trace is not None:
                    trace.decision(t, decision, sup)
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
    if trace is not None:
        trace.close()
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
