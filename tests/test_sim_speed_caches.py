"""The simulator's third round of speed-ups (issue 14) are caches: each answer equals, float for float and sign of
zero included, what the plain computation gives."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from arduino_bridge.codec import MsgType, encode_frame
from arduino_bridge.session import LinkSession
from robot.core import decide
from robot.core.decide import CoreConfig, CoreState
from robot.core.types import MotorOutputs, PinState, Snapshot
from robot.hardware.interfaces import PowerReading
from robot.navigation import navigator
from sim.scenario import load as load_scenario
from sim.world import R_INTERNAL, World, ocv

WORLD = World(load_scenario("sunny_day"), seed=1)  # one world: its caches carry over from example to example

pins = st.builds(PinState, st.integers(0, 1), st.integers(0, 1), st.integers(0, 255))
# A small pool of commands, so that a sequence drawn from it repeats objects as a held command does.
pool = st.lists(st.builds(MotorOutputs, pins, pins, pins, pins, pins), min_size=1, max_size=4)


@given(pool, st.lists(st.integers(0, 3), min_size=1, max_size=30))
def test_the_side_rule_gets_the_closing_speeds_of_the_command_held(outputs: list, picks: list) -> None:
    cfg = CoreConfig(side_sensors=True)
    snap = Snapshot(side_left_m=1.2, side_right_m=0.9, side_t=0.0)
    for n, i in enumerate(picks):
        m = outputs[i % len(outputs)]
        st_ = CoreState(motors=m)
        now = 0.05 * n
        remembered = decide._side(st_, snap, now, cfg)
        decide._own_last = (None, None, (0.0, 0.0))  # the plain computation: nothing remembered
        assert remembered == decide._side(st_, snap, now, cfg)
        assert decide._own_last[2] == decide._own_closing(m, cfg)


@given(
    st.floats(min_value=1e-6, max_value=10.0),
    st.floats(min_value=1e-3, max_value=5.0),
)
def test_the_wheels_decay_is_math_exp(dt: float, tau: float) -> None:
    assert navigator._decay(dt, tau) == math.exp(-dt / tau)
    assert navigator._decay(dt, tau) == math.exp(-dt / tau)  # the second time, from the cache


def _plain_reading(w: World) -> PowerReading:
    pv = w.panel_v
    pa = w.panel_available_w / pv if pv > 0.0 else 0.0
    return PowerReading(
        panel_v=round(pv, 3),
        panel_a=round(pa, 4),
        battery_v=round(ocv(w.soc) + w.battery_a * R_INTERNAL, 3),
        battery_a=round(w.battery_a, 4),
        soc=round(w.soc, 4),
    )


states = st.tuples(
    st.sampled_from([0.0, -0.0, 17.9, 18.2]),  # panel volts
    st.sampled_from([0.0, -0.0, 40.0, 55.5]),  # panel watts
    st.sampled_from([1e-6, -1e-6, 0.0, -0.0, 0.31, -1.2]),  # battery amps: tiny ones round to signed zeros
    st.sampled_from([0.5, 0.50001, 0.8, 0.0, 1.0]),  # charge
)


@given(st.lists(states, min_size=1, max_size=25))
def test_the_power_reading_equals_a_fresh_one_sign_of_zero_included(seq: list) -> None:
    w = WORLD
    for pv, pw, amps, soc in seq:
        w.panel_v, w.panel_available_w, w.battery_a, w.soc = pv, pw, amps, soc
        got, want = w.power_reading(), _plain_reading(w)
        assert repr(got) == repr(want)  # repr shows -0.0, which == would not


fwd = st.builds(MotorOutputs, pins, pins, pins, pins, pins)


@given(st.lists(fwd, min_size=1, max_size=10))
def test_a_staged_command_is_the_command_without_its_bytes(commands: list) -> None:
    a, b = LinkSession(), LinkSession()
    for n, m in enumerate(commands):
        now = 0.05 * n
        wire = a.command(m, now)
        payload = b.stage_command(m, now)
        assert encode_frame(MsgType.SET_MOTORS, b.seq, payload) == wire
        assert (a.seq, a.command_pending, a.stats(), a.last_tx) == (
            b.seq,
            b.command_pending,
            b.stats(),
            b.last_tx,
        )
        a.acknowledged(a.seq, now + 0.01)
        b.acknowledged(b.seq, now + 0.01)
        assert (a.command_pending, a.stats(), a.last_ack) == (b.command_pending, b.stats(), b.last_ack)
