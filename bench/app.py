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
