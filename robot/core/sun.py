"""Where the sun is: elevation from UTC time and position, and when it next crosses an elevation. Pure math.

The night rule needs to tell a storm's dark sky from night, and the planned power-down needs the time to wake
at dawn. Both come from GPS time and position, never from the Pi's own clock, which has no battery behind it.
The low-precision formulae of the Astronomical Almanac: within about 0.5 degree from 1950 to 2050, no refraction.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

J2000 = datetime(2000, 1, 1, 12, tzinfo=UTC)
SCAN_STEP_S = 600.0  # the sun moves at most 2.5 degrees in 10 minutes: no crossing is skipped


def elevation_deg(when: datetime, lat: float, lon: float) -> float:
    """Apparent elevation of the sun's centre above the horizon, degrees (negative below), refraction ignored."""
    utc = when.replace(tzinfo=UTC) if when.tzinfo is None else when
    d = (utc - J2000).total_seconds() / 86400.0
    g = math.radians((357.529 + 0.98560028 * d) % 360.0)  # mean anomaly
    q = (280.459 + 0.98564736 * d) % 360.0  # mean longitude
    ecl_lon = math.radians(q + 1.915 * math.sin(g) + 0.020 * math.sin(2.0 * g))
    obliquity = math.radians(23.439 - 0.00000036 * d)
    ra = math.atan2(math.cos(obliquity) * math.sin(ecl_lon), math.cos(ecl_lon))
    dec = math.asin(math.sin(obliquity) * math.sin(ecl_lon))
    gmst_deg = (280.46061837 + 360.98564736629 * d) % 360.0
    hour_angle = math.radians(gmst_deg + lon) - ra
    phi = math.radians(lat)
    s = math.sin(phi) * math.sin(dec) + math.cos(phi) * math.cos(dec) * math.cos(hour_angle)
    return math.degrees(math.asin(max(-1.0, min(1.0, s))))


def next_crossing(
    when: datetime, lat: float, lon: float, deg: float, *, rising: bool = True, within_h: float = 36.0
) -> datetime | None:
    """The first time after `when` that the sun passes `deg` going up (rising) or down; None if not within_h
    (polar day or night)."""
    step = timedelta(seconds=SCAN_STEP_S)
    t0 = when
    e0 = elevation_deg(t0, lat, lon)
    end = when + timedelta(hours=within_h)
    while t0 < end:
        t1 = t0 + step
        e1 = elevation_deg(t1, lat, lon)
        if (rising and e0 < deg <= e1) or (not rising and e0 > deg >= e1):
            lo, hi = t0, t1
            for _ in range(20):  # 600 s / 2**20: well below a second
                mid = lo + (hi - lo) / 2
                above = elevation_deg(mid, lat, lon) >= deg
                if above == rising:
                    hi = mid
                else:
                    lo = mid
            return hi
        t0, e0 = t1, e1
    return None
