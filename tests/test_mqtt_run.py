"""`ramudroid run` with [mqtt], as a user starts it, against a real Mosquitto: the robot appears on the broker,
obeys signed commands from `ramudroid mqtt send`, and its control loop never notices the broker coming and going."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ramudroid.cli import main
from robot.mqtt.auth import derive_key
from tests.mqtt_broker import MOSQUITTO, Broker, free_port
from tests.mqtt_helpers import Observer

ROOT = Path(__file__).resolve().parent.parent
MASTER = "city-fleet-master-" + "k" * 40
NAME = "ward7-r1"

pytestmark = [
    pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="needs Debian's mosquitto"),
    pytest.mark.timeout(120),
]


@pytest.fixture
def run(tmp_path: Path) -> Iterator[tuple[Broker, Path, subprocess.Popen[str], int]]:
    broker = Broker(tmp_path / "broker")  # not started yet: the robot boots while the broker is away
    web_port = free_port()
    cfg = tmp_path / "robot.toml"
    cfg.write_text(
        f"""
[robot]
name = "{NAME}"
state_dir = "{tmp_path / "state"}"
[web]
port = {web_port}
[mqtt]
enabled = true
host = "127.0.0.1"
port = {broker.port}
command_key = "{derive_key(MASTER, NAME)}"
[fleet]
master_key = "{MASTER}"
"""
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "ramudroid.cli", "-c", str(cfg), "run"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("ramudroid ready"):
            break
    else:
        raise AssertionError(f"ramudroid run exited with {proc.wait()} before it was ready")
    os.set_blocking(proc.stdout.fileno(), False)
    yield broker, cfg, proc, web_port
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    broker.stop()


def dashboard(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2) as r:
        return json.load(r)


def assert_control_alive(port: int) -> None:
    """The supervisor keeps publishing fresh snapshots: its loop is stepping."""
    first = dashboard(port)["at"]
    time.sleep(0.5)
    s = dashboard(port)
    assert s["at"] > first and not s["stale"], s


def test_run_joins_the_broker_late_obeys_signed_commands_and_shrugs_off_an_outage(
    run: tuple[Broker, Path, subprocess.Popen[str], int], capsys: pytest.CaptureFixture[str]
) -> None:
    broker, cfg, proc, web_port = run
    assert_control_alive(web_port)  # no broker at all: the robot runs
    broker.start()
    topic = f"ramudroid/{NAME}"
    obs = Observer(broker.port, [f"{topic}/#", f"homeassistant/+/{NAME}/+/config"])
    try:
        obs.wait_for(lambda: obs.on(f"{topic}/status")[-1:] == [b"online"], timeout=30, what="online")
        obs.wait_for(lambda: obs.json_on(f"{topic}/state"), what="state")
        assert obs.json_on(f"{topic}/state")[-1]["robot"] == NAME
        obs.wait_for(
            lambda: len([t for t, *_ in obs.messages if t.endswith("/config")]) >= 5, what="discovery"
        )

        assert main(["-c", str(cfg), "mqtt", "send", NAME, "pause"]) == 0
        obs.wait_for(lambda: obs.json_on(f"{topic}/state")[-1]["mode"] == "paused", what="paused")
        # The same command, forged without the key, does nothing.
        obs.publish(f"{topic}/cmd", b'{"kind":"set_mode","mode":"auto"}')
        time.sleep(1.5)
        assert obs.json_on(f"{topic}/state")[-1]["mode"] == "paused"

        broker.kill()  # the broker crashes mid-run
        assert_control_alive(web_port)
        assert_control_alive(web_port)
        broker.start()
        obs.wait_for(lambda: obs.subscriptions >= 2, timeout=20, what="observer back")
        # A crashed broker forgets sessions, so wait for the robot to be back before stopping it through it.
        obs.wait_for(lambda: obs.on(f"{topic}/status").count(b"online") >= 2, timeout=40, what="robot back")
        assert main(["-c", str(cfg), "mqtt", "send", NAME, "stop"]) == 0
        obs.wait_for(lambda: obs.json_on(f"{topic}/state")[-1]["state"] == "estop", timeout=30, what="e-stop")
        capsys.readouterr()

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        obs.wait_for(lambda: obs.on(f"{topic}/status")[-1:] == [b"offline"], what="offline on shutdown")
    finally:
        obs.close()
