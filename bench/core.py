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


def tick_cpu_ms(n: int = 20_000) -> float:
    """CPU time of one whole supervisor tick (read parts, navigate, decide, apply, publish) in the simulator."""
    from arduino_bridge.direct import DirectLink
    from arduino_bridge.sim_arduino import SimArduino
    from robot.alerts import AlertOutbox
    from robot.commands import CommandQueue
    from robot.config import Settings
    from robot.hardware.factory import build_parts
    from robot.navigation import demo_site
    from robot.supervisor import Supervisor
    from robot.telemetry import TelemetryBus

    settings = Settings()
    now = [0.0]
    arduino = SimArduino()
    link = DirectLink(arduino, lambda: now[0])
    with build_parts(settings) as parts:
        sup = Supervisor(
            settings,
            parts,
            link,
            site=demo_site(),
            outbox=AlertOutbox(),
            commands=CommandQueue(),
            telemetry=TelemetryBus(),
        )
        for i in range(200):  # through the boot fault
            now[0] = i * 0.05
            sup.poll_parts(now[0])
            sup.step(now[0])
        t0 = time.process_time()
        for i in range(200, 200 + n):
            now[0] = i * 0.05
            arduino.tick(now[0])
            sup.poll_parts(now[0])
            sup.step(now[0])
        return round((time.process_time() - t0) / n * 1000, 4)
