"""Nothing lost to kill -9: the alert store and the SMS outbox, killed 50 times at random moments, then the robot's
own process killed right after it acknowledged an e-stop.

The first test runs the store, the alert outbox, the SMS service and the modem driver (the code `ramudroid run`
uses) in child processes that raise numbered alerts and send them through the fake SIM800 on a pseudo-terminal,
and kills each child at a random moment: while it commits, while it talks to the modem, while it starts. The fake
modem lives in this process, so it counts every SMS that really went out. The children are forked from a
forkserver that has imported everything once, so 50 of them take seconds, not minutes.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import traceback
import urllib.request
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from robot.alerts import AlertOutbox
from robot.commands import CommandQueue
from robot.core.types import Alert, Severity
from robot.gsm.modem import Sim800Modem
from robot.gsm.service import SmsService
from robot.store import DB_FILE, Store
from robot.telemetry import TelemetryBus
from sim.devices.modem import FakeSim800

pytestmark = pytest.mark.timeout(120)

OWNER = "+919876543210"
KILLS = 50
ALERTS = 1000
ALERTS_PER_S = 400  # each run raises alerts at this pace while it sends them
ROOT = Path(__file__).resolve().parent.parent


def _child(db: str, port: str, total: int, ready: Connection) -> None:
    """One run: raise alerts numbered on from what is stored, and send every pending SMS, until told to stop."""
    store = Store(db)
    outbox = AlertOutbox(store=store)
    modem = Sim800Modem(port, timeout=1.0, resync_s=0.01)
    service = SmsService(
        modem,
        outbox,
        CommandQueue(),
        TelemetryBus(),
        alert_numbers=[OWNER],
        trusted_numbers=[],
        coalesce_s=0.0,
        poll_s=3600.0,
        retry_s=0.01,
        retry_max_s=0.05,
        max_pending=10_000,
    )
    n = store.alert_count()
    ready.send(n)
    try:
        _work(store, outbox, service, n, total, ready)
    except BaseException:
        ready.send(traceback.format_exc())  # the parent shows why a child ended by itself
        raise


def _work(
    store: Store, outbox: AlertOutbox, service: SmsService, n: int, total: int, ready: Connection
) -> None:
    next_at = time.monotonic()
    while True:
        if n < total and time.monotonic() >= next_at:
            n += 1
            next_at += 1.0 / ALERTS_PER_S
            outbox.add(Alert("crash_test", Severity.CRITICAL, f"alert {n}", time.monotonic()))
        service.poll_once()
        time.sleep(0.0005)
        if n >= total and not store.pending_sms():
            ready.send("done")
            return


def test_fifty_kills_at_random_moments_lose_no_committed_alert_and_resend_only_the_one_a_kill_interrupted(
    tmp_path: Path,
) -> None:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["robot.store", "robot.gsm.service", "robot.gsm.modem", "serial", __name__])
    db = str(tmp_path / DB_FILE)
    rng = random.Random(9)
    with FakeSim800() as fake:
        assert fake.port is not None
        killed_at: list[int] = []
        for _ in range(KILLS):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_child, args=(db, fake.port, ALERTS, child), daemon=True)
            proc.start()
            assert parent.poll(10.0), "child never got ready"
            killed_at.append(parent.recv())
            time.sleep(rng.uniform(0.0, 0.08))  # mid-commit, mid-send, mid-setup: wherever it is
            if proc.exitcode is not None:
                raise AssertionError(
                    f"child died by itself ({proc.exitcode}): {parent.recv() if parent.poll() else ''}"
                )
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(5.0)
            assert proc.exitcode == -signal.SIGKILL
        parent, child = ctx.Pipe()
        last = ctx.Process(target=_child, args=(db, fake.port, ALERTS, child), daemon=True)
        last.start()  # one run to the end: everything committed goes out
        assert parent.poll(10.0)
        parent.recv()
        assert parent.poll(60.0) and parent.recv() == "done"
        last.join(5.0)
        sent = Counter(text for number, text in fake.outbox if number == OWNER)
        order = [int(text.rsplit(" ", 1)[1]) for number, text in fake.outbox if number == OWNER]

    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        committed = [m for (m,) in raw.execute("SELECT message FROM alerts ORDER BY id")]
        unhandled = raw.execute("SELECT COUNT(*) FROM alerts WHERE sms_done = 0").fetchone()[0]
    assert committed == [f"alert {i}" for i in range(1, ALERTS + 1)]  # in order, none twice, none lost
    assert unhandled == 0
    per_alert = [sent[f"ramudroid CRITICAL: alert {i}"] for i in range(1, ALERTS + 1)]
    assert min(per_alert) >= 1, "a committed alert never went out"
    # A send is recorded right after the modem's answer, before the next one starts: a kill in between sends
    # that one alert again, first thing in the next run, and nothing else again. So the modem sees the alerts
    # in order, an alert repeated only straight after itself, and at most one repeat per kill. (Not "at most
    # twice each": on a loaded machine two kills in a row can both land before a run records its first send.)
    backwards = [(a, b) for a, b in itertools.pairwise(order) if b < a]
    assert backwards == [], f"an older alert went out again after a newer one: {backwards[:5]}"
    repeats = sum(1 for a, b in itertools.pairwise(order) if a == b)
    assert repeats == sum(per_alert) - ALERTS <= KILLS, "more alerts went out again than kills interrupted"
    assert len(set(killed_at)) > 10  # the kills really landed at many different points of the work
    print(
        f"{KILLS} kills survived; {repeats} sends repeated for {ALERTS} alerts, most of one {max(per_alert)}"
    )
    Path("/tmp/ramudroid-kills.txt").write_text(
        f"{KILLS} kill -9 survived: {ALERTS} alerts committed, all sent in order, {repeats} sends repeated "
        "(each straight after a kill interrupted it)\n"
    )


# ---- the real process: an acknowledged e-stop survives kill -9 and a clean restart ------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RunningRobot:
    """`ramudroid run` (all simulated) on a given state directory."""

    def __init__(self, cfg: Path, port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ramudroid.cli", "-c", str(cfg), "run"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("ramudroid ready"):
                break
        else:
            raise AssertionError(f"ramudroid run exited with {self.proc.wait()} before it was ready")

    def request(self, method: str, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data, headers, method=method)
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.load(r)

    def status_when(self, pred: object, timeout: float = 15.0) -> dict[str, object]:
        end = time.monotonic() + timeout
        last: dict[str, object] = {}
        while time.monotonic() < end:
            try:
                last = self.request("GET", "/api/status")
            except OSError:
                time.sleep(0.05)
                continue
            if pred(last):  # type: ignore[operator]
                return last
            time.sleep(0.05)
        raise AssertionError(f"timed out; last status {last.get('state')}: {last.get('reason')}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code


def _moving(status: dict[str, object]) -> bool:
    motors = status["motors"]
    assert isinstance(motors, dict)
    return any(ch[2] > 0 and ch[0] != ch[1] for ch in (motors["drive_left"], motors["drive_right"]))


def test_an_acknowledged_estop_survives_kill_9_and_a_restart_until_reset_and_then_stays_paused(
    tmp_path: Path,
) -> None:
    port = _free_port()
    cfg = tmp_path / "robot.toml"
    cfg.write_text(
        f'[robot]\nstate_dir = "{tmp_path / "state"}"\n[web]\nport = {port}\nestop_port = 0\n'
        '[sim]\nscenario = "sunny_day"\n'
    )
    robot = RunningRobot(cfg, port)
    try:
        robot.status_when(lambda s: s["state"] not in ("fault",))
        ack = robot.request("POST", "/api/estop")
        assert ack["persisted"] is True
    finally:
        assert robot.stop(signal.SIGKILL) == -signal.SIGKILL  # right after the 202: no time to save anything

    robot = RunningRobot(cfg, port)
    try:
        s = robot.status_when(lambda s: s["state"] == "estop")
        assert "RESET" in str(s["reason"]) or "reset" in str(s["reason"])
        assert any(a["kind"] == "boot" and "latched" in a["message"] for a in s["recent_alerts"])  # type: ignore[index]
        time.sleep(1.0)
        s = robot.status_when(lambda s: True)
        assert s["state"] == "estop" and not _moving(s)
        robot.request("POST", "/api/command", {"kind": "reset"})
        s = robot.status_when(lambda s: s["state"] == "paused")  # reset, but a person stopped it: paused
        time.sleep(1.0)
        assert not _moving(robot.status_when(lambda s: True))
    finally:
        assert robot.stop() == 0

    with Store(tmp_path / "state" / DB_FILE) as store:
        saved = store.saved()
        assert not saved.estop and saved.stop_reason is not None and saved.stop_reason.value == "signal"
    robot = RunningRobot(cfg, port)  # a clean restart: still paused, still still
    try:
        s = robot.status_when(lambda s: s["state"] not in ("fault",))
        assert s["mode"] == "paused" and not _moving(s)
    finally:
        robot.stop()
