"""The camera, the simulated twins, the parts factory and `ramudroid doctor`."""

from __future__ import annotations

import argparse
import dataclasses
import io
import types
from typing import Any

import pytest
from PIL import Image

from robot.config import Settings
from robot.core.types import PowerSource
from robot.drivers.camera import PiCamera
from robot.drivers.cli import cmd_doctor, format_table, run_doctor
from robot.drivers.sim import SimCamera, SimDistance, SimRain, SimRelay
from robot.errors import CameraError, HardwareError, HardwareUnavailable
from robot.hardware.factory import build_parts
from robot.hardware.interfaces import GpsFix, PowerReading


def with_hw(**kw: Any) -> Settings:
    s = Settings()
    return dataclasses.replace(s, hardware=dataclasses.replace(s.hardware, **kw))


def test_sim_camera_test_card_is_a_jpeg_of_the_requested_size_that_changes_every_frame() -> None:
    cam = SimCamera(width=160, height=120)
    first, second = cam.snapshot_jpeg(), cam.snapshot_jpeg()
    img = Image.open(io.BytesIO(first))
    assert img.format == "JPEG" and img.size == (160, 120)
    assert first != second  # the frame number is drawn on the card
    cam.close()
    with pytest.raises(HardwareError):
        cam.snapshot_jpeg()


def test_sim_camera_passes_on_its_source() -> None:
    assert SimCamera(lambda: b"\xff\xd8 from the world").snapshot_jpeg() == b"\xff\xd8 from the world"


def test_pi_camera_through_a_fake_picamera2_module() -> None:
    calls: list[str] = []

    class FakePicamera2:
        def create_still_configuration(self, main: dict[str, Any]) -> dict[str, Any]:
            calls.append(f"config {main['size']}")
            return main

        def configure(self, cfg: Any) -> None:
            calls.append("configure")

        def start(self) -> None:
            calls.append("start")

        def capture_file(self, buf: io.BytesIO, format: str) -> None:
            Image.new("RGB", (64, 48), (90, 90, 90)).save(buf, format=format)

        def stop(self) -> None:
            calls.append("stop")

        def close(self) -> None:
            calls.append("close")

    with PiCamera(64, 48, picamera2_module=types.SimpleNamespace(Picamera2=FakePicamera2)) as cam:
        assert cam.snapshot_jpeg().startswith(b"\xff\xd8")
    cam.close()
    assert calls == ["config (64, 48)", "configure", "start", "stop", "close"]
    with pytest.raises(CameraError):
        cam.snapshot_jpeg()


def test_pi_camera_without_picamera2_says_what_to_do() -> None:
    with pytest.raises(HardwareUnavailable, match=r'hardware\.camera = "sim"'):
        PiCamera()


def test_sim_twins_wake_on_rain_start_and_obstacle_inside_stop_distance() -> None:
    wakes: list[str] = []
    weather = {"rain": False}
    rain = SimRain(lambda: weather["rain"], on_change=lambda: wakes.append("rain"))
    assert rain.is_raining() is False
    weather["rain"] = True
    assert rain.is_raining() is True and rain.is_raining() is True
    ahead: dict[str, float | None] = {"d": 2.0}
    dist = SimDistance(lambda: ahead["d"], stop_distance_m=0.5, on_change=lambda: wakes.append("near"))
    dist.distance_m()
    ahead["d"] = 0.4
    dist.distance_m()
    ahead["d"] = None
    assert dist.distance_m() is None
    assert wakes == ["rain", "near"]
    relay = SimRelay()
    relay.select(PowerSource.PANEL)
    assert relay.source == PowerSource.PANEL and relay.switches == 1


def test_factory_feeds_twins_from_the_world_and_closes_all() -> None:
    fix = GpsFix(None, 12.97, 77.59, 3, 0.5, 90.0, 0.9, 9)

    class World:
        def gps_fix(self) -> GpsFix:
            return fix

        def tray_kg(self) -> float:
            return 1.25

        def raining(self) -> bool:
            return True

        def power_reading(self) -> PowerReading:
            return PowerReading(12.0, 0.5, 11.1, -0.2, 0.3)

    parts = build_parts(Settings(), world=World())
    assert parts.gps.latest() is fix
    assert parts.scale.read_kg() == 1.25 and parts.rain.is_raining() is True
    assert parts.distance.distance_m() == 2.0  # not offered by this world: the default
    assert parts.power.read().soc == 0.3
    parts.close()
    parts.close()
    with pytest.raises(HardwareError):
        parts.scale.read_kg()
    assert build_parts(with_hw(camera="none")).camera is None


def test_factory_refuses_real_gpio_here_with_one_line_and_closes_what_it_opened() -> None:
    with pytest.raises(HardwareUnavailable) as err:
        build_parts(with_hw(rain="pi"))
    assert str(err.value) == 'no GPIO on this machine: set hardware.rain = "sim" or run on a Raspberry Pi'


def test_doctor_passes_on_the_default_all_sim_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert cmd_doctor(argparse.Namespace(config=None)) == 0
    out = capsys.readouterr().out
    for part in ("gps", "scale", "rain", "distance", "power", "camera", "relay"):
        assert f"\n{part} " in out


def test_doctor_fails_on_a_missing_required_part_but_only_warns_for_the_camera(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    checks = {c.part: c for c in run_doctor(with_hw(scale="pi", camera="pi"))}
    assert checks["scale"].status == "FAIL" and "hardware.scale" in checks["scale"].reading
    assert checks["camera"].status == "WARN"
    assert checks["rain"].status == "OK"
    assert "FAIL" in format_table(list(checks.values()))
    cfg = tmp_path / "robot.toml"
    cfg.write_text('[hardware]\ndistance = "pi"\n')
    assert cmd_doctor(argparse.Namespace(config=str(cfg))) == 1
    assert "distance" in capsys.readouterr().err
