"""Camera and JPEG, the simulated twins, the parts factory and `ramudroid doctor`."""

from __future__ import annotations

import argparse
import dataclasses
import io
import random
import types
from typing import Any

import pytest

from robot.config import Settings
from robot.core.types import PowerSource
from robot.drivers.camera import MjpegStreamer, PiCamera
from robot.drivers.cli import cmd_doctor, format_table, run_doctor
from robot.drivers.jpeg import encode_rgb, road_scene
from robot.drivers.sim import SimCamera, SimDistance, SimRain, SimRelay
from robot.errors import CameraError, HardwareError, HardwareUnavailable
from robot.hardware.factory import build_parts
from robot.hardware.interfaces import GpsFix, PowerReading


def with_hw(**kw: Any) -> Settings:
    s = Settings()
    return dataclasses.replace(s, hardware=dataclasses.replace(s.hardware, **kw))


def jpeg_markers(data: bytes) -> list[int]:
    """Marker codes up to the start of scan, walking segment lengths (a structural check without PIL)."""
    assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
    i, out = 2, []
    while i < len(data):
        assert data[i] == 0xFF
        m = data[i + 1]
        out.append(m)
        if m == 0xDA:
            return out
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return out


def test_test_card_is_a_baseline_jpeg_of_the_requested_size() -> None:
    data = road_scene(320, 240, frame=3, obstacle=True)
    assert jpeg_markers(data) == [0xE0, 0xDB, 0xDB, 0xC0, 0xC4, 0xC4, 0xC4, 0xC4, 0xDA]
    sof = data.index(b"\xff\xc0")
    assert int.from_bytes(data[sof + 5 : sof + 7], "big") == 240
    assert int.from_bytes(data[sof + 7 : sof + 9], "big") == 320
    pil = pytest.importorskip("PIL.Image")
    img = pil.open(io.BytesIO(data)).convert("RGB")
    assert img.size == (320, 240)
    r, g, b = img.getpixel((160, 150))  # the obstacle box
    assert r > 150 and g < 80 and b < 80
    assert road_scene(320, 240, frame=4) != road_scene(320, 240, frame=5)


def test_encoder_round_trips_arbitrary_pixels_with_odd_sizes() -> None:
    pil = pytest.importorskip("PIL.Image")
    rng = random.Random(7)
    w, h = 19, 11
    px = bytes(rng.randrange(256) for _ in range(w * h * 3))
    img = pil.open(io.BytesIO(encode_rgb(w, h, px, quality=100))).convert("RGB")
    err = [abs(a - b) for a, b in zip(img.tobytes(), px, strict=True)]
    assert max(err) <= 8 and sum(err) / len(err) < 2
    with pytest.raises(ValueError):
        encode_rgb(2, 2, b"\x00" * 5)


def test_sim_camera_and_mjpeg_streamer() -> None:
    cam = SimCamera(width=160, height=120)
    with MjpegStreamer(cam, rate_hz=50) as stream:
        first = stream.latest(timeout=2.0)
        assert first is not None and first.startswith(b"\xff\xd8")
        parts = list(stream.mjpeg(max_frames=2, timeout=2.0))
    assert len(parts) == 2 and parts[0] != parts[1]
    assert parts[0].startswith(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: ")
    cam.close()
    with pytest.raises(HardwareError):
        cam.snapshot_jpeg()


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
            buf.write(road_scene(64, 48))

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
