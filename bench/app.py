"""Benchmarks of the whole `ramudroid run` process and of the obstacle-to-brake path."""

from __future__ import annotations

import functools
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_run(tmp: str, extra_toml: str = "") -> tuple[subprocess.Popen[str], float, float]:
    """Start `ramudroid run` (simulator + dashboard); returns the process, its start time and seconds to ready."""
    port = _free_port()
    cfg = Path(tmp) / "bench.toml"
    cfg.write_text(f'[robot]\nstate_dir = "{tmp}/state"\n[web]\nport = {port}\n{extra_toml}')
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "robot.cli", "-c", str(cfg), "run"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("ramudroid ready"):
            ready = time.monotonic() - t0
            break
    else:
        raise RuntimeError(f"ramudroid run exited with {proc.wait()} before it was ready")
    # Ready means the dashboard answers too.
    with socket.create_connection(("127.0.0.1", port), timeout=2.0):
        pass
    return proc, t0, ready


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def start_to_ready_s(runs: int = 3) -> float:
    """Median seconds from starting `ramudroid run` to 'ready' (first decision made, dashboard listening)."""
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            proc, _, ready = _start_run(tmp)
            _stop(proc)
            times.append(ready)
    return round(statistics.median(times), 3)


def rss_mb(settle_s: float = 10.0) -> float:
    """Peak resident memory (VmHWM) of `ramudroid run` (simulator + dashboard) after running settle_s seconds,
    with the dashboard's status endpoint polled meanwhile."""
    import urllib.request

    with tempfile.TemporaryDirectory() as tmp:
        proc, _, _ = _start_run(tmp)
        try:
            port = int(Path(tmp, "bench.toml").read_text().rsplit("port = ", 1)[1].strip())
            end = time.monotonic() + settle_s
            while time.monotonic() < end:
                for path in ("/", "/api/status", "/api/alerts"):
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                        r.read()
                time.sleep(0.2)
            status = Path(f"/proc/{proc.pid}/status").read_text()
            hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
            return round(int(hwm.split()[1]) / 1024, 1)
        finally:
            _stop(proc)


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and all its threads so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the ")" that ends the command name: field 3 is fields[0]; utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status(port: int) -> dict[str, Any]:
    import json
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=5) as r:
        return dict(json.loads(r.read()))


@functools.cache
def _run_cpu(window_s: float = 30.0, settle_s: float = 5.0) -> dict[str, Any]:
    """Process CPU of a real `ramudroid run` (simulator, real time) over window_s seconds of control ticks.

    Everything the process does counts: the asyncio loop and the supervisor's steps, the pollers' threads,
    the twin drivers, the simulated world (which the robot would not carry: an over-estimate), the telemetry
    and the dashboard's thread (no browser connected). Ticks are counted by the process itself: the motor
    frames its link sent (one per step, plus handshakes), read from the dashboard's /api/status."""
    with tempfile.TemporaryDirectory() as tmp:
        proc, _, _ = _start_run(tmp)
        try:
            port = int(Path(tmp, "bench.toml").read_text().split("port = ", 1)[1].split()[0])
            time.sleep(settle_s)  # boot, the first GPS fixes, the route planned: the robot at work
            s0, cpu0, t0 = _status(port), _process_cpu_s(proc.pid), time.monotonic()
            time.sleep(window_s)
            s1, cpu1, t1 = _status(port), _process_cpu_s(proc.pid), time.monotonic()
        finally:
            _stop(proc)
    ticks = s1["link_stats"]["sent"] - s0["link_stats"]["sent"]
    if ticks < window_s * 5:
        raise RuntimeError(f"only {ticks:.0f} control ticks in {window_s} s: the loop is not running at its rate")
    cpu = cpu1 - cpu0
    return {
        "cpu_s": round(cpu, 2),
        "wall_s": round(t1 - t0, 2),
        "ticks": int(ticks),
        "tick_cpu_ms": round(cpu / ticks * 1000, 3),
        "cpu_pct_of_core": round(cpu / (t1 - t0) * 100, 1),
        "states": sorted({s0["state"], s1["state"]}),
    }


def tick_cpu_ms() -> float:
    """CPU milliseconds a real `ramudroid run` process spends per control tick (all its threads), over 30 s."""
    return float(_run_cpu()["tick_cpu_ms"])


def run_cpu() -> dict[str, Any]:
    """The measurement behind tick_cpu_ms: CPU seconds, wall seconds, ticks counted, % of one core, states."""
    return _run_cpu()


def obstacle_to_brake_ms(trials: int = 100) -> dict[str, float]:
    """From the distance driver returning an obstacle inside the stop distance to the brake being applied by the
    Arduino at the far end of the real serial link (ArduinoLink over a pty to the simulated Arduino).

    The robot is driven forward in manual mode, so the forward-blocking safety filter is what brakes it.
    The sensor's own latency (an HC-SR04 ping takes up to ~25 ms) comes on top of this figure.
    """
    import asyncio
    import threading

    from arduino_bridge.fake_device import FakeArduino
    from arduino_bridge.link import ArduinoLink
    from robot.alerts import AlertOutbox
    from robot.commands import CommandQueue
    from robot.config import Settings, from_dict
    from robot.core.types import Command, CommandKind, Mode
    from robot.hardware.factory import build_parts
    from robot.navigation import demo_site
    from robot.runner import Runner
    from robot.supervisor import Supervisor
    from robot.telemetry import TelemetryBus

    settings: Settings = from_dict({"control": {"start_mode": "manual"}})
    distance = [3.0]
    seen_at: list[float] = []

    class World:
        def distance_m(self) -> float:
            d = distance[0]
            if d < 0.5 and len(seen_at) < len(results) + 1:
                seen_at.append(time.monotonic())
            return d

    results: list[float] = []
    with FakeArduino() as arduino, ArduinoLink(arduino.path) as link:
        wake: list = [None]
        parts = build_parts(settings, world=World(), wake=lambda: wake[0] and wake[0]())
        commands = CommandQueue()
        sup = Supervisor(settings, parts, link, site=demo_site(), outbox=AlertOutbox(), commands=commands,
                         telemetry=TelemetryBus())  # fmt: skip
        runner = Runner(sup, rate_hz=settings.control.rate_hz)
        wake[0] = runner.wake_threadsafe
        done = threading.Event()

        def operator() -> None:
            deadline = time.monotonic() + 30
            while not link.healthy or sup.last is None or sup.last.state.value != "manual":
                if time.monotonic() > deadline:
                    break
                time.sleep(0.01)
            for _ in range(trials):
                distance[0] = 3.0
                t_end = time.monotonic() + 2.0
                while not arduino.pins.drive_left.en and time.monotonic() < t_end:
                    commands.put(Command(CommandKind.DRIVE, time.monotonic(), left=0.6, right=0.6))
                    time.sleep(0.02)
                time.sleep(0.01)
                distance[0] = 0.3
                while arduino.pins.drive_left.en and time.monotonic() < t_end:
                    time.sleep(0.0005)
                braked = next((t for t, p in reversed(arduino.history) if not p.drive_left.en), None)
                if seen_at and braked is not None and len(seen_at) > len(results):
                    results.append((braked - seen_at[len(results)]) * 1000)
            done.set()
            runner.stop()

        commands.put(Command(CommandKind.SET_MODE, time.monotonic(), mode=Mode.MANUAL))
        threading.Thread(target=operator, daemon=True).start()
        asyncio.run(runner.run(install_signals=False))
        parts.close()
    if len(results) < trials // 2:
        raise RuntimeError(f"only {len(results)} of {trials} trials completed")
    results.sort()
    return {
        "p50": round(statistics.median(results), 3),
        "p99": round(results[int(len(results) * 0.99) - 1], 3),
    }
