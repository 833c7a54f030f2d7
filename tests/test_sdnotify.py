"""systemd notifications on a fake NOTIFY_SOCKET: READY=1 arrives, WATCHDOG=1 keeps coming while the control
loop steps on time, and stops while it stalls (so systemd would restart it); STOPPING=1 on the way out."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Rig

from robot.runner import Runner
from robot.sdnotify import LoopWatchdog, Notifier, watchdog_period_s

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(60)


class FakeSystemd:
    """The service manager's end of NOTIFY_SOCKET: records every datagram with its arrival time."""

    def __init__(self, path: Path | None = None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if path is None:
            self.name = f"@ramudroid-test-{uuid.uuid4().hex}"
            self.sock.bind(b"\0" + self.name[1:].encode())
        else:
            self.name = str(path)
            self.sock.bind(self.name)
        self.sock.settimeout(0.05)
        self.got: list[tuple[float, list[str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            with self._lock:
                self.got.append((time.monotonic(), data.decode().split("\n")))

    def times(self, field: str) -> list[float]:
        with self._lock:
            return [t for t, fields in self.got if field in fields]

    def fields(self) -> list[list[str]]:
        with self._lock:
            return [f for _, f in self.got]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def systemd() -> Iterator[FakeSystemd]:
    s = FakeSystemd()
    yield s
    s.close()


def wait_for(cond: Callable[[], bool], limit_s: float = 3.0) -> None:
    end = time.monotonic() + limit_s
    while not cond():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.01)


def test_notify_reaches_an_abstract_socket_in_one_datagram(systemd: FakeSystemd) -> None:
    with Notifier({"NOTIFY_SOCKET": systemd.name}) as n:
        assert n.enabled
        assert n.notify("READY=1", "STATUS=cleaning: on route")
        wait_for(lambda: bool(systemd.fields()))
    assert systemd.fields() == [["READY=1", "STATUS=cleaning: on route"]]


def test_notify_reaches_a_path_socket_and_survives_the_manager_going_away(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    manager = FakeSystemd(path)
    n = Notifier({"NOTIFY_SOCKET": str(path)})
    assert n.notify("WATCHDOG=1")
    wait_for(lambda: bool(manager.fields()))
    manager.close()
    path.unlink()
    assert not n.notify("WATCHDOG=1")  # no exception: counted, logged once
    assert not n.notify("WATCHDOG=1")
    assert (n.sent, n.errors) == (1, 2)
    n.close()
    n.close()


def test_without_systemd_nothing_is_sent() -> None:
    n = Notifier({})
    assert not n.enabled and not n.notify("READY=1")
    assert not Notifier({"NOTIFY_SOCKET": "relative/path"}).enabled


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "10000000"}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "4242"}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "4243"}, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "ten"}, None),
        ({}, None),
    ],
)
def test_watchdog_period_is_half_of_watchdog_usec_and_only_for_our_pid(
    env: dict[str, str], expected: float | None
) -> None:
    assert watchdog_period_s(env, pid=4242) == expected


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Recorder(Notifier):
    """A Notifier that records instead of sending."""

    def __init__(self, clock: Clock) -> None:
        super().__init__({})
        self.clock = clock
        self.at: list[tuple[float, tuple[str, ...]]] = []

    def notify(self, *fields: str) -> bool:
        self.at.append((self.clock.t, fields))
        return True


def test_watchdog_pings_every_period_while_steps_come_on_time_and_not_across_a_stall() -> None:
    clock = Clock()
    rec = Recorder(clock)
    wd = LoopWatchdog(rec, period_s=0.5, max_gap_s=1.0, status=lambda: "cleaning: on route", clock=clock)

    def run(seconds: float, every: float = 0.05) -> None:
        for _ in range(round(seconds / every)):
            clock.t += every
            wd.on_step(clock.t)

    run(3.0)
    pings = [t for t, _ in rec.at]
    assert len(pings) == 6 and all(0.49 < b - a < 0.56 for a, b in itertools.pairwise(pings))
    assert rec.at[0][1] == ("WATCHDOG=1", "STATUS=cleaning: on route")
    # The loop stalls for 20 s: its next step is late and sends nothing; the one after is on time again.
    before = len(rec.at)
    clock.t += 20.0
    wd.on_step(clock.t)
    assert len(rec.at) == before and wd.late_steps == 1
    run(0.05)
    assert len(rec.at) == before + 1


def test_a_limping_loop_never_feeds_the_watchdog() -> None:
    clock = Clock()
    rec = Recorder(clock)
    wd = LoopWatchdog(rec, period_s=0.5, max_gap_s=1.0, clock=clock)
    wd.on_step()
    for _ in range(20):  # a step every 1.5 s: it runs, but it does not control anything
        clock.t += 1.5
        wd.on_step()
    assert len(rec.at) == 1 and wd.late_steps == 20


def test_runner_feeds_the_watchdog_until_a_step_stalls_and_again_after(
    make_rig: Callable[..., Rig], systemd: FakeSystemd
) -> None:
    """The real Runner on fake parts: a deliberately stalled step (0.6 s, the loop thread blocked while every
    other thread runs on) shows as a gap in the pings; a pinger thread beside the loop would have kept pinging."""
    rig = make_rig()
    notifier = Notifier({"NOTIFY_SOCKET": systemd.name})
    wd = LoopWatchdog(notifier, period_s=0.05, max_gap_s=0.3)
    stall = {"armed": False, "start": 0.0, "end": 0.0}
    real_step = rig.sup.step

    def step(now: float) -> None:
        if stall["armed"]:
            stall["armed"] = False
            stall["start"] = time.monotonic()
            time.sleep(0.6)
            stall["end"] = time.monotonic()
        real_step(now)

    rig.sup.step = step  # type: ignore[method-assign]

    async def main() -> int:
        r = Runner(rig.sup, rate_hz=50, on_step=wd.on_step)
        task = asyncio.create_task(r.run(install_signals=False))
        while len(systemd.times("WATCHDOG=1")) < 5:
            await asyncio.sleep(0.01)
        stall["armed"] = True
        while not stall["end"]:
            await asyncio.sleep(0.01)
        end = time.monotonic() + 0.5
        while time.monotonic() < end:
            await asyncio.sleep(0.01)
        r.stop()
        return await task

    assert asyncio.run(main()) == 0
    notifier.close()
    pings = systemd.times("WATCHDOG=1")
    during = [
        t for t in pings if stall["start"] + 0.1 < t < stall["end"]
    ]  # 0.1: one sent just before may land late
    after = [t for t in pings if t > stall["end"]]
    assert during == []
    assert len(after) >= 5  # fed again once the loop steps on time
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) >= 0.55  # the stall, seen by the service manager
    assert sorted(gaps)[len(gaps) // 2] < 0.15  # otherwise a ping every period


def test_ramudroid_run_tells_systemd_ready_watchdog_and_stopping(
    systemd: FakeSystemd, tmp_path: Path
) -> None:
    cfg = tmp_path / "robot.toml"
    cfg.write_text(f'[robot]\nstate_dir = "{tmp_path / "state"}"\n')
    env = dict(os.environ, NOTIFY_SOCKET=systemd.name, WATCHDOG_USEC="200000", PYTHONUNBUFFERED="1")
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.run(
        [sys.executable, "-m", "ramudroid.cli", "-c", str(cfg), "run", "--no-web", "--duration", "1.5"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    wait_for(lambda: bool(systemd.times("STOPPING=1")))
    fields = systemd.fields()
    ready = [i for i, f in enumerate(fields) if "READY=1" in f]
    stopping = [i for i, f in enumerate(fields) if "STOPPING=1" in f]
    assert len(ready) == 1 and stopping == [len(fields) - 1] and ready[0] < stopping[0]
    assert any(f.startswith("STATUS=ready (simulator)") for f in fields[ready[0]])
    pings = systemd.times("WATCHDOG=1")
    assert len(pings) >= 10  # 1.5 s at one ping per 0.1 s
    assert any(f.startswith("STATUS=") and ":" in f for f in fields[-2])  # a state line with the pings
