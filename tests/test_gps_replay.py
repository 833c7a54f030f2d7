"""The NMEA decoder against real captures (gpsd's regression data) and against hostile input."""

from __future__ import annotations

import argparse
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pynmea2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robot.drivers.cli import cmd_gps_replay
from robot.drivers.gps import NmeaDecoder, checksum, decode_capture, extract_sentence
from robot.drivers.gpsd_compare import compare_dir, epoch_summary, summary

FIXTURES = Path(__file__).parent / "fixtures" / "gps"
LOGS = sorted(FIXTURES.glob("*.log"))


def nmea(body: str) -> bytes:
    """A sentence with its checksum and CRLF."""
    return f"${body}*{checksum(body):02X}\r\n".encode()


def test_fixtures_are_all_there_with_gpsd_references() -> None:
    assert len(LOGS) >= 40
    for log in LOGS:
        assert log.with_name(log.name + ".tpv").exists(), log.name


def test_replay_reproduces_at_least_99_percent_of_gpsd_fixes() -> None:
    results = compare_dir(FIXTURES)
    matched, total = summary(results)
    assert total > 1500
    assert matched / total >= 0.99, [(r.name, r.matched, r.gpsd_fixes) for r in results if r.missed]


def test_replay_gives_gpsds_fix_for_at_least_99_5_percent_of_epochs() -> None:
    results = compare_dir(FIXTURES)
    matched, total = epoch_summary(results)
    assert total > 1300
    missed = [(r.name, r.epochs_matched, r.gpsd_epochs) for r in results if r.epochs_missed]
    assert matched / total >= 0.995, missed


def test_our_fixes_are_positions_gpsd_also_reported() -> None:
    results = compare_dir(FIXTURES)
    ours = sum(r.our_fixes for r in results)
    confirmed = sum(r.ours_confirmed for r in results)
    # The few left over are first/last epochs of a capture that gpsd had not yet (or no longer) reported.
    assert confirmed / ours >= 0.98


@pytest.mark.parametrize("log", LOGS, ids=[p.name for p in LOGS])
def test_replay_prints_exact_keys_and_never_crashes(log: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    rc = cmd_gps_replay(argparse.Namespace(file=log, config=None), out=out, err=err)
    assert rc == 0
    for line in out.getvalue().splitlines():
        obj = json.loads(line)
        assert list(obj) == ["time", "lat", "lon", "mode", "speed", "track", "hdop", "sats"]
        assert obj["mode"] in (2, 3)
        assert -90 <= obj["lat"] <= 90 and -180 <= obj["lon"] <= 180
        if obj["time"] is not None:
            assert obj["time"].endswith("Z") and len(obj["time"]) == 24
            datetime.fromisoformat(obj["time"].replace("Z", "+00:00"))
    assert "rejected" in err.getvalue()


def test_replay_missing_file_is_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc = cmd_gps_replay(argparse.Namespace(file=tmp_path / "nope.log", config=None))
    assert rc == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_binary_frame_glued_to_a_sentence_still_yields_it() -> None:
    line = b"\xb5\x62\x01\x07\x5c\x00\x00\xff" + nmea(
        "GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"
    )
    text, junk = extract_sentence(line)
    assert junk and text is not None and text.startswith("$GPGGA")
    dec = NmeaDecoder()
    dec.feed_line(line)
    (fix,) = dec.flush()
    assert fix.lat == pytest.approx(48.1173) and fix.lon == pytest.approx(11.516666667)
    assert dec.rejected == {"junk_before_sentence": 1}


def test_bad_checksum_partial_and_proprietary_lines_are_counted_not_used() -> None:
    dec = NmeaDecoder()
    good = nmea("GPRMC,120000,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W")
    bad = good.replace(b"4807.038", b"4807.039")
    for line in (
        bad,
        b"$GPGGA,1200",
        nmea("PGRME,15.0,M,45.0,M,25.0,M"),
        b"\x00\x01\x02",
        nmea("GPGSV,1,1,00"),
    ):
        assert dec.feed_line(line) == []
    assert dec.flush() == []
    assert dec.rejected == {"bad_checksum": 1, "truncated": 1, "not_nmea": 1}
    assert dec.ignored == {"proprietary": 1, "unused_type": 1}


def test_epoch_merges_gga_rmc_gsa_vtg_and_dates_from_rmc() -> None:
    dec = NmeaDecoder()
    lines = [
        nmea("GNGGA,235959.50,4807.0381,N,01131.0002,W,1,08,0.9,545.4,M,46.9,M,,"),
        nmea("GNGSA,A,3,04,05,09,12,,,,,,,,,1.5,0.9,1.2"),
        nmea("GNGSA,A,3,65,66,,,,,,,,,,,1.5,0.9,1.2"),
        nmea("GNRMC,235959.50,A,4807.0381,N,01131.0002,W,10.0,054.7,311224,,,A"),
        nmea("GNVTG,054.7,T,034.4,M,010.0,N,018.5,K,A"),
        nmea("GNGGA,000000.50,4807.0382,N,01131.0002,W,1,08,0.9,545.4,M,46.9,M,,"),
    ]
    fixes = [f for line in lines for f in dec.feed_line(line)] + dec.flush()
    first, second = fixes
    assert first.time == datetime(2024, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)
    assert (first.mode, first.sats, first.hdop, first.track) == (3, 8, 0.9, 54.7)
    assert first.speed == pytest.approx(10.0 * 1852 / 3600)
    assert first.lon < 0
    # No RMC in the second epoch: the date rolls over at midnight.
    assert second.time == datetime(2025, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)


def test_no_fix_until_date_known_gives_null_time_and_invalid_epochs_give_nothing() -> None:
    dec = NmeaDecoder()
    lines = [
        nmea("GPGGA,101010,4807.038,N,01131.000,E,1,05,1.1,5.0,M,,M,,"),
        nmea("GPGGA,101011,4807.038,N,01131.000,E,0,00,,,M,,M,,"),
        nmea("GPGGA,101012,,,,,0,00,,,M,,M,,"),
    ]
    (fix,) = [f for line in lines for f in dec.feed_line(line)] + dec.flush()
    assert fix.time is None and fix.mode == 3 and fix.sats == 5


def test_simulator_mode_quality_8_is_not_a_position() -> None:
    dec = NmeaDecoder()
    dec.feed_line(nmea("GPGGA,125106,3854.5087,N,07726.4523,W,8,10,2.0,268.8,M,-33.9,M,,"))
    assert dec.flush() == []


def test_coordinates_agree_with_pynmea2_on_every_good_gga_and_rmc() -> None:
    checked = 0
    for log in LOGS[:30]:
        for raw in log.read_bytes().split(b"\n"):
            text, _ = extract_sentence(raw)
            if not text or text[3:6] not in ("GGA", "RMC"):
                continue
            try:
                msg = pynmea2.parse(text, check=True)
                want = (msg.latitude, msg.longitude)
            except (pynmea2.ParseError, ValueError, AttributeError, TypeError):
                continue
            if not msg.lat or not msg.lon:
                continue
            dec = NmeaDecoder()
            dec.feed_line(raw)
            dec._epoch.no_fix = False  # read the parsed position whatever the fix flags said
            dec._epoch.gsa_mode = None
            e = dec._epoch
            if e.lat is None:
                continue
            assert (e.lat, e.lon) == pytest.approx(want, abs=1e-9), text
            checked += 1
    assert checked > 300


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.binary(max_size=120),
            st.sampled_from(
                [
                    nmea("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
                    b"$GPRMC,,,,*00",
                    b"$",
                    b"$*",
                    b"$GPGGA,99,9,9,9,9,9,9,9,9,9,9,9,9,9*",
                    nmea("GPGGA,ab,cd,N,ef,E,1,xx,yy,zz,M,,M,,"),
                    nmea("GPZDA,1,99,99,9999,00,00"),
                    nmea("GPRMC,120000,A,9999.99,N,18100.0,E,x,y,999999,,"),
                ]
            ),
        ),
        max_size=40,
    )
)
def test_decoder_never_raises_on_any_bytes(chunks: list[bytes]) -> None:
    fixes, _dec = decode_capture(b"\n".join(chunks))
    for f in fixes:
        assert -90 <= f.lat <= 90 and -180 <= f.lon <= 180


def test_last_valid_position_of_an_epoch_wins_as_in_gpsds_cycle_report() -> None:
    dec = NmeaDecoder()
    dec.feed_line(nmea("GPGGA,101010.00,4807.0381,N,01131.0002,E,1,08,0.9,545.4,M,46.9,M,,"))
    dec.feed_line(nmea("GPRMC,101010.00,A,4807.0390,N,01131.0010,E,0.0,0.0,010624,,,A"))
    (fix,) = dec.flush()
    assert fix.lat == pytest.approx(48 + 7.039 / 60, abs=1e-9)
    assert fix.lon == pytest.approx(11 + 31.001 / 60, abs=1e-9)
    assert fix.sats == 8 and fix.hdop == 0.9  # GGA's figures stay: RMC does not carry them


def test_rtk_quality_and_gst_error_estimate_reach_the_fix() -> None:
    dec = NmeaDecoder()
    dec.feed_line(nmea("GNGGA,101010.00,4807.03810123,N,01131.00020456,E,4,24,0.5,545.4,M,46.9,M,1.0,0000"))
    dec.feed_line(nmea("GNRMC,101010.00,A,4807.03810123,N,01131.00020456,E,0.01,,010624,,,R,V"))
    dec.feed_line(nmea("GNGST,101010.00,0.012,0.010,0.008,45.0,0.012,0.016,0.030"))
    (fix,) = dec.flush()
    assert fix.quality == 4
    assert fix.std_m == pytest.approx(((0.012**2 + 0.016**2) / 2) ** 0.5)
    # A GST of another epoch is stale and not used; RTK float comes through as quality 5.
    dec.feed_line(nmea("GNGGA,101011.00,4807.03810123,N,01131.00020456,E,5,24,0.5,545.4,M,46.9,M,1.0,0000"))
    dec.feed_line(nmea("GNGST,101010.00,0.012,0.010,0.008,45.0,0.012,0.016,0.030"))
    (fix,) = dec.flush()
    assert fix.quality == 5 and fix.std_m is None


def test_sbas_mode_letter_gives_differential_quality_without_gga() -> None:
    dec = NmeaDecoder()
    dec.feed_line(nmea("GPRMC,101010.00,A,4807.0381,N,01131.0002,E,0.0,0.0,010624,,,D"))
    (fix,) = dec.flush()
    assert fix.quality == 2


def test_invalid_date_gives_no_fix_and_is_counted() -> None:
    dec = NmeaDecoder()
    out = dec.feed_line(nmea("GPRMC,000231.099,A,4829.0005,N,00022.0015,E,0.15,212.28,2208-1,,,A"))
    out += dec.feed_line(nmea("GPRMC,000232.000,A,4829.0005,N,00022.0015,E,0.15,212.28,310299,,,A"))
    out += dec.flush()
    assert out == []
    assert dec.rejected == {"bad_date": 2}
    # The next epoch with a good date is a fix again, with its time.
    dec.feed_line(nmea("GPRMC,000233.000,A,4829.0005,N,00022.0015,E,0.15,212.28,070419,,,A"))
    (fix,) = dec.flush()
    assert fix.time == datetime(2019, 4, 7, 0, 2, 33, tzinfo=UTC)
