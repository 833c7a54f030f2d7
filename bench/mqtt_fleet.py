"""A fleet on one broker: many MQTT bridges (the real class) fed by light simulated robots, on a virtual clock.

Each simulated robot is a few lines of state (cleaning, an obstacle now and then, battery, a position going round
its block) that publishes telemetry snapshots and raises alerts into its own outbox; its bridge is the real
MqttBridge with its own paho connection and disk spool. One thread steps them all, so a hundred robots fit on
two cores; with `speed` the virtual clock follows the wall clock (speed=1: real time) for honest latencies.
A collector with a persistent session checks that every alert arrives, through a broker restart mid-run.
"""

from __future__ import annotations

import json
import math
import os
import random
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from robot.alerts import AlertOutbox
from robot.commands import CommandQueue
from robot.core.types import ALL_BRAKED, Alert, MotorOutputs, PinState, Severity
from robot.hardware.interfaces import GpsFix
from robot.mqtt.bridge import MqttBridge
from robot.telemetry import Telemetry, TelemetryBus
from tests.mqtt_broker import Broker

DRIVING = MotorOutputs(PinState(1, 0, 180), PinState(1, 0, 180), *(PinState(1, 0, 255),) * 3)
ALERT_KINDS = ("obstacle", "tray_full", "gps_lost", "rain", "low_battery")


@dataclass
class SimRobot:
    """One robot's few moving parts and its real bridge."""

    name: str
    bridge: MqttBridge
    bus: TelemetryBus
    outbox: AlertOutbox
    rng: random.Random
    lat0: float
    lon0: float
    state: str = "cleaning"
    until: float = 0.0
    soc: float = 0.9
    raised: dict[str, float] = field(default_factory=dict)  # alert id -> wall time raised

    def tick(self, t: float, dt: float, wall: float, alert_rate: float) -> None:
        if t >= self.until:
            if self.state == "cleaning" and self.rng.random() < 0.3:
                self.state, self.until = "obstacle_stop", t + self.rng.uniform(2, 8)
            else:
                self.state, self.until = "cleaning", t + self.rng.uniform(10, 60)
        self.soc = max(0.1, self.soc - dt * 1e-4)
        a = t / 300.0 + self.lat0 * 1000
        fix = GpsFix(
            None, self.lat0 + 2e-4 * math.sin(a), self.lon0 + 2e-4 * math.cos(a), 3, 0.5, 0.0, 0.9, 9
        )
        self.bus.publish(
            Telemetry(
                at=t,
                wall=wall,
                state=self.state,
                mode="auto",
                reason="on route" if self.state == "cleaning" else "obstacle 0.4 m ahead",
                goal="route",
                power_source="panel",
                motors=DRIVING if self.state == "cleaning" else ALL_BRAKED,
                tray_kg=0.5,
                battery_v=10.5 + self.soc * 2,
                battery_soc=self.soc,
                raining=False,
                panel_w=30.0,
                fix=fix,
                link_ok=True,
            )
        )
        if self.rng.random() < alert_rate * dt:
            kind = self.rng.choice(ALERT_KINDS)
            seq = self.outbox.add(Alert(kind, Severity.WARNING, f"{kind} on {self.name}", t))
            self.raised[f"{self.bridge.boot}-{seq}"] = wall


class Collector:
    """Subscribes to every robot's alerts (QoS 1, persistent session) and states; records arrival times."""

    def __init__(self, port: int, prefix: str = "ramudroid") -> None:
        self.alerts: dict[tuple[str, str], float] = {}
        self.duplicates = 0
        self.states = 0
        self.state_latency: list[float] = []
        self.subscribed = 0
        self._lock = threading.Lock()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="fleet-collector", clean_session=False
        )
        self.client.on_connect = lambda c, *_: c.subscribe(
            [(f"{prefix}/+/alerts", 1), (f"{prefix}/+/state", 0)]
        )
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.05, 0.5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_subscribe(self, *_: Any) -> None:
        self.subscribed += 1

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        now = time.time()
        data = json.loads(msg.payload)
        with self._lock:
            if msg.topic.endswith("/state"):
                self.states += 1
                if not msg.retain:
                    self.state_latency.append(now - data["wall"])
                return
            key = (data["robot"], data["id"])
            if key in self.alerts:
                self.duplicates += 1
            else:
                self.alerts[key] = now

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _cpu_s(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run_fleet(
    robots: int = 100,
    sim_s: float = 600.0,
    dt: float = 0.25,
    restart_at: float | None = 300.0,
    outage_s: float = 20.0,
    alert_rate: float = 1 / 60,
    speed: float | None = None,
    seed: int = 1,
    workdir: Path | None = None,
    drain_timeout_s: float = 60.0,
) -> dict[str, Any]:
    """Run the fleet and return the figures (see docs/performance.md). `speed`: None = as fast as possible."""
    tmp = Path(workdir or tempfile.mkdtemp(prefix="mqtt-fleet-"))
    broker = Broker(tmp / "broker")
    broker.start()
    collector = Collector(broker.port)
    deadline = time.monotonic() + 10
    while collector.subscribed < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    vt = [0.0]
    clock = lambda: vt[0]  # noqa: E731
    fleet: list[SimRobot] = []
    for i in range(robots):
        bus, outbox = TelemetryBus(), AlertOutbox()
        name = f"robot{i:03d}"
        bridge = MqttBridge(
            name=name,
            telemetry=bus,
            outbox=outbox,
            commands=CommandQueue(),
            host="127.0.0.1",
            port=broker.port,
            spool_path=tmp / "spool" / f"{name}.db",
            clock=clock,
            pace=clock,
            discovery=True,
            reconnect_min_s=1.0,
            reconnect_max_s=8.0,
            rng=random.Random(seed * 1000 + i),
        )
        lat0, lon0 = 12.96 + (i // 10) * 0.002, 77.58 + (i % 10) * 0.002
        fleet.append(SimRobot(name, bridge, bus, outbox, random.Random(seed * 7 + i), lat0, lon0))
    broker_cpu = 0.0
    cpu0 = _cpu_s(broker.pid)
    proc_cpu0 = time.process_time()
    wall0 = time.monotonic()
    outage_wall = 0.0
    restarted = False
    in_outage_ids: set[tuple[str, str]] = set()
    try:
        steps = round(sim_s / dt)
        for k in range(steps + 1):
            vt[0] = k * dt
            if restart_at is not None and not restarted and vt[0] >= restart_at:
                broker_cpu += _cpu_s(broker.pid) - cpu0
                broker.stop()
                restarted = True
                outage_end = vt[0] + outage_s
                outage_started = time.monotonic()
            if restarted and broker.proc is None and vt[0] >= outage_end:
                broker.start()
                cpu0 = _cpu_s(broker.pid)
                outage_wall += time.monotonic() - outage_started
            wall = time.time()
            for r in fleet:
                before = len(r.raised)
                r.tick(vt[0], dt, wall, alert_rate)
                if broker.proc is None and len(r.raised) > before:
                    in_outage_ids.update((r.name, i) for i in list(r.raised)[before:])
                r.bridge.step(vt[0])
            if speed is not None:
                ahead = wall0 + vt[0] / speed - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        sim_wall = time.monotonic() - wall0
        raised = {(r.name, i): w for r in fleet for i, w in r.raised.items()}
        end = time.monotonic() + drain_timeout_s
        while time.monotonic() < end:
            vt[0] += dt
            for r in fleet:
                r.bridge.step(vt[0])
            if all(len(r.bridge.spool) == 0 for r in fleet) and raised.keys() <= collector.alerts.keys():
                break
            time.sleep(0.01)
        broker_cpu += _cpu_s(broker.pid) - cpu0
        total_wall = time.monotonic() - wall0
        stats = [r.bridge.stats for r in fleet]
        lost = sorted(set(raised) - set(collector.alerts))
        live = [
            collector.alerts[k] - raised[k]
            for k in raised
            if k in collector.alerts and k not in in_outage_ids
        ]
        sent = sum(s["states_published"] + s["spool_acked"] for s in stats)
        return {
            "robots": robots,
            "sim_s": sim_s,
            "wall_s": round(total_wall, 2),
            "sim_wall_s": round(sim_wall, 2),
            "outage_wall_s": round(outage_wall, 2),
            "alerts_raised": len(raised),
            "alerts_received": len(raised) - len(lost),
            "alerts_lost": len(lost),
            "lost_ids": lost[:10],
            "alerts_duplicated": collector.duplicates,
            "alerts_during_outage": len(in_outage_ids),
            "states_received": collector.states,
            "messages_sent": sent,
            "messages_per_s": round(sent / total_wall, 1),
            "reconnects": sum(s["connects"] for s in stats) - robots,
            "spool_left": sum(len(r.bridge.spool) for r in fleet),
            "spool_dropped": sum(s["spool_dropped"] for s in stats),
            "loop_errors": sum(s["loop_errors"] + s["handler_errors"] for s in stats),
            "broker_cpu_s": round(broker_cpu, 2),
            "broker_cpu_pct": round(100 * broker_cpu / total_wall, 1),
            "bridges_cpu_s": round(time.process_time() - proc_cpu0, 2),
            "alert_latency_ms": {
                "p50": round(1000 * (statistics.median(live) if live else 0), 1),
                "p99": round(1000 * (_pct(live, 0.99) or 0), 1),
            },
            "state_latency_ms": {
                "p50": round(1000 * (_pct(collector.state_latency, 0.5) or 0), 1),
                "p99": round(1000 * (_pct(collector.state_latency, 0.99) or 0), 1),
            },
            "per_robot": [s["connects"] for s in stats],
        }
    finally:
        for r in fleet:
            r.bridge.close()
        collector.close()
        broker.stop()


def mqtt_fleet() -> dict[str, Any]:
    """bench/run mqtt_fleet: 100 robots, 10 simulated minutes at real time, broker restart at 5 min."""
    out = run_fleet(robots=100, sim_s=600.0, dt=0.1, speed=1.0)
    out.pop("per_robot")
    return out


if __name__ == "__main__":  # pragma: no cover
    import sys

    kw = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    result = run_fleet(**kw)
    result.pop("per_robot")
    print(json.dumps(result, indent=1))
