"""Benchmarks of navigation on big fences: site load and one guidance step, for 6, 60 and 600 fence vertices.

The fences are the demo alley's (6 corners) with every edge split into many points, each moved up to 2 cm off
the line, as a fence walked with a survey receiver comes out: most vertices are not corners.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

SIZES = (6, 60, 600)


def site_data(vertices: int, seed: int = 1) -> dict[str, Any]:
    """The demo site's GeoJSON with its fence resampled to `vertices` corners."""
    ref = resources.files("robot.navigation.sites").joinpath("demo_alley.geojson")
    data = json.loads(ref.read_text(encoding="utf-8"))
    fence = next(f for f in data["features"] if f["properties"]["role"] == "fence")
    ring = fence["geometry"]["coordinates"][0][:-1]
    rng = random.Random(seed)
    per = vertices // len(ring)
    extra = vertices - per * len(ring)
    out = []
    jitter = 0.02 / 111_000.0  # 2 cm in degrees
    for i, a in enumerate(ring):
        b = ring[(i + 1) % len(ring)]
        n = per + (1 if i < extra else 0)
        for k in range(n):
            t = k / n
            p = [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t]
            if k:
                p = [p[0] + rng.uniform(-jitter, jitter), p[1] + rng.uniform(-jitter, jitter)]
            out.append(p)
    fence["geometry"]["coordinates"] = [[*out, out[0]]]
    return data


def site_load_ms(repeat: int = 5) -> dict[str, float]:
    """Median time to validate and build a site (route connectors planned) by fence vertex count."""
    from robot.site_file import parse_site

    out = {}
    for n in SIZES:
        data = site_data(n)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            parse_site(data, name=f"fence{n}")
            times.append((time.perf_counter() - t0) * 1000.0)
        out[str(n)] = round(statistics.median(times), 2)
    return out


def _steps(n: int, goal: str, seconds: float) -> list[float]:
    """Wall time of each guide() call while a simulated robot drives for `seconds` on an n-vertex fence."""
    from robot.core.types import Goal
    from robot.hardware.interfaces import GpsFix
    from robot.navigation import NavConfig, NavState, guide
    from robot.site_file import parse_site

    site = parse_site(site_data(n), name=f"fence{n}")
    cfg = NavConfig()
    rng = random.Random(n)
    x, y = site.route.at(0.0)
    h = math.atan2(*reversed([b - a for a, b in zip(site.route.at(0.0), site.route.at(2.0), strict=True)]))
    st = NavState()
    t0 = datetime(2024, 3, 15, 3, 0, tzinfo=UTC)
    fix = None
    left = right = 0.0
    times = []
    dt = 0.05
    for i in range(int(seconds / dt)):
        t = i * dt
        v = 1.5 * (left + right) / 2.0
        h += 0.85 * 1.5 * (right - left) / 0.42 * dt
        x += v * math.cos(h) * dt
        y += v * math.sin(h) * dt
        if i % 20 == 0:
            lat, lon = site.to_latlon(x + rng.gauss(0, 0.5), y + rng.gauss(0, 0.5))
            track = (90.0 - math.degrees(h)) % 360.0
            fix = GpsFix(t0 + timedelta(seconds=t), lat, lon, 3, abs(v), track, 1.0, 9, 1)
        c0 = time.perf_counter()
        st, g = guide(st, fix, Goal(goal), t, site, cfg)
        times.append((time.perf_counter() - c0) * 1e6)
        left, right = g.left, g.right
    return times


def nav_step_us(seconds: float = 120.0) -> dict[str, dict[str, float]]:
    """One guidance step (route following, then going to the park) by fence vertex count: median and p99 us."""
    out = {}
    for n in SIZES:
        times = sorted(_steps(n, "route", seconds) + _steps(n, "park", seconds / 2))
        out[str(n)] = {
            "median": round(statistics.median(times), 1),
            "p99": round(times[int(0.99 * (len(times) - 1))], 1),
        }
    return out


if __name__ == "__main__":
    print(json.dumps({"site_load_ms": site_load_ms(), "nav_step_us": nav_step_us()}))
