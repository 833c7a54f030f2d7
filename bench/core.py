"""Benchmarks of the decision core and of one supervisor tick."""

from __future__ import annotations

import random
import statistics
import time

from robot.core import CoreConfig, CoreState, step
from robot.core.types import Guidance, Snapshot


def _snapshots(n: int, seed: int = 7) -> list[Snapshot]:
    """Realistic readings: driving along, the odd obstacle, tray filling, sun coming and going."""
    rnd = random.Random(seed)
    out = []
    t = 0.0
    for i in range(n):
        t = i * 0.05
        g = Guidance(
            0.8 + rnd.uniform(-0.2, 0.2),
            0.8 + rnd.uniform(-0.2, 0.2),
            gps_ok=rnd.random() > 0.01,
            reason="following",
        )
        out.append(Snapshot(
            distance_m=rnd.choice((3.0, 2.0, 1.2, 0.45)) if rnd.random() > 0.001 else None, distance_t=t,
            tray_kg=min(2.0, i * 1e-5), tray_t=t, raining=rnd.random() < 0.001, rain_t=t,
            panel_w=rnd.uniform(5, 50), battery_v=11.8, battery_soc=0.7, power_t=t,
            link_ok=rnd.random() > 0.0005, guidance=g, guidance_t=t,
        ))  # fmt: skip
    return out


def core_step_us(n: int = 100_000) -> dict[str, float]:
    """Median and p99 of one core step, in microseconds, over n realistic snapshots."""
    snaps = _snapshots(n)
    cfg = CoreConfig()
    st = CoreState()
    samples = []
    clock = time.perf_counter_ns
    for i, s in enumerate(snaps):
        t0 = clock()
        st, _ = step(st, s, i * 0.05, cfg)
        samples.append(clock() - t0)
    samples.sort()
    return {
        "median": round(statistics.median(samples) / 1000, 2),
        "p99": round(samples[int(n * 0.99)] / 1000, 2),
    }


def core_tick_cpu_ms(n: int = 20_000) -> float:
    """CPU time of the supervisor's own work in one tick (read the twins, navigate, decide, apply over the
    in-process link, publish), called in a loop while the simulated robot cleans the sunny-day route.

    Narrow: no asyncio loop, no poller threads, no dashboard, no world; bench.app.tick_cpu_ms is the whole
    running process."""
    from sim.run import build
    from sim.scenario import load

    run = build(load("sunny_day"), None, None)
    world, arduino, sup, clock = run.world, run.arduino, run.supervisor, run.clock
    dt = 1.0 / run.settings.control.rate_hz
    cpu = 0.0
    counted = 0
    t = 0.0
    try:
        for i in range(1, 1200 + n):
            t = i * dt
            clock.t = t
            arduino.tick(t)
            world.set_power_source(run.parts.relay.source)
            world.advance(dt, arduino.pins)
            t0 = time.process_time()
            sup.poll_parts(t)
            d = sup.step(t)
            if i >= 1200:  # after boot and the GPS settling: the robot is cleaning
                cpu += time.process_time() - t0
                counted += d.state.value == "cleaning"
    finally:
        sup.close()
    if counted < n // 2:
        raise RuntimeError(f"the robot cleaned in only {counted} of {n} measured ticks")
    return round(cpu / n * 1000, 4)
