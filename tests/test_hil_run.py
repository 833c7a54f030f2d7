"""Hardware-in-the-loop: the real `ramudroid run` process, started as a user starts it, its Arduino and GSM modem
on pseudo-terminals (fake devices speaking the real protocols), its sensors simulated by a scenario.

What reached the fake Arduino is the evidence: every assertion is about pin states the Arduino applied.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from arduino_bridge.fake_device import FakeArduino
from robot.core.types import ALL_BRAKED, MotorOutputs
from sim.devices.modem import FakeSim800

ROOT = Path(__file__).resolve().parent.parent
PERIOD_S = 0.05  # one control period at the default 20 Hz
ALERT_NUMBER = "+919876543210"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _forward(p: MotorOutputs) -> bool:
    return any(ch.en > 0 and ch.in1 == 1 and ch.in2 == 0 for ch in (p.drive_left, p.drive_right))


@dataclass
class Robot:
    """A running `ramudroid run` process and the fake devices it talks to."""

    proc: subprocess.Popen[str]
    arduino: FakeArduino
    modem: FakeSim800
    port: int

    def status(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/status", timeout=2) as r:
            return json.load(r)

    def wait_for(self, what: Callable[[dict], bool], timeout: float) -> dict:
        end = time.monotonic() + timeout
        last: dict = {}
        while time.monotonic() < end:
            assert self.proc.poll() is None, f"ramudroid run exited with {self.proc.returncode}"
            try:
                last = self.status()
            except OSError:
                time.sleep(0.1)
                continue
            if what(last):
                return last
            time.sleep(0.05)
        raise AssertionError(f"timed out; last status: {last.get('state')} / {last.get('reason')}")


@pytest.fixture
def start_robot(tmp_path: Path) -> Iterator[Callable[[str], Robot]]:
    started: list[Robot] = []

    def start(scenario: str, sim_extra: str = "", hardware_extra: str = "") -> Robot:
        arduino = FakeArduino(link_dir=tmp_path, name="ttyACM0")
        modem = FakeSim800()
        port = _free_port()
        (tmp_path / "scenario.toml").write_text(scenario)
        cfg = tmp_path / "robot.toml"
        cfg.write_text(
            f"""
[robot]
state_dir = "{tmp_path / "state"}"
[hardware]
arduino = "serial"
arduino_port = "{tmp_path}/ttyACM*"
modem = "serial"
modem_port = "{modem.port}"
{hardware_extra}
[sms]
alert_numbers = ["{ALERT_NUMBER}"]
coalesce_s = 0.0
poll_s = 1.0
[web]
port = {port}
[sim]
scenario = "{tmp_path / "scenario.toml"}"
{sim_extra}
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
        robot = Robot(proc, arduino, modem, port)
        started.append(robot)
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        for line in proc.stdout:
            if line.startswith("ramudroid ready"):
                break
            assert time.monotonic() < deadline, "not ready within 20 s"
        else:
            raise AssertionError(f"ramudroid run exited with {proc.wait()} before it was ready")
        os.set_blocking(proc.stdout.fileno(), False)
        return robot

    yield start
    for r in started:
        if r.proc.poll() is None:
            r.proc.send_signal(signal.SIGCONT)
            r.proc.terminate()
            try:
                r.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                r.proc.kill()
        r.arduino.close()
        r.modem.close()


SCENARIO_HEAD = """
name = "hil"
start = 2024-03-15T11:00:00
duration_h = 2.0
seed = 3
[weather]
temp_min_c = 22.0
temp_max_c = 32.0
"""


@pytest.mark.parametrize("drivers", ["twins", "real"])
def test_boot_braked_then_cleaning_then_rain_stops_brushes_and_heads_for_shelter_within_2_s(
    start_robot: Callable[..., Robot], drivers: str
) -> None:
    # "real": the rain, distance, scale, power and relay drivers are the Pi's own, on mock pins and a fake I2C bus.
    robot = start_robot(
        SCENARIO_HEAD + 'rain = [{ from = "11:00:30", to = "11:30" }]\n',
        sim_extra=f'drivers = "{drivers}"',
        hardware_extra="rain_debounce_s = 0.5",
    )
    assert robot.arduino.history, "the Arduino heard nothing"
    assert robot.arduino.history[0][1] == ALL_BRAKED  # boot: braked, whatever it was doing

    robot.wait_for(lambda s: s["state"] == "cleaning" and s["motors"]["brush_comb"][2] > 0, 40)
    rain = robot.wait_for(lambda s: s["raining"] is True, 40)
    seen = time.monotonic()  # the reading had reached the supervisor by now (a little earlier, in fact)
    sheltering = robot.wait_for(lambda s: s["goal"] == "shelter", 5)
    # A machine whose cores are busy with other work can starve this real-time process for 250-500 ms: the link
    # or a reading goes stale and the core faults (braked), as it must; it clears after 2 s of health (below).
    starved = sheltering["state"] == "fault" and any(
        why in sheltering["reason"] for why in ("link to the Arduino lost", "reading stale", "fault clearing")
    )
    assert sheltering["state"] in ("sheltering", "sheltered", "gps_wait") or starved, sheltering
    time.sleep(0.3)
    brushes_off = [t for t, p in robot.arduino.history if t > seen - 5 and not p.brushing]
    assert brushes_off, f"brushes never stopped after the rain ({rain['reason']})"
    assert brushes_off[0] - seen <= 2.0
    assert not robot.arduino.pins.brushing
    # Heading for the shelter: the wheels turn after the rain (navigation drives to the shelter point). 5 s, and
    # the 2 s (control.fault_clear_s) a starvation fault above takes to clear.
    robot.wait_for(lambda s: s["state"] in ("sheltering", "sheltered"), 7)
    end = time.monotonic() + 3.0
    while time.monotonic() < end and not robot.arduino.pins.moving:
        time.sleep(0.05)
    assert robot.arduino.pins.moving or robot.status()["state"] == "sheltered"


def test_a_frozen_pi_is_braked_by_the_arduinos_own_watchdog_and_sigterm_brakes(
    start_robot: Callable[[str], Robot],
) -> None:
    robot = start_robot(SCENARIO_HEAD)
    robot.wait_for(lambda s: s["state"] == "cleaning", 40)
    end = time.monotonic() + 20
    while not robot.arduino.pins.moving and time.monotonic() < end:
        time.sleep(0.02)
    assert robot.arduino.pins.moving, "never drove"
    robot.proc.send_signal(signal.SIGSTOP)  # the Pi hangs mid-drive: no frames, no heartbeats
    frozen = time.monotonic()
    time.sleep(0.6)
    braked = [t for t, p in robot.arduino.history if t > frozen and p == ALL_BRAKED]
    assert braked, "the Arduino kept the motors running after the Pi went quiet"
    assert braked[0] - frozen <= 0.3 + 0.05  # 300 ms watchdog, measured in real time on a pty
    assert robot.arduino.sim.watchdog_tripped

    robot.proc.send_signal(signal.SIGCONT)
    robot.wait_for(lambda s: s["link_ok"], 5)
    robot.proc.terminate()
    assert robot.proc.wait(timeout=10) == 0
    assert robot.arduino.pins == ALL_BRAKED


def test_full_tray_stops_the_brushes_and_an_sms_reaches_the_modem(
    start_robot: Callable[[str], Robot],
) -> None:
    robot = start_robot(SCENARIO_HEAD + "[robot]\ntray_kg = 2.0\n")
    full = robot.wait_for(lambda s: s["state"] == "tray_full", 20)
    assert "tray full" in full["reason"]
    assert not any(p.brushing for _, p in robot.arduino.history), "brushes ran with a full tray"
    # Waiting for a person, the robot idles (a full step a second, docs/behaviour.md): a braked frame still goes out
    # every tick, so the Arduino's own watchdog never trips and the link never has to shake hands again.
    later = robot.wait_for(lambda s: s["at"] >= full["at"] + 3.0, 10)
    assert later["state"] == "tray_full" and later["link_ok"]
    for count in ("handshakes", "resyncs"):
        assert later["link_stats"][count] == full["link_stats"][count], count
    assert not robot.arduino.sim.watchdog_tripped and robot.arduino.pins == ALL_BRAKED
    end = time.monotonic() + 20
    while time.monotonic() < end and not any("tray" in text.lower() for _, text in robot.modem.outbox):
        time.sleep(0.1)
    sent = [(n, t) for n, t in robot.modem.outbox if "tray" in t.lower()]
    assert sent, f"no tray SMS; modem outbox: {robot.modem.outbox}"
    assert sent[0][0] == ALERT_NUMBER


def test_obstacle_on_the_route_is_never_driven_into(start_robot: Callable[[str], Robot]) -> None:
    robot = start_robot(
        SCENARIO_HEAD
        # Handcarts across the lane: wide enough that 2.5 m of GPS error cannot steer the robot past them.
        + '[[obstacle]]\nkind = "static"\nalong_m = 8.0\noffset_m = 0.0\nradius_m = 2.5\n'
        + '[[obstacle]]\nkind = "static"\nalong_m = 20.0\noffset_m = 0.0\nradius_m = 2.5\n'
    )
    robot.wait_for(lambda s: s["state"] == "cleaning", 40)
    # A close reading, or an obstacle stop: the robot also stops on its memory of the echoes along its path
    # (issue 11), often before the sensor itself reads inside the 0.5 m stop distance.
    close: list[float] = []
    seen: dict[str, float | None] = {}  # each state and reason seen, with the least distance read in it
    end = time.monotonic() + 60
    while time.monotonic() < end and len(close) < 5:
        s = robot.status()
        d = s["distance_m"]
        key = f"{s['state']}: {s['reason']}"
        seen[key] = d if seen.get(key) is None else min(seen[key] or 9.0, d if d is not None else 9.0)
        if (d is not None and d < 0.5) or s["state"] == "obstacle_stop":
            close.append(time.monotonic())
        time.sleep(0.03)
    # Or it held itself off: navigation turns away from remembered echoes (issue 11), and with the 30 ms ping gap
    # it may keep the carts at 0.5-1 m for the whole minute, cleaning, never inside the stop distance.
    least = min((d for d in seen.values() if d is not None), default=None)
    assert close or (least is not None and least < 1.0), f"the robot never came near the obstacles: {seen}"
    time.sleep(PERIOD_S * 2)
    for t in close:
        # Within one control period of the supervisor publishing a close reading or an obstacle stop, nothing
        # drives forward.
        assert not _forward(robot.arduino.pins_at(t + PERIOD_S)), t
