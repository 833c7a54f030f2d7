"""Benchmarks of the whole `ramudroid run` process and of the obstacle-to-brake path."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_run(tmp: str) -> tuple[subprocess.Popen[str], float, float]:
    """Start `ramudroid run` (simulator + dashboard); returns the process, its start time and seconds to ready."""
    port = _free_port()
    cfg = Path(tmp) / "bench.toml"
    cfg.write_text(f'[robot]\nstate_dir = "{tmp}/state"\n[web]\nport = {port}\n')
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ramudroid.cli", "-c", str(cfg), "run"],
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
