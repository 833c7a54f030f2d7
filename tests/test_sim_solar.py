"""Sun and panel tables: pvlib's numbers, shipped compactly, and the panel behaving like its datasheet."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import pytest

from robot.errors import ScenarioError
from sim import scenario as scen
from sim import solar
from sim.world import World


def test_shipped_tables_are_what_pvlib_regenerates() -> None:
    panel = json.loads((solar.DATA_DIR / solar.panel_file_name()).read_text())
    fresh = solar.generate_panel_table()
    for row_a, row_b in zip(panel["p_mp"], fresh["p_mp"], strict=True):
        assert row_a == pytest.approx(row_b, abs=0.01)
    for row_a, row_b in zip(panel["v_mp"], fresh["v_mp"], strict=True):
        assert row_a == pytest.approx(row_b, abs=0.01)
    days = solar.shipped_days()
    assert len(days) >= 3
    for site, day in set(days):
        path = solar.DATA_DIR / solar.sun_file_name(site, day)
        assert path.is_file(), f"{path.name} missing: run python -m sim.solar"
        shipped = json.loads(path.read_text())["ghi"]
        assert shipped == pytest.approx(solar.generate_sun_day(site, day)["ghi"], abs=0.15)


def test_panel_gives_60_w_at_stc_and_about_44_w_at_noct() -> None:
    t = solar.panel_table()
    p_stc, v_stc = t.mpp(1000.0, 25.0)
    assert p_stc == pytest.approx(60.0, abs=0.3)
    assert v_stc == pytest.approx(18.1, abs=0.1)
    # NOCT conditions: 800 W/m2, cell at 47 °C (ambient 20 °C), which the NOCT model reproduces.
    assert solar.cell_temp_c(800.0, 20.0) == pytest.approx(47.0)
    p_noct, _ = t.mpp(800.0, solar.cell_temp_c(800.0, 20.0))
    assert p_noct == pytest.approx(44.0, abs=1.0)


def test_power_falls_with_temperature_about_as_the_datasheet_says() -> None:
    t = solar.panel_table()
    p25, _ = t.mpp(1000.0, 25.0)
    p55, _ = t.mpp(1000.0, 55.0)
    coeff_pct = (p55 - p25) / p25 / 30.0 * 100.0
    assert coeff_pct == pytest.approx(-0.43, abs=0.1)


def test_panel_averages_about_2_5_a_in_good_daytime_sun() -> None:
    w = World(scen.load("sunny_day"))  # 07:00 start, clear sky, Bangalore in March
    table = solar.panel_table()
    amps = []
    for t in range(3600, 10 * 3600, 60):  # 08:00 to 17:00
        g = w.irradiance(t)
        p, v = table.mpp(g, solar.cell_temp_c(g, w.ambient_temp_c(t)))
        amps.append(p / v)
    assert sum(amps) / len(amps) == pytest.approx(2.5, abs=0.3)


def test_sun_table_is_dark_at_night_and_bright_at_noon() -> None:
    day = solar.sun_day(solar.BANGALORE, date(2024, 3, 15))
    assert day.at(0.0) == 0.0
    assert day.at(23 * 60) == 0.0
    assert 900.0 < day.at(12 * 60 + 20) < 1100.0
    assert day.at(8 * 60) < day.at(10 * 60) < day.at(12 * 60)


def test_unshipped_day_is_generated_once_into_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAMUDROID_CACHE", str(tmp_path))
    site = solar.SolarSite(lat=28.61, lon=77.21, tz="Asia/Kolkata", altitude_m=216.0)
    day = solar.sun_day(site, date(2024, 12, 1))
    cached = tmp_path / "solar" / solar.sun_file_name(site, date(2024, 12, 1))
    assert cached.is_file()
    assert json.loads(cached.read_text())["ghi"] == day.ghi
    # Delhi in December: a lower sun than Bangalore in March.
    assert max(day.ghi) < max(solar.sun_day(solar.BANGALORE, date(2024, 3, 15)).ghi)


def test_unshipped_day_without_pvlib_says_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAMUDROID_CACHE", str(tmp_path))
    monkeypatch.setitem(sys.modules, "pvlib", None)
    with pytest.raises(ScenarioError, match=r"ramudroid\[sim\]"):
        solar.sun_day(solar.SolarSite(lat=10.0, lon=76.0), date(2024, 1, 2))


def test_damaged_cache_file_is_regenerated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAMUDROID_CACHE", str(tmp_path))
    site = solar.SolarSite(lat=11.0, lon=76.9)
    path = tmp_path / "solar" / solar.sun_file_name(site, date(2024, 2, 2))
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    day = solar.sun_day(site, date(2024, 2, 2))
    assert max(day.ghi) > 800.0
    assert json.loads(path.read_text())["ghi"] == day.ghi
