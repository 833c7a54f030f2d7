"""Property tests of the decision core: whatever the readings, commands and timing, safety promises hold."""

from __future__ import annotations

import itertools
import math
from typing import Any

from conftest import CoreDriver, healthy_snap, net_forward, signed_duty
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robot.config import Settings
from robot.core import CoreConfig, CoreState, step
from robot.core.rules import TABLE, Wheels
from robot.core.types import (
    ALL_BRAKED,
    Command,
    CommandKind,
    Guidance,
    Mode,
    Snapshot,
    State,
)

CFG = CoreConfig.from_settings(Settings())
ROWS = {r.state: r for r in TABLE}
SAFETY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _start_states() -> list[CoreState]:
    """Boot, and a few states reached through the core itself, so sequences start from interesting places."""
    out = [CoreState()]
    d = CoreDriver(CFG)
    d.hold(CFG.fault_clear_s + 1.0)
    out.append(d.st)  # cleaning
    d.command(CommandKind.SET_MODE, mode=Mode.MANUAL)
    out.append(d.st)
    d.command(CommandKind.SET_MODE, mode=Mode.AUTO)
    d.hold(CFG.tray_filter_s + 0.5, tray_kg=CFG.tray_full_kg + 0.1)
    out.append(d.st)  # tray full, latched
    d.hold(CFG.rain_confirm_s + 0.5, raining=True)
    out.append(d.st)  # sheltering with a full tray
    e = CoreDriver(CFG)
    e.hold(CFG.fault_clear_s + 1.0)
    e.set(distance_m=0.3)
    e.until(lambda x: x.state is State.ESCAPING, 10.0)
    out.append(e.st)  # mid-escape
    return out


START = _start_states()

# ---- strategies -------------------------------------------------------------------------------------------

SPECIAL = st.sampled_from([math.nan, math.inf, -math.inf])


def reading(lo: float, hi: float, good: float) -> st.SearchStrategy[float | None]:
    """Mostly plausible values, sometimes a typical healthy one, sometimes None/NaN/inf."""
    return st.one_of(st.just(good), st.floats(lo, hi), st.none(), SPECIAL)


AGE = st.one_of(st.just(0.0), st.floats(0.0, 0.5), st.floats(0.0, 10.0), st.none(), st.just(math.nan))
SPEED = st.one_of(st.floats(-1.0, 1.0), st.floats(-3.0, 3.0), SPECIAL)

GUIDANCE = st.one_of(
    st.none(),
    st.builds(
        Guidance,
        left=SPEED,
        right=SPEED,
        gps_ok=st.booleans(),
        inside_fence=st.booleans(),
        arrived=st.booleans(),
        route_done=st.booleans(),
    ),
)


# Drive commands dominate, as in manual driving; e-stop and reset are rarer so sequences do other things too.
KINDS = (
    [CommandKind.DRIVE] * 8
    + [CommandKind.SET_MODE] * 3
    + [CommandKind.RESET] * 2
    + [CommandKind.ESTOP, CommandKind.TRAY_EMPTIED]
)


@st.composite
def commands(draw: Any, now: float) -> tuple[Command, ...]:
    n = draw(st.sampled_from([0, 0, 0, 0, 1, 1, 2]))
    out = []
    for _ in range(n):
        kind = draw(st.sampled_from(KINDS))
        at = draw(st.one_of(st.just(now), st.floats(now - 1.0, now), st.floats(now - 5.0, now + 5.0),
                            st.floats(-1e6, 1e6), SPECIAL))  # fmt: skip
        out.append(
            Command(kind, at=at, mode=draw(st.one_of(st.none(), st.sampled_from(list(Mode)))),
                    left=draw(SPEED), right=draw(SPEED), source="test")
        )  # fmt: skip
    return tuple(out)


FIELDS = ("distance", "camera", "tray", "rain", "power", "link", "guidance", "ages")


@st.composite
def snapshot_at(draw: Any, now: float) -> Snapshot:
    """A snapshot at `now`: healthy except for a few parts, each of which may be stale, missing or garbage."""
    broken = draw(st.one_of(st.just(frozenset()), st.sets(st.sampled_from(FIELDS), max_size=2)))

    def t(part: str) -> float | None:
        if part not in broken and "ages" not in broken:
            return now
        age = draw(AGE)
        return None if age is None else now - age

    g = Guidance(left=draw(SPEED), right=draw(SPEED), gps_ok=draw(st.sampled_from([True, True, True, False])),
                 inside_fence=draw(st.sampled_from([True, True, True, False])), arrived=draw(st.booleans()),
                 route_done=draw(st.sampled_from([False, False, False, True])))  # fmt: skip
    return Snapshot(
        distance_m=draw(reading(-1.0, 6.0, 3.0)) if "distance" in broken else draw(st.floats(0.0, 6.0)),
        distance_t=t("distance"),
        camera_obstacle="camera" in broken,
        tray_kg=draw(reading(-1.0, 5.0, 0.5)) if "tray" in broken else draw(st.floats(0.0, 2.5)),
        tray_t=t("tray"),
        raining=draw(st.one_of(st.booleans(), st.none())) if "rain" in broken else draw(st.booleans()),
        rain_t=t("rain"),
        panel_w=draw(reading(-5.0, 80.0, 40.0)) if "power" in broken else draw(st.floats(0.0, 60.0)),
        battery_v=draw(reading(5.0, 14.0, 12.2)) if "power" in broken else 12.2,
        battery_soc=draw(reading(-0.2, 1.2, 0.8)) if "power" in broken else draw(st.floats(0.2, 1.0)),
        power_t=t("power"),
        link_ok="link" not in broken,
        guidance=draw(GUIDANCE) if "guidance" in broken else g,
        guidance_t=t("guidance"),
        commands=draw(commands(now)),
    )


DT = st.one_of(st.floats(0.0, 0.2), st.floats(0.0, 5.0), st.floats(0.0, 400.0))


def unsafe_ahead(snap: Snapshot, now: float, cfg: CoreConfig) -> bool:
    """The test's own reading of "forward is unsafe": unknown, stale, inside the stop distance, or camera."""
    d, t = snap.distance_m, snap.distance_t
    if snap.camera_obstacle or d is None or t is None or math.isnan(d):
        return True
    age = now - t
    return math.isnan(age) or age > cfg.distance_stale_s or d < cfg.stop_distance_m


# ---- properties ------------------------------------------------------------------------------------------


@SAFETY
@given(start=st.sampled_from(START), data=st.data())
def test_no_snapshot_sequence_breaks_a_safety_promise(start: CoreState, data: Any) -> None:
    st_ = start
    now = 1000.0
    last_drive_rx = -math.inf
    for _ in range(data.draw(st.integers(1, 40))):
        now += data.draw(DT)
        snap = data.draw(snapshot_at(now))
        if any(c.kind is CommandKind.DRIVE for c in snap.commands):
            last_drive_rx = now
        st_, d = step(st_, snap, now, CFG)
        m = d.motors
        for p in m:
            assert p.in1 in (0, 1) and p.in2 in (0, 1) and 0 <= p.en <= 255
        if d.state in (State.ESTOP, State.FAULT, State.CRITICAL_BATTERY):
            assert m == ALL_BRAKED, d
        if st_.tray_full:
            assert not m.brushing, d
        if unsafe_ahead(snap, now, CFG):
            assert net_forward(m) <= 0, (snap, d)
            if d.state is not State.ESCAPING:  # only the escape's turn in place may run one wheel forward
                assert signed_duty(m.drive_left) <= 0 and signed_duty(m.drive_right) <= 0, (snap, d)
        row = ROWS[d.state]
        if row.wheels is Wheels.OFF:
            assert not m.moving, d
        if not row.brushes:
            assert not m.brushing, d
        if d.state is State.MANUAL and m.moving:
            assert now - last_drive_rx <= CFG.deadman_s, d  # the deadman, whatever the command's stamp said
        assert st_.state is d.state and st_.mode is d.mode


FLOATS = st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=300, deadline=None)
@given(
    start=st.sampled_from(START),
    now=FLOATS,
    over=st.fixed_dictionaries(
        {},
        optional={
            "distance_m": FLOATS,
            "distance_t": FLOATS,
            "tray_kg": FLOATS,
            "tray_t": FLOATS,
            "rain_t": FLOATS,
            "panel_w": FLOATS,
            "battery_v": FLOATS,
            "battery_soc": FLOATS,
            "power_t": FLOATS,
            "guidance_t": FLOATS,
            "guidance": GUIDANCE,
        },
    ),
    cmds=commands(0.0),
)
def test_step_never_raises_on_any_input(
    start: CoreState, now: float, over: dict[str, Any], cmds: Any
) -> None:
    snap = healthy_snap(0.0 if math.isnan(now) else now, **over, commands=cmds)
    _, d = step(start, snap, now, CFG)
    assert isinstance(d.reason, str) and d.reason
    if d.state in (State.ESTOP, State.FAULT, State.CRITICAL_BATTERY):
        assert d.motors == ALL_BRAKED


RAIN_RUN = st.lists(
    st.tuples(st.sampled_from([True, False, None]), st.floats(0.1, 1500.0)), min_size=1, max_size=30
)


@settings(max_examples=60, deadline=None)
@given(runs=RAIN_RUN)
def test_any_rain_pattern_shelters_for_the_minimum_dwell_and_confirms_before_going(
    runs: list[tuple[bool | None, float]],
) -> None:
    d = CoreDriver(CFG)
    d.hold(CFG.fault_clear_s + 1.0)
    d.clear_alerts()
    for raining, seconds in runs:
        d.hold(seconds, dt=max(0.5, seconds / 200), raining=raining)
    events = [(a.kind, a.at) for a in d.alerts if a.kind in ("rain", "dry")]
    kinds = [k for k, _ in events]
    assert kinds == ["rain", "dry"] * (len(kinds) // 2) + (["rain"] if len(kinds) % 2 else [])
    for (k1, t1), (_, t2) in itertools.pairwise(events):
        if k1 == "rain":
            assert t2 - t1 >= CFG.rain_min_shelter_s  # never a quick go-and-return
        else:
            assert t2 - t1 >= CFG.rain_confirm_s  # a new trip needs confirmed rain
