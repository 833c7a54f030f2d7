"""Navigation sized by the receiver: accuracy from GST or HDOP x UERE, the geofence confidence, RTK gating,
and averaging fixes at the park before calling it arrived."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta

import pytest

from robot.core.types import Goal
from robot.hardware.interfaces import GpsFix
from robot.navigation import NavConfig, NavState, guide
from robot.navigation.geometry import clearance, dist
from robot.navigation.navigator import fix_sigma
from robot.site_file import demo_site

SITE = demo_site()
T0 = datetime(2024, 3, 15, 3, 0, tzinfo=UTC)


def fix_at(p: tuple[float, float], n: int, **kw: object) -> GpsFix:
    lat, lon = SITE.to_latlon(*p)
    base = GpsFix(T0 + timedelta(seconds=n), lat, lon, 3, 0.0, None, 1.0, 9, 1)
    return dataclasses.replace(base, **kw)


def test_accuracy_comes_from_gst_else_hdop_times_uere_else_rtk_quality() -> None:
    cheap = NavConfig.for_receiver("cheap")
    f = fix_at((0.0, 0.0), 0)
    assert fix_sigma(f, cheap) == pytest.approx(2.1)
    assert fix_sigma(dataclasses.replace(f, hdop=2.0), cheap) == pytest.approx(4.2)
    assert fix_sigma(dataclasses.replace(f, std_m=0.015), cheap) == pytest.approx(0.015)
    assert fix_sigma(dataclasses.replace(f, quality=4), cheap) == pytest.approx(0.02)
    assert fix_sigma(dataclasses.replace(f, quality=5), cheap) == pytest.approx(0.3)
    assert NavConfig.for_receiver("cheap", uere_m=1.2).gps_sigma_m == 1.2


def test_rtk_profile_waits_for_an_rtk_fix() -> None:
    rtk = NavConfig.for_receiver("rtk")
    p = SITE.route.at(20.0)
    st = NavState(t=99.95, x=p[0], y=p[1], var=0.01, heading=0.0, good_fixes=5, need_fixes=3)
    _, g = guide(st, fix_at(p, 0, quality=1), Goal.ROUTE, 100.0, SITE, rtk)
    assert not g.gps_ok and "RTK" in g.reason
    _, g = guide(st, fix_at(p, 0, quality=4, std_m=0.01), Goal.ROUTE, 100.0, SITE, rtk)
    assert g.gps_ok


@pytest.mark.parametrize(("sigma", "reported_outside"), [(2.0, False), (0.02, True)])
def test_outside_is_reported_only_beyond_the_estimates_confidence(
    sigma: float, reported_outside: bool
) -> None:
    cfg = NavConfig.for_receiver("cheap")
    # A point 1.5 m outside the fence's south edge.
    a, b = SITE.fence[0], SITE.fence[1]
    mid = ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
    out = (mid[0] + 0.45, mid[1] - 1.43)
    assert -1.7 < clearance(out, SITE.fence) < -1.3
    st = NavState(t=99.95, x=out[0], y=out[1], var=sigma**2, heading=1.5, good_fixes=5, need_fixes=3)
    _, g = guide(st, fix_at(out, 0, std_m=sigma), Goal.ROUTE, 100.0, SITE, cfg)
    assert g.inside_fence is not reported_outside
    assert "driving back in" in g.reason  # either way it heads back inside


def test_park_arrival_averages_fixes_then_corrects_once_by_odometry() -> None:
    cfg = dataclasses.replace(NavConfig.for_receiver("cheap"), settle_s=60.0)
    park = SITE.park
    bias = (2.2, 0.0)  # every fix 2.2 m east of the truth: a slowly wandering error, frozen here
    truth = [park[0] - 2.0, park[1]]  # the robot really stands 2 m west of the park point
    est = (truth[0] + bias[0], truth[1] + bias[1])  # ... and believes it is 0.2 m east of it
    st = NavState(t=-0.05, x=est[0], y=est[1], var=4.0, heading=0.0, good_fixes=5, need_fixes=3, goal="park")
    arrived_at = None
    now, n = 0.0, 0
    left = right = 0.0
    fix = fix_at(
        est, 0, std_m=2.0
    )  # the receiver's newest fix, handed over every step as the supervisor does
    heading = 0.0  # east at first; the robot turns on the spot when the averaged position says it overshot
    while now < 300.0:
        v = 1.57 * (left + right) / 2
        heading += 1.57 * (right - left) / 0.4 * 0.05
        truth[0] += v * math.cos(heading) * 0.05
        truth[1] += v * math.sin(heading) * 0.05
        if abs(now - round(now)) < 1e-6:
            n += 1
            # The average of the fixes over the wait carries less of the error than one fix: here, none of it.
            wobble = 0.8 if n % 2 else -0.8
            # The receiver's ground speed is the truth's (a course only when it moves, as a receiver gives it).
            track = (90.0 - math.degrees(heading)) % 360.0 if abs(v) > 0.3 else None
            fix = fix_at((truth[0] + wobble, truth[1]), n, std_m=2.0, speed=round(abs(v), 2), track=track)
        st, g = guide(st, fix, Goal.PARK, now, SITE, cfg, applied=(left, right))
        left, right = g.left, g.right
        if g.arrived and arrived_at is None:
            arrived_at = now
        now = round(now + 0.05, 2)
    assert arrived_at is not None and arrived_at >= 60.0  # not before the fixes were averaged
    # It drove towards the park on the averaged position (truth began 2 m west of it), not on single fixes.
    assert dist(tuple(truth), park) < 2.0 - 0.3
    assert st.settles >= 1


@pytest.mark.parametrize(("receiver", "sigma"), [("cheap", 2.1), ("sbas", 0.7), ("rtk", 0.3)])
def test_route_targets_keep_four_sigmas_from_the_fence_corners_included(receiver: str, sigma: float) -> None:
    from robot.navigation.navigator import LANE_SIGMAS, _Step

    cfg = NavConfig.for_receiver(receiver)
    step = _Step(NavState(), cfg, SITE)
    step.sigma = sigma
    lane = max(cfg.fence_margin_m, LANE_SIGMAS * sigma)
    route = SITE.route
    for k in range(int(route.length * 4)):
        p = route.at(k * 0.25)
        target = step._lane_margin(p)
        # Moved only where the drawn lane is too near, and then to the margin (the demo has room everywhere: the
        # east end's corner between the fence and the shop used to get 7.5 m of the cheap receiver's 8.4).
        assert clearance(target, SITE.fence) >= min(lane, clearance(p, SITE.fence)) - 1e-6, (k * 0.25, target)
        assert clearance(target, SITE.fence) >= lane - 1e-6
