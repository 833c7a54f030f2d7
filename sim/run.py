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
from robot.telemetry import TelemetryBus
from sim.report import Recorder
from sim.scenario import Fault, Scenario
from sim.world import World

PROGRESS_EVERY_S = 60.0  # simulated seconds between progress callbacks


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


def build(scenario: Scenario, settings: Settings | None = None, seed: int | None = None) -> SimRun:
    """World, simulated parts, Arduino, link and the real supervisor for one scenario."""
    from robot.hardware.factory import build_parts
    from robot.supervisor import Supervisor

    cfg = sim_settings(settings)
    world = World(scenario, seed, receiver=cfg.gps.receiver)
    clock = SimClock()
    arduino = FaultyArduino(seed=world.seed)
    link = DirectLink(arduino, clock, watchdog_ms=cfg.hardware.arduino_watchdog_ms)
    parts = build_parts(cfg, world=world)
    outbox, commands, telemetry = AlertOutbox(), CommandQueue(), TelemetryBus()
    sup = Supervisor(
        cfg,
        parts,
        link,
        site=world.site,
        outbox=outbox,
        commands=commands,
        telemetry=telemetry,
        state_dir=None,
    )
    recorder = Recorder(
        world,
        stop_distance_m=cfg.obstacle.stop_distance_m,
        tray_full_kg=cfg.tray.capacity_kg * cfg.tray.full_fraction,
    )
    recorder.nav.guidance = lambda: sup.guidance
    return SimRun(
        scenario, cfg, world, clock, arduino, link, parts, sup, recorder, outbox, commands, telemetry
    )


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
    world, arduino, sup, rec, clock = run.world, run.arduino, run.supervisor, run.recorder, run.clock
    relay = run.parts.relay
    faults = FaultInjector(run)
    # The loop makes millions of short-lived, acyclic objects: scanning them for reference cycles is wasted work.
    gc_threshold = gc.get_threshold()
    gc.collect()
    gc.freeze()  # the world's tables and the site never die: keep them out of every collection
    gc.set_threshold(50_000, 50, 100)
    started = time.perf_counter()
    t = 0.0
    try:
        for i in range(1, steps + 1):
            t = i * dt
            clock.t = t
            arduino.tick(t)
            world.set_power_source(relay.source)
            world.advance(dt, arduino.pins)
            if faults.due(t):
                faults.apply(t)
            sup.poll_parts(t)
            rec.step(t, dt, sup.step(t), arduino.pins)
            if progress is not None and i % every == 0:
                progress(i / steps)
    finally:
        gc.set_threshold(*gc_threshold)
        gc.unfreeze()
        sup.close()
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
