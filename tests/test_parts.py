"""The parts table (robot/parts.py) is the one place a part is declared: config, factory, doctor, readings and
telemetry follow it, and a reading is dated by the driver's own clock when the driver keeps one."""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import pytest
from conftest import FakeLink

from robot.config import HardwareSettings, Settings, from_dict
from robot.drivers.cli import _HINTS, OPTIONAL_PARTS
from robot.hardware.factory import BENCH_PARTS, PART_NAMES, build_part
from robot.parts import BY_NAME, PARTS, POLLED, load_driver, part
from robot.supervisor import Readings, Supervisor
from robot.telemetry import Telemetry, TelemetryBus, part_list


def test_every_part_has_its_driver_choice_in_the_config_under_its_own_name() -> None:
    meta = {f.name: f.metadata for f in dataclasses.fields(HardwareSettings)}
    for p in PARTS:
        assert p.name in meta, f"hardware.{p.name} missing for part {p.name}"
        assert meta[p.name]["choices"] == p.choices
    # "scale" is the physical part: no second name for it in the readings or the counters.
    assert "tray" not in BY_NAME and "scale" in BY_NAME


def test_each_freshness_limit_names_a_real_setting() -> None:
    s = Settings()
    for p in POLLED:
        assert p.fresh_s is not None, p.name
        section, key = p.fresh_s.split(".")
        assert isinstance(getattr(getattr(s, section), key), float)


def test_the_dashboard_lists_the_polled_parts_with_their_fields_and_limits() -> None:
    telemetry_fields = {f.name for f in dataclasses.fields(Telemetry)}
    listed = part_list(
        from_dict(
            {"obstacle": {"stale_s": 0.5}, "control": {"sensor_stale_s": 3.0}, "hardware": {"side": "sim"}}
        )
    )
    assert [p["name"] for p in listed] == [p.name for p in POLLED]
    for row, spec in zip(listed, POLLED, strict=True):
        assert row["fields"] and set(row["fields"]) <= telemetry_fields, spec.name
        assert row["label"] == spec.label and row["fresh_key"] == spec.fresh_s
    limits = {p["name"]: p["fresh_s"] for p in listed}
    assert limits["distance"] == 0.5 and limits["scale"] == 3.0  # the configured values, not the defaults
    # An optional part not fitted has no tile: the side sensors are "none" by default.
    assert "side" not in [p["name"] for p in part_list(Settings())]


def test_telemetry_says_how_old_each_polled_reading_is(parts: Any) -> None:
    from robot.alerts import AlertOutbox
    from robot.commands import CommandQueue
    from robot.site_file import demo_site

    bus = TelemetryBus()
    sup = Supervisor(
        Settings(), parts, FakeLink(), site=demo_site(), outbox=AlertOutbox(), commands=CommandQueue(),
        telemetry=bus,
    )  # fmt: skip
    sup.readings.scale.value, sup.readings.scale.at = 0.4, 100.0
    sup.step(101.5)
    t = bus.latest()
    assert t is not None
    assert t.reading_age_s["scale"] == 1.5 and t.reading_age_s["distance"] is None
    assert set(t.reading_age_s) == {p.name for p in POLLED}


def test_factory_doctor_readings_and_counters_follow_the_table(parts: Any) -> None:
    assert set(PART_NAMES) == {p.name for p in PARTS if p.built}
    assert {p.name for p in PARTS if p.bench} == BENCH_PARTS
    assert {"camera", "lcd", "modem", "side"} == OPTIONAL_PARTS
    assert all(_HINTS[p.name] for p in PARTS)
    readings = [f.name for f in dataclasses.fields(Readings) if f.type == "Reading"]
    assert sorted(readings) == sorted(p.name for p in POLLED)
    from robot.alerts import AlertOutbox
    from robot.commands import CommandQueue
    from robot.site_file import demo_site
    from robot.telemetry import TelemetryBus

    bus = TelemetryBus()
    sup = Supervisor(
        Settings(), parts, FakeLink(), site=demo_site(), outbox=AlertOutbox(), commands=CommandQueue(),
        telemetry=bus,
    )  # fmt: skip
    sup.poll_parts(0.0)
    sup.step(0.0)
    t = bus.latest()
    assert t is not None
    assert set(t.counters) == {f"{p.name}_errors" for p in POLLED} | {"commands_dropped"}
    assert t.tray_kg == parts.scale.value and sup.readings.scale.at == 0.0


@pytest.mark.parametrize("spec", [p for p in PARTS if p.built or p.name == "lcd"], ids=lambda p: p.name)
def test_the_twin_implements_the_parts_interface_and_is_what_the_factory_builds(spec: Any) -> None:
    twin = load_driver(spec.twin)
    pi = load_driver(spec.pi_driver)
    wanted = [n for n in dir(spec.interface) if not n.startswith("_")]
    methods = [n for n in wanted if callable(getattr(spec.interface, n))]
    missing = [n for n in methods if not callable(getattr(pi, n, None))]
    assert not missing, f"{pi.__name__} lacks {missing} of {spec.interface.__name__}"
    built = build_part(
        spec.name, from_dict({"hardware": {"side": "sim"}})
    )  # the side sensors are "none" by default
    try:
        assert type(built) is twin
        missing = [n for n in wanted if not hasattr(built, n)]
        assert not missing, f"{twin.__name__} lacks {missing} of {spec.interface.__name__}"
    finally:
        built.close()


def test_an_unknown_or_unbuilt_part_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown part 'tray'; parts are gps, scale"):
        part("tray")
    with pytest.raises(ValueError, match="'arduino' is not built here"):
        build_part("arduino", Settings())


def test_a_reading_carries_the_drivers_own_time_not_the_poll_time(parts: Any) -> None:
    """A GPS fix that arrived 1.2 s before the poll is dated 1.2 s back, so it goes stale on time."""
    from robot.alerts import AlertOutbox
    from robot.commands import CommandQueue
    from robot.drivers.gps import SerialGps, checksum
    from robot.site_file import demo_site
    from robot.telemetry import TelemetryBus

    class Clock:
        t = 500.0

        def __call__(self) -> float:
            return self.t

    def nmea(body: str) -> bytes:
        return f"${body}*{checksum(body):02X}\r\n".encode()

    clock = Clock()
    master, slave = os.openpty()
    try:
        with SerialGps(os.ttyname(slave), 9600, stale_s=2.0, clock=clock, idle_flush_s=0.05) as gps:
            os.write(master, nmea("GPRMC,092751.000,A,5321.6802,N,00630.3371,W,0.06,31.66,280511,,,A"))
            os.write(master, nmea("GPGGA,092751.000,5321.6802,N,00630.3371,W,1,8,1.03,61.7,M,55.3,M,,"))
            # Real time only until the reader thread has decoded the epoch; 3 s is generous for a pty.
            deadline = time.monotonic() + 3.0
            while gps.stats()["fixes"] == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert gps.stats()["fixes"] == 1
            clock.t += 1.2  # the supervisor polls 1.2 s after the fix arrived
            parts.gps = gps
            sup = Supervisor(
                from_dict({"control": {"gps_stale_s": 2.0}}), parts, FakeLink(), site=demo_site(),
                outbox=AlertOutbox(), commands=CommandQueue(), telemetry=TelemetryBus(),
            )  # fmt: skip
            sup.poll_parts(100.0)
            assert sup.readings.gps.value is not None
            assert sup.readings.gps.at == pytest.approx(100.0 - 1.2)
    finally:
        os.close(master)
        os.close(slave)
