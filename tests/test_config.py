"""Configuration: defaults from the robot's real figures, one clear line for every mistake."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ramudroid.cli import main
from robot.config import Settings, as_dict, from_dict, load
from robot.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "deploy" / "ramudroid.example.toml"


def test_defaults_come_from_the_robots_real_figures() -> None:
    s = Settings()
    assert s.tray.capacity_kg == 2.0
    assert s.power.panel_wp == 60.0
    assert s.power.battery_nominal_v == 11.1
    assert s.power.battery_mah == 2200.0
    assert s.control.deadman_s == 0.5
    assert s.hardware.arduino_watchdog_ms == 300
    assert s.all_sim


def test_example_file_documents_every_key_with_its_default() -> None:
    text = EXAMPLE.read_text()
    assert load(EXAMPLE) == Settings()
    for section in dataclasses.fields(Settings):
        assert f"[{section.name}]" in text
        for f in dataclasses.fields(getattr(Settings(), section.name)):
            assert f"\n{f.name} = " in text, f"{section.name}.{f.name} is not documented in {EXAMPLE.name}"


def test_idle_stepping_may_be_off_or_as_short_as_one_control_period() -> None:
    assert from_dict({}).control.idle_step_s == 1.0
    assert from_dict({"control": {"idle_step_s": 0}}).control.idle_step_s == 0.0
    assert from_dict({"control": {"rate_hz": 10, "idle_step_s": 0.1}}).control.idle_step_s == 0.1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"tray": {"capacity": 2.0}}, "tray.capacity: unknown key"),
        ({"hardware": {"gps_stale_s": 3.0}}, "hardware.gps_stale_s: moved; set control.gps_stale_s instead"),
        ({"geometry": {"wheel_base_m": 0.0}}, "geometry.wheel_base_m = 0.0: must be between 0.1 and 2.0"),
        (
            {"obstacle": {"stop_distance_m": math.nan}},
            "obstacle.stop_distance_m = nan: must be between 0.1 and 3.0",
        ),
        (
            {"sms": {"alert_numbers": ["+919876543210", 5]}},
            "sms.alert_numbers[1] = 5: expected a quoted string",
        ),
        ({"tray": {"capacity_kg": "2"}}, "tray.capacity_kg = '2': expected a number"),
        ({"tray": {"capacity_kg": 50}}, "tray.capacity_kg = 50.0: must be between 0.2 and 10.0"),
        ({"control": {"rate_hz": True}}, "control.rate_hz = True: expected a number"),
        # Idle stepping: 0 (off) or from one control period up to 2 s.
        ({"control": {"idle_step_s": 5.0}}, "control.idle_step_s = 5.0: must be between 0.0 and 2.0"),
        ({"control": {"idle_step_s": -1}}, "control.idle_step_s = -1.0: must be between 0.0 and 2.0"),
        (
            {"control": {"idle_step_s": 0.02}},
            "control.idle_step_s = 0.02: must be 0 (off) or at least one control period (1 / control.rate_hz = 0.050 s)",
        ),
        ({"obstacle": {"max_tries": 2.5}}, "obstacle.max_tries = 2.5: expected a whole number"),
        # Below 0.3 s the distance driver's ping window would hold too few pings (one setting for both users).
        ({"obstacle": {"stale_s": 0.1}}, "obstacle.stale_s = 0.1: must be between 0.3 and 2.0"),
        ({"hardware": {"rain": "real"}}, "hardware.rain = 'real': must be one of 'sim', 'pi'"),
        # A ping cycle of 0.2 s + 38 ms: 0.3 s would hold only one of the two pings the stop needs.
        (
            {"hardware": {"distance_ping_gap_s": 0.2}},
            "obstacle.stale_s = 0.3: must hold at least 3 ping cycles of the distance sensor (0.714 s",
        ),
        ({"hardware": {"distance_ping_gap_s": 0.01}}, "hardware.distance_ping_gap_s = 0.01: must be between"),
        ({"web": {"enabled": "yes"}}, "web.enabled = 'yes': expected true or false"),
        ({"sms": {"alert_numbers": "+919876543210"}}, "sms.alert_numbers = '+919876543210': expected a list"),
        ({"sms": {"trusted_numbers": ["12ab"]}}, "sms number '12ab'"),
        ({"sms": {"trusted_numbers": ["+919876543210"]}}, "sms.pin: SMS commands"),
        ({"sms": {"pin": "12345"}}, "sms.pin: must be at least 6 digits"),
        ({"sms": {"commands": ["STATUS", "SELFDESTRUCT"]}}, "sms.commands: unknown SELFDESTRUCT"),
        ({"obstacle": {"stop_distance_m": 1.0, "clear_distance_m": 0.9}}, "must be greater than"),
        (
            {"obstacle": {"wall_stop_m": 0.8}},
            "obstacle.wall_stop_m = 0.8: must be greater than obstacle.clear_d",
        ),
        ({"power": {"night_w": 20.0}}, "power.night_w = 20.0: must be below power.shade_w"),
        ({"power": {"reserve_soc": 0.7}}, "power.reserve_soc = 0.7: need critical_soc"),
        ({"power": {"poweroff_command": []}}, "power.poweroff_command = []: give the command as a list"),
        ({"power": {"poweroff_command": "poweroff"}}, "power.poweroff_command = 'poweroff': expected a list"),
        ({"power": {"low_soc": 0.05}}, "need critical_soc"),
        ({"tray": {"empty_kg": 1.95}}, "tray.empty_kg = 1.95: must be below the full threshold"),
        ({"tray": 3}, "tray = 3: expected a [tray] table"),
        ({"robots": {}}, "robots: unknown key"),
    ],
)
def test_wrong_key_type_or_range_is_one_clear_error(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(data)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_config_check_exits_nonzero_with_one_line_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[obstacle]\nstop_distance_m = -1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "ramudroid.cli", "config", "check", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "ramudroid: obstacle.stop_distance_m = -1.0: must be between 0.1 and 3.0"
    assert "Traceback" not in proc.stderr


def test_config_check_reports_invalid_toml_and_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[tray\ncapacity_kg = 2\n")
    assert main(["config", "check", str(broken)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main(["config", "check", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read it" in capsys.readouterr().err


def test_config_check_accepts_the_example(capsys: pytest.CaptureFixture) -> None:
    assert main(["config", "check", str(EXAMPLE)]) == 0
    assert "ok" in capsys.readouterr().out


def test_config_show_hides_secrets(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = tmp_path / "r.toml"
    f.write_text('[web]\ntoken = "hunter2"\n[sms]\npin = "482913"\ntrusted_numbers = ["+919876543210"]\n')
    assert main(["-c", str(f), "config", "show"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "482913" not in out
    assert 'token = "***"' in out and 'pin = "***"' in out
    assert "+919876543210" in out
    # What `config show` prints is itself a valid configuration once the secrets are filled in again (a blank
    # PIN with trusted numbers is refused on purpose: SMS commands need one).
    shown = tmp_path / "shown.toml"
    shown.write_text(out.replace('pin = "***"', 'pin = "123456"').replace('"***"', '""'))
    assert load(shown).sms.trusted_numbers == ("+919876543210",)


def test_as_dict_round_trips() -> None:
    s = Settings()
    assert from_dict(as_dict(s, hide_secrets=False)) == s


def test_each_setting_has_one_source() -> None:
    """No key name means two things: a name in two sections must be the same setting (issue 12)."""
    seen: dict[str, str] = {}
    allowed_twice = {  # the same word, different things: each names its own part
        "enabled", "host", "port", "password_hash", "session_s", "stale_s", "password", "serial_port",
        "serial_baud", "master_key",
    }  # fmt: skip
    for section in dataclasses.fields(Settings):
        for f in dataclasses.fields(getattr(Settings(), section.name)):
            if f.name in seen and f.name not in allowed_twice:
                pytest.fail(f"{f.name} in both [{seen[f.name]}] and [{section.name}]")
            seen[f.name] = section.name


def test_geometry_reaches_navigation_and_the_simulated_world(parts: Any) -> None:
    from conftest import FakeLink

    from robot.alerts import AlertOutbox
    from robot.commands import CommandQueue
    from robot.core.types import Geometry
    from robot.site_file import demo_site
    from robot.supervisor import Supervisor
    from robot.telemetry import TelemetryBus
    from sim.scenario import load as load_scenario
    from sim.world import World

    s = from_dict({"geometry": {"wheel_base_m": 0.5, "wheel_rpm": 150.0}, "control": {"gps_stale_s": 1.5}})
    body = s.geometry.body()
    assert body == Geometry(wheel_base_m=0.5, wheel_diameter_m=0.1, wheel_rpm=150.0, radius_m=0.35)
    assert body.max_wheel_speed_mps == pytest.approx(150 / 60 * math.pi * 0.1)
    assert World(load_scenario("sunny_day"), seed=1, geometry=body).geometry is body
    sup = Supervisor(
        s, parts, FakeLink(), site=demo_site(), outbox=AlertOutbox(), commands=CommandQueue(),
        telemetry=TelemetryBus(),
    )  # fmt: skip
    assert sup.nav_config.wheel_base_m == 0.5
    assert sup.nav_config.max_speed_mps == pytest.approx(body.max_wheel_speed_mps)
    assert sup.nav_config.max_fix_age_s == sup.gps_stale_s == 1.5
