"""`ramudroid doctor` on the Arduino link and the GSM modem (fake devices on pseudo-terminals), and its table
fitting 100 columns whatever the errors say."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from arduino_bridge import flash as flash_mod
from arduino_bridge.fake_device import FakeArduino
from arduino_bridge.firmware_build import source_build_id
from robot.config import Settings, from_dict
from robot.drivers.cli import Check, check_arduino, check_modem, cmd_doctor, format_table, run_doctor
from sim.devices.modem import FakeSim800

pytestmark = pytest.mark.timeout(60)


def hw(**kw: object) -> Settings:
    return from_dict({"hardware": kw})


@pytest.fixture
def arduino(tmp_path: Path) -> Iterator[FakeArduino]:
    with FakeArduino(link_dir=tmp_path, name="ramudroid-arduino") as fake:
        yield fake


def test_arduino_running_this_build_is_ok(arduino: FakeArduino) -> None:
    c = check_arduino(hw(arduino="serial", arduino_port=arduino.path))
    assert c.status == "OK"
    assert (
        c.reading
        == f"{arduino.path}: protocol 1, firmware 1.1.0, build {source_build_id():08x} (this controller's)"
    )


def test_arduino_running_another_build_warns_to_flash(tmp_path: Path) -> None:
    with FakeArduino(link_dir=tmp_path, build_id=0x0BADF00D) as old:
        c = check_arduino(hw(arduino="serial", arduino_port=old.path))
    assert c.status == "WARN" and "build 0badf00d, not this controller's" in c.reading
    assert c.hint == "ramudroid firmware flash"


def test_arduino_speaking_another_protocol_fails(tmp_path: Path) -> None:
    with FakeArduino(link_dir=tmp_path, protocol_version=2) as other:
        c = check_arduino(hw(arduino="serial", arduino_port=other.path))
    assert c.status == "FAIL" and "protocol 2" in c.reading


def test_silent_or_missing_arduino_fails_with_the_fix(
    arduino: FakeArduino, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flash_mod, "PROBE_S", 0.5)
    arduino.hang()
    c = check_arduino(hw(arduino="serial", arduino_port=arduino.path))
    assert c.status == "FAIL" and c.reading == f"no answer to HELLO on {arduino.path} at 115200 baud"
    assert "ramudroid firmware flash" in c.hint
    c = check_arduino(hw(arduino="serial", arduino_port=str(tmp_path / "gone")))
    assert c.status == "FAIL" and "no such device" in c.reading
    assert check_arduino(Settings()).reading.startswith("simulated: firmware 1.1.0, build")


def test_modem_answers_has_its_sim_is_registered_and_has_signal() -> None:
    with FakeSim800(signal=18) as modem:
        c = check_modem(hw(modem="serial", modem_port=modem.port))
        assert "AT+CPIN?" in modem.commands
    assert c.status == "OK"
    assert c.reading == "AT ok, SIM READY, home network, signal 18/31 (-77 dBm)"
    with FakeSim800(signal=5) as weak:
        c = check_modem(hw(modem="serial", modem_port=weak.port))
    assert c.status == "WARN" and c.hint == "weak signal: move the antenna"


def test_modem_without_network_or_answer_warns_the_robot_cleans_without_sms() -> None:
    with FakeSim800(registered=False) as modem:
        c = check_modem(hw(modem="serial", modem_port=modem.port))
    assert c.status == "WARN" and "not registered" in c.reading and "antenna" in c.hint
    with FakeSim800() as mute:
        mute.set_mute(True)
        c = check_modem(hw(modem="serial", modem_port=mute.port))
    assert c.status == "WARN" and "no answer to AT" in c.reading
    assert check_modem(Settings()).reading == "not fitted"


def test_table_fits_100_columns_whatever_the_errors_say(tmp_path: Path) -> None:
    checks = run_doctor(
        hw(gps="pi", scale="pi", lcd="pi", arduino="serial", arduino_port=str(tmp_path / ("x" * 30)))
    )
    checks.append(Check("relay", "pi", False, "x" * 250, "y" * 120))
    table = format_table(checks)
    assert max(len(line) for line in table.splitlines()) <= 100
    parts = [line.split()[0] for line in table.splitlines() if line[:1].strip()]
    assert parts == ["PART", "gps", "scale", "rain", "distance", "side", "power", "camera", "relay", "lcd", "arduino",
                     "modem", "relay"]  # fmt: skip
    assert "-> check HX711" in table


def test_doctor_exit_code_follows_the_required_parts(
    arduino: FakeArduino, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "robot.toml"
    cfg.write_text(f'[hardware]\narduino = "serial"\narduino_port = "{arduino.path}"\nlcd = "none"\n')
    assert cmd_doctor(argparse.Namespace(config=str(cfg))) == 0
    out = capsys.readouterr().out
    assert "\narduino   serial  OK      " in out and "\nlcd       none    OK      not fitted" in out
    cfg.write_text(f'[hardware]\narduino = "serial"\narduino_port = "{tmp_path / "unplugged"}"\n')
    assert cmd_doctor(argparse.Namespace(config=str(cfg))) == 1
    assert "required part(s) failed: arduino" in capsys.readouterr().err
