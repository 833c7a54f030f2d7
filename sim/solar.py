"""Sun and panel as compact tables: generated once with pvlib, then read in pure Python by the world.

pvlib gives the sun's position and clear-sky irradiance at the site (Ineichen model) and the panel's
single-diode model fitted to the datasheet (De Soto). Calling it per 50 ms step would be far too slow, so this
module turns it into two tables: per-minute clear-sky irradiance on the flat-mounted panel for one day at one
site, and the panel's maximum power point over a grid of irradiance x cell temperature. The world interpolates
them; clouds, shade and rain are applied on top by the world. Tables are JSON: the ones the shipped scenarios
need live in sim/data/ (package data), others are generated on demand into a cache directory.

Only the generate_* functions import pvlib (lazily); loading and interpolating needs the standard library.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from dataclasses import asdict, dataclass
from datetime import date as Date
from pathlib import Path
from typing import Any

from robot.errors import ScenarioError

DATA_DIR = Path(__file__).with_name("data")
TABLE_VERSION = 1
MINUTES_PER_DAY = 1440


@dataclass(frozen=True, slots=True)
class PanelDatasheet:
    """The panel's datasheet figures (MicroSun MS 12 V 60 Wp, 36 polycrystalline cells)."""

    p_max_w: float = 60.0
    v_mp: float = 18.1
    i_mp: float = 3.32
    v_oc: float = 22.32
    i_sc: float = 3.63
    cells: int = 36
    noct_c: float = 47.0
    # The datasheet prints 0.66 %/°C for Isc: ten times any real cell's, and fit_desoto fails with it.
    alpha_isc_pct: float = 0.066
    beta_voc_pct: float = -0.36
    gamma_pmax_pct: float = -0.43


@dataclass(frozen=True, slots=True)
class SolarSite:
    """Where the sun is computed: the site's origin and its time zone."""

    lat: float = 12.97
    lon: float = 77.59
    tz: str = "Asia/Kolkata"
    altitude_m: float = 920.0

    def key(self) -> str:
        """A file-name-safe identity of the site for table names."""
        return f"{self.lat:.4f}_{self.lon:.4f}_{self.altitude_m:.0f}m_{self.tz.replace('/', '-')}"


DATASHEET = PanelDatasheet()
BANGALORE = SolarSite()

# Panel grid: irradiance 0..1400 W/m2 every 25, cell temperature -10..90 °C every 5.
G_STEP = 25.0
G_COUNT = 57
T_MIN = -10.0
T_STEP = 5.0
T_COUNT = 21


def cell_temp_c(ghi: float, ambient_c: float, noct_c: float = DATASHEET.noct_c) -> float:
    """NOCT cell-temperature model: the cell runs (NOCT - 20) °C above ambient at 800 W/m2."""
    return ambient_c + (noct_c - 20.0) * ghi / 800.0


class PanelTable:
    """Maximum power point of the panel over irradiance x cell temperature, bilinear interpolation."""

    __slots__ = ("_p", "_v")

    def __init__(self, p_mp: list[list[float]], v_mp: list[list[float]]) -> None:
        if len(p_mp) != G_COUNT or any(len(r) != T_COUNT for r in p_mp):
            raise ScenarioError(
                f"panel table: expected {G_COUNT}x{T_COUNT} grid; regenerate it with sim.solar"
            )
        self._p = p_mp
        self._v = v_mp

    def _cell(self, g: float, t: float) -> tuple[int, int, float, float]:
        gi = g / G_STEP
        if gi < 0.0:
            gi = 0.0
        elif gi > G_COUNT - 1.000001:
            gi = G_COUNT - 1.000001
        ti = (t - T_MIN) / T_STEP
        if ti < 0.0:
            ti = 0.0
        elif ti > T_COUNT - 1.000001:
            ti = T_COUNT - 1.000001
        i = int(gi)
        j = int(ti)
        return i, j, gi - i, ti - j

    def mpp(self, ghi: float, cell_c: float) -> tuple[float, float]:
        """(power W, voltage V) at the maximum power point for this irradiance and cell temperature."""
        i, j, fg, ft = self._cell(ghi, cell_c)
        p, v = self._p, self._v
        p0 = p[i][j] + (p[i][j + 1] - p[i][j]) * ft
        p1 = p[i + 1][j] + (p[i + 1][j + 1] - p[i + 1][j]) * ft
        v0 = v[i][j] + (v[i][j + 1] - v[i][j]) * ft
        v1 = v[i + 1][j] + (v[i + 1][j + 1] - v[i + 1][j]) * ft
        return p0 + (p1 - p0) * fg, v0 + (v1 - v0) * fg


class SunDay:
    """Clear-sky irradiance on the flat panel, one value per local minute of one day."""

    __slots__ = ("day", "ghi", "site")

    def __init__(self, site: SolarSite, day: Date, ghi: list[float]) -> None:
        if len(ghi) != MINUTES_PER_DAY:
            raise ScenarioError(f"sun table for {day}: expected {MINUTES_PER_DAY} minutes, got {len(ghi)}")
        self.site = site
        self.day = day
        self.ghi = ghi

    def at(self, minute: float) -> float:
        """Irradiance (W/m2) at this local minute of the day (0 <= minute < 1440), linearly interpolated."""
        if minute <= 0.0:
            return self.ghi[0]
        i = int(minute)
        if i >= MINUTES_PER_DAY - 1:
            return self.ghi[-1]
        a = self.ghi[i]
        return a + (self.ghi[i + 1] - a) * (minute - i)


def cache_dir() -> Path:
    """Where generated tables are kept: $RAMUDROID_CACHE/solar, else ~/.cache/ramudroid/solar."""
    base = os.environ.get("RAMUDROID_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ramudroid"
    )
    return Path(base) / "solar"


def panel_file_name() -> str:
    return "panel.json"


def sun_file_name(site: SolarSite, day: Date) -> str:
    return f"sun_{site.key()}_{day.isoformat()}.json"


def _need_pvlib(what: str) -> Any:
    try:
        import pvlib
    except ImportError as err:
        raise ScenarioError(
            f"{what}: no table shipped or cached, and pvlib is not installed to generate it; "
            "install the simulator extra (pip install 'ramudroid[sim]') "
            "or use a shipped scenario's site and date"
        ) from err
    return pvlib


def generate_panel_table(sheet: PanelDatasheet = DATASHEET) -> dict[str, Any]:
    """Fit the single-diode model to the datasheet (pvlib fit_desoto) and tabulate the maximum power point."""
    pvlib = _need_pvlib("panel table")
    import numpy as np
    from pvlib.ivtools.sdm import fit_desoto

    params, result = fit_desoto(
        v_mp=sheet.v_mp,
        i_mp=sheet.i_mp,
        v_oc=sheet.v_oc,
        i_sc=sheet.i_sc,
        alpha_sc=sheet.i_sc * sheet.alpha_isc_pct / 100.0,
        beta_voc=sheet.v_oc * sheet.beta_voc_pct / 100.0,
        cells_in_series=sheet.cells,
    )
    if not result.success:
        raise ScenarioError(f"panel datasheet fit failed ({result.message}); check the datasheet figures")
    g = np.arange(G_COUNT, dtype=float) * G_STEP
    t = T_MIN + np.arange(T_COUNT, dtype=float) * T_STEP
    gg, tt = np.meshgrid(g, t, indexing="ij")
    gg_safe = np.where(gg > 0.0, gg, 1.0)  # the diode model is undefined in the dark; zeroed below
    il, io, rs, rsh, nnsvth = pvlib.pvsystem.calcparams_desoto(
        gg_safe,
        tt,
        alpha_sc=params["alpha_sc"],
        a_ref=params["a_ref"],
        I_L_ref=params["I_L_ref"],
        I_o_ref=params["I_o_ref"],
        R_sh_ref=params["R_sh_ref"],
        R_s=params["R_s"],
    )
    mpp = pvlib.pvsystem.max_power_point(il, io, rs, rsh, nnsvth)
    dark = gg <= 0.0
    p = np.where(dark, 0.0, np.asarray(mpp["p_mp"]))
    v = np.where(dark, 0.0, np.asarray(mpp["v_mp"]))
    return {
        "version": TABLE_VERSION,
        "datasheet": asdict(sheet),
        "params": {
            k: float(params[k]) for k in ("I_L_ref", "I_o_ref", "R_s", "R_sh_ref", "a_ref", "alpha_sc")
        },
        "g_step": G_STEP,
        "t_min": T_MIN,
        "t_step": T_STEP,
        "p_mp": [[round(float(x), 3) for x in row] for row in p],
        "v_mp": [[round(float(x), 3) for x in row] for row in v],
    }


def generate_sun_day(site: SolarSite, day: Date) -> dict[str, Any]:
    """Clear-sky horizontal irradiance per minute (pvlib Ineichen, Linke turbidity from its climatology)."""
    pvlib = _need_pvlib(f"sun table for {day} at {site.lat}, {site.lon}")
    import pandas as pd

    times = pd.date_range(day.isoformat(), periods=MINUTES_PER_DAY, freq="1min", tz=site.tz)
    loc = pvlib.location.Location(site.lat, site.lon, site.tz, altitude=site.altitude_m)
    with warnings.catch_warnings():
        # pvlib 0.16 still calls pandas APIs that pandas 3 deprecates; not ours to fix, and harmless here.
        warnings.filterwarnings("ignore", module="pvlib")
        try:
            cs = loc.get_clearsky(times, model="ineichen")
        except ImportError:  # the turbidity climatology needs h5py; a typical urban value instead
            cs = loc.get_clearsky(times, model="ineichen", linke_turbidity=3.5)
    ghi = [round(max(0.0, float(x)), 1) for x in cs["ghi"].to_numpy()]
    return {"version": TABLE_VERSION, "site": asdict(site), "date": day.isoformat(), "ghi": ghi}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # a damaged cache file is regenerated rather than trusted
    if not isinstance(data, dict) or data.get("version") != TABLE_VERSION:
        return None
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
    os.replace(tmp, path)


def _find_or_make(name: str, make: Any) -> dict[str, Any]:
    for folder in (DATA_DIR, cache_dir()):
        data = _read_json(folder / name)
        if data is not None:
            return data
    data = make()
    # A read-only home still simulates; it just regenerates next time.
    with contextlib.suppress(OSError):
        _write_json(cache_dir() / name, data)
    return data


_panel: PanelTable | None = None
_days: dict[tuple[SolarSite, Date], SunDay] = {}


def panel_table() -> PanelTable:
    """The panel table: shipped, cached, or generated with pvlib (kept in memory after the first call)."""
    global _panel
    if _panel is None:
        data = _find_or_make(panel_file_name(), generate_panel_table)
        _panel = PanelTable(data["p_mp"], data["v_mp"])
    return _panel


def sun_day(site: SolarSite, day: Date) -> SunDay:
    """The clear-sky day table for this site and date: shipped, cached, or generated with pvlib."""
    key = (site, day)
    found = _days.get(key)
    if found is None:
        data = _find_or_make(sun_file_name(site, day), lambda: generate_sun_day(site, day))
        found = SunDay(site, day, [float(x) for x in data["ghi"]])
        _days[key] = found
    return found


def write_shipped_tables(days: list[tuple[SolarSite, Date]], folder: Path = DATA_DIR) -> list[Path]:
    """Regenerate the package's tables (run by `python -m sim.solar` after changing a shipped scenario)."""
    written = [folder / panel_file_name()]
    _write_json(written[0], generate_panel_table())
    for site, day in sorted(set(days), key=lambda sd: (sd[0].key(), sd[1])):
        path = folder / sun_file_name(site, day)
        _write_json(path, generate_sun_day(site, day))
        written.append(path)
    return written


def shipped_days() -> list[tuple[SolarSite, Date]]:
    """Every (site, date) the shipped scenarios touch, from their start to their end."""
    from sim import scenario as scen

    out: list[tuple[SolarSite, Date]] = []
    for name in scen.shipped_names():
        sc = scen.load(name)
        out.extend((sc.solar_site, d) for d in sc.days())
    return out


if __name__ == "__main__":
    for p in write_shipped_tables(shipped_days()):
        print(p)
