"""The fake NMEA GPS: sentences with correct checksums that pynmea2 and our driver read back, on a pty."""

from __future__ import annotations

import os
import select
from datetime import UTC, datetime

import pynmea2
import pytest

from robot.drivers.gps import NmeaDecoder
from robot.errors import GpsError
from robot.hardware.interfaces import GpsFix
from sim.devices.gps import FakeGps, checksum, nmea_epoch

FIX = GpsFix(
    time=datetime(2024, 3, 15, 6, 30, 5, tzinfo=UTC),
    lat=12.9716763,
    lon=77.5945821,
    mode=3,
    speed=1.1,
    track=252.4,
    hdop=0.9,
    sats=9,
)


def test_checksum_is_the_xor_of_the_body() -> None:
    # A textbook sentence: $GPGGA,123519,...*47
    body = "GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"
    assert checksum(body) == "47"


def test_epoch_sentences_parse_back_with_pynmea2() -> None:
    lines = nmea_epoch(FIX)
    assert [line[3:6] for line in lines] == ["GGA", "RMC", "GSA", "VTG"]
    msgs = [pynmea2.parse(line.strip(), check=True) for line in lines]
    gga, rmc, gsa, vtg = msgs
    assert gga.latitude == pytest.approx(FIX.lat, abs=1e-6)
    assert gga.longitude == pytest.approx(FIX.lon, abs=1e-6)
    assert gga.gps_qual == 1 and int(gga.num_sats) == 9 and float(gga.horizontal_dil) == pytest.approx(0.9)
    assert rmc.status == "A" and rmc.datestamp.isoformat() == "2024-03-15"
    assert float(rmc.spd_over_grnd) == pytest.approx(1.1 * 3600 / 1852, abs=1e-3)
    assert float(rmc.true_course) == pytest.approx(252.4)
    assert gsa.mode_fix_type == "3"
    assert float(vtg.spd_over_grnd_kmph) == pytest.approx(3.96, abs=1e-3)
    assert all(line.endswith("\r\n") for line in lines)


def test_southern_western_hemispheres_are_signed() -> None:
    fix = GpsFix(FIX.time, -33.8568, -151.2153, 3, 0.0, None, 1.2, 7)
    gga = pynmea2.parse(nmea_epoch(fix)[0].strip(), check=True)
    assert gga.latitude == pytest.approx(-33.8568, abs=1e-6)
    assert gga.longitude == pytest.approx(-151.2153, abs=1e-6)


def test_no_fix_sentences_say_so() -> None:
    when = datetime(2024, 3, 15, 6, 30, 6, tzinfo=UTC)
    gga, rmc, gsa, _vtg = (pynmea2.parse(s.strip(), check=True) for s in nmea_epoch(None, when))
    assert gga.gps_qual == 0 and gga.lat == ""
    assert rmc.status == "V"
    assert gsa.mode_fix_type == "1"


def test_our_gps_driver_decodes_the_fake_receiver() -> None:
    dec = NmeaDecoder()
    fixes: list[GpsFix] = []
    second = GpsFix(
        datetime(2024, 3, 15, 6, 30, 6, tzinfo=UTC), FIX.lat + 1e-5, FIX.lon, 3, 1.0, 250.0, 1.0, 8
    )
    for fix in (FIX, second):
        for line in nmea_epoch(fix):
            fixes += dec.feed_line(line.encode())
    fixes += dec.flush()
    assert len(fixes) == 2
    got = fixes[0]
    assert got.time == FIX.time
    assert (got.lat, got.lon) == pytest.approx((FIX.lat, FIX.lon), abs=1e-6)
    assert got.mode == 3 and got.sats == 9
    assert got.speed == pytest.approx(1.1, abs=0.01)
    assert got.track == pytest.approx(252.4)


def _read_lines(fd: int, want: int) -> list[str]:
    buf = b""
    while buf.count(b"\n") < want:
        ready, _, _ = select.select([fd], [], [], 2.0)
        assert ready, "fake GPS sent nothing"
        buf += os.read(fd, 4096)
    return buf.decode("ascii").splitlines()


def test_fake_gps_talks_on_a_pseudo_terminal() -> None:
    with FakeGps(lambda: FIX, rate_hz=5.0) as gps:
        assert gps.port.startswith("/dev/pts/")
        fd = os.open(gps.port, os.O_RDONLY | os.O_NOCTTY)
        try:
            gps.write_epoch()
            gps.write_epoch()
            lines = _read_lines(fd, 8)
        finally:
            os.close(fd)
    assert len(lines) == 8
    for line in lines:
        pynmea2.parse(line, check=True)
    assert gps.epochs == 2


def test_fake_gps_thread_sends_at_its_rate_and_close_is_idempotent() -> None:
    calls = []

    def source() -> GpsFix | None:
        calls.append(1)
        return None

    gps = FakeGps(source, rate_hz=10.0).start()
    fd = os.open(gps.port, os.O_RDONLY | os.O_NOCTTY)
    try:
        lines = _read_lines(fd, 8)  # two epochs, about 0.2 s
    finally:
        os.close(fd)
        gps.close()
        gps.close()
    assert pynmea2.parse(lines[0], check=True).gps_qual == 0
    assert len(calls) >= 2


def test_rate_outside_1_to_10_hz_is_refused() -> None:
    with pytest.raises(GpsError, match="1 to 10"):
        FakeGps(lambda: None, rate_hz=20.0)


def test_fake_gps_fed_by_the_world_reports_where_the_world_says() -> None:
    from robot.core.types import ALL_BRAKED
    from sim import scenario as scen
    from sim.world import World

    world = World(scen.load("sunny_day"))
    for _ in range(200):  # 10 s: past the first fix
        world.advance(0.05, ALL_BRAKED)
    truth = world.last_fix
    assert truth is not None
    dec = NmeaDecoder()
    with FakeGps(world.gps_fix, clock=world.utc_time) as gps:
        fd = os.open(gps.port, os.O_RDONLY | os.O_NOCTTY)
        try:
            gps.write_epoch()
            world.advance(1.0, ALL_BRAKED)
            gps.write_epoch()
            lines = _read_lines(fd, 8)
        finally:
            os.close(fd)
    fixes = [f for line in lines for f in dec.feed_line(line.encode())] + dec.flush()
    assert fixes[0].time is not None
    assert abs((fixes[0].time - world.utc_time(world.t - 1.0)).total_seconds()) < 0.02
    assert (fixes[0].lat, fixes[0].lon) == pytest.approx((truth.lat, truth.lon), abs=1e-6)
