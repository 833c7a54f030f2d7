"""Power in the decision core (issue 11): the switchover, the planned end at critical battery, rain against a
critical battery, night against a storm, the night's sleep, and the battery kept in reserve for the night."""

from __future__ import annotations

import pytest
from conftest import CoreDriver

from robot.core import CoreConfig, CoreState
from robot.core.types import ALL_BRAKED, CommandKind, Goal, Mode, PowerSource, Severity, State

SUN = 40.0  # W: carries cleaning with margin
SHADOW = 8.0  # W: a tree or a thick cloud: carries the parked robot, not cleaning
DARK = 1.0  # W: carries nothing


def switches(core: CoreDriver) -> list[float]:
    return [a.at for a in core.alerts if a.kind == "power_source"]


# ---- the switchover -----------------------------------------------------------------------------------------


def test_a_sudden_shadow_moves_the_loads_to_the_battery_in_the_same_step(core: CoreDriver) -> None:
    d = core.step(panel_w=SHADOW)
    assert d.power is PowerSource.BATTERY
    assert d.motors.moving and d.motors.brushing  # cleaning goes on, on the battery
    assert [a.kind for a in core.alerts] == ["power_source"]


def test_the_panel_gets_the_loads_back_only_after_the_return_time_and_the_dwell(core: CoreDriver) -> None:
    cfg = core.cfg
    core.step(panel_w=SHADOW)
    switched = core.t
    core.set(panel_w=SUN)
    sunny = core.hold(cfg.panel_return_s - 1.0, dt=1.0)
    assert {d.power for d in sunny} == {PowerSource.BATTERY}  # the sky that just failed must prove itself
    back = core.until(lambda d: d.power is PowerSource.PANEL, 5.0, dt=1.0)
    assert back.power is PowerSource.PANEL and core.t - switched >= cfg.panel_return_s
    # A panel that only just carries the load (below the margin) never gets it back.
    core.step(panel_w=SHADOW)
    load = cfg.load_w(core.st.motors)
    assert {d.power for d in core.hold(2 * cfg.panel_return_s, dt=2.0, panel_w=load * 1.1)} == {
        PowerSource.BATTERY
    }


@pytest.mark.parametrize("period_s", [20.0, 90.0, 300.0, 700.0])
def test_broken_cloud_never_switches_the_relay_more_than_four_times_an_hour(
    core: CoreDriver, period_s: float
) -> None:
    """Sun and cloud alternating every `period_s`: every cloud that arrives while on the panel moves the loads
    at once, and no hour ever sees more than four switches."""
    for _ in range(int(3 * 3600 / (2 * period_s))):
        core.hold(period_s, dt=1.0, panel_w=SUN)
        first_cloudy = core.step(1.0, panel_w=SHADOW)
        assert first_cloudy.power is PowerSource.BATTERY  # at once, whatever came before
        core.hold(period_s - 1.0, dt=1.0, panel_w=SHADOW)
    at = switches(core)
    # The loads do go back to the panel when the sun stays long enough (so the cap is not "never switch").
    assert len(at) >= (1 if period_s < core.cfg.switch_dwell_s else 3)
    assert max(sum(1 for b in at if a <= b < a + 3600.0) for a in at) <= 4


def test_a_motor_start_on_a_weak_panel_moves_the_relay_first_and_starts_one_step_later(
    core: CoreDriver,
) -> None:
    core.command(CommandKind.SET_MODE, mode=Mode.PAUSED)
    core.set(panel_w=SHADOW)  # carries the paused robot (controller only), not cleaning
    assert {d.power for d in core.hold(60.0)} == {PowerSource.PANEL}
    start = core.command(CommandKind.SET_MODE, mode=Mode.AUTO)
    assert start.state is State.CLEANING and start.power is PowerSource.BATTERY
    assert start.motors == ALL_BRAKED  # held for this one step: the relay moves before the motors start
    nxt = core.step()
    assert nxt.power is PowerSource.BATTERY and nxt.motors.moving and nxt.motors.brushing


def test_a_motor_start_on_a_strong_panel_starts_at_once(core: CoreDriver) -> None:
    core.command(CommandKind.SET_MODE, mode=Mode.PAUSED)
    core.hold(10.0)
    start = core.command(CommandKind.SET_MODE, mode=Mode.AUTO)
    assert start.power is PowerSource.PANEL and start.motors.moving and start.motors.brushing


def test_the_battery_current_keeps_the_loads_off_a_panel_a_stalled_motor_would_sink(core: CoreDriver) -> None:
    cfg = core.cfg
    core.step(panel_w=SHADOW)
    modelled = cfg.load_w(core.st.motors)
    panel = modelled * cfg.panel_margin + 3.0  # enough for the model's load, not for the measured one
    # The battery gives 3 A at 12 V = 36 W: more than the model says (a motor stalled on a kerb).
    core.set(panel_w=panel, battery_a=-3.0, battery_v=12.0)
    assert {d.power for d in core.hold(cfg.panel_return_s + cfg.switch_dwell_s + 10.0, dt=1.0)} == {
        PowerSource.BATTERY
    }
    core.set(battery_a=-0.5)  # the motor freed: the measured draw is within the model again
    assert core.hold(cfg.switch_dwell_s + 2.0, dt=1.0)[-1].power is PowerSource.PANEL


def test_the_load_model_matches_the_motors(cfg: CoreConfig) -> None:
    assert cfg.load_w(ALL_BRAKED) == pytest.approx(cfg.base_w)
    assert cfg.cleaning_w == pytest.approx(
        cfg.base_w
        + 2 * cfg.drive_motor_w * cfg.cruise_duty / 255
        + 3 * cfg.brush_motor_w * cfg.brush_duty / 255
    )


# ---- critical battery: the planned end ----------------------------------------------------------------------


def critical(core: CoreDriver, **env: object) -> None:
    core.set(battery_soc=core.cfg.critical_soc - 0.03, panel_w=DARK, **env)


def test_critical_battery_sends_one_alert_drives_to_the_park_and_powers_down_there(core: CoreDriver) -> None:
    critical(core)
    drive = core.hold(10.0)
    assert {d.state for d in drive} == {State.CRITICAL_PARKING}
    assert all(d.goal is Goal.PARK and d.motors.moving and not d.motors.brushing for d in drive)
    assert {d.power_down for d in drive} == {""}
    d = core.step(arrived=True)
    assert d.state is State.CRITICAL_BATTERY and d.motors == ALL_BRAKED and d.power_down == "critical_battery"
    sms = [a for a in core.alerts if a.severity is Severity.CRITICAL]
    assert [a.kind for a in sms] == ["critical_battery"]
    assert "powering down" in sms[0].message


def test_rain_at_critical_charge_goes_to_the_shelter_not_the_park(core: CoreDriver) -> None:
    """The rule of docs/behaviour.md: in rain a critical robot spends what it has left on reaching the shelter;
    it powers down there, out of the rain."""
    critical(core, raining=True)
    d = core.hold(core.cfg.rain_confirm_s + 0.2)[-1]
    assert d.state is State.CRITICAL_PARKING and d.goal is Goal.SHELTER and d.motors.moving
    assert "shelter" in d.reason
    d = core.step(arrived=True)
    assert d.state is State.CRITICAL_BATTERY and d.power_down == "critical_battery"


def test_rain_at_critical_charge_stops_where_the_energy_ends(core: CoreDriver) -> None:
    critical(core, raining=True)
    cfg = core.cfg
    drive = core.hold(cfg.critical_drive_s - 0.5)
    assert all(d.goal is Goal.SHELTER and d.motors.moving for d in drive[20:])
    d = core.hold(1.0)[-1]
    assert d.state is State.CRITICAL_BATTERY and d.motors == ALL_BRAKED and d.power_down == "critical_battery"


def test_critical_battery_already_sheltered_powers_down_in_the_shelter(core: CoreDriver) -> None:
    core.set(raining=True, arrived=True)
    core.hold(core.cfg.rain_confirm_s + 0.2)
    assert core.state is State.SHELTERED
    critical(core)
    d = core.step()
    assert d.state is State.CRITICAL_BATTERY and d.goal is Goal.SHELTER and d.power_down == "critical_battery"


@pytest.mark.parametrize("mode", [Mode.MANUAL, Mode.PAUSED])
def test_critical_battery_out_of_auto_brakes_at_once_and_powers_down(core: CoreDriver, mode: Mode) -> None:
    core.command(CommandKind.SET_MODE, mode=mode)
    critical(core)
    d = core.step()
    assert d.state is State.CRITICAL_BATTERY and d.motors == ALL_BRAKED and d.power_down == "critical_battery"


def test_no_power_down_on_a_critical_reading_that_has_gone_stale(cfg: CoreConfig) -> None:
    """A boot after a critical power-down starts latched critical; only a fresh reading may power it down."""
    d = CoreDriver(cfg, st=CoreState(critical=True))
    d.set(power_t=None, battery_soc=None)
    assert {x.power_down for x in d.hold(5.0)} == {""}
    d.env.pop("power_t")  # readings again, fresh each step
    d.set(battery_soc=cfg.critical_soc - 0.02, panel_w=DARK)
    assert d.step().power_down == "critical_battery"


def test_woken_critical_under_a_panel_that_carries_the_loads_it_stays_up_and_charges(cfg: CoreConfig) -> None:
    """A boot after a critical power-down starts on the battery: with a panel able to carry the parked robot it
    must not power down again, only move the loads to the panel."""
    d = CoreDriver(cfg, st=CoreState(critical=True))
    d.set(battery_soc=cfg.critical_soc + 0.05, panel_w=SHADOW, arrived=True)
    decisions = d.hold(cfg.switch_dwell_s + 5.0)
    assert {x.power_down for x in decisions} == {""}
    assert decisions[-1].state is State.CRITICAL_BATTERY and decisions[-1].power is PowerSource.PANEL
    assert [a.kind for a in d.alerts if a.severity is Severity.CRITICAL] == []  # already reported before


# ---- night: not a storm, and the night's sleep --------------------------------------------------------------


def test_a_storm_at_noon_is_not_night_when_the_sun_is_known_to_be_up(core: CoreDriver) -> None:
    core.set(panel_w=DARK, sun_elevation_deg=60.0)
    decisions = core.hold(3 * core.cfg.night_dwell_s, dt=1.0)
    assert State.NIGHT not in {d.state for d in decisions}
    assert "night" not in core.kinds()


def test_darkness_in_rain_is_not_night_when_the_time_is_unknown(core: CoreDriver) -> None:
    core.set(panel_w=DARK, raining=True, arrived=True)
    core.hold(3 * core.cfg.night_dwell_s, dt=1.0)
    assert "night" not in core.kinds() and core.state is State.SHELTERED


def test_darkness_with_the_sun_down_is_night(core: CoreDriver) -> None:
    core.set(panel_w=DARK, sun_elevation_deg=-5.0)
    d = core.hold(core.cfg.night_dwell_s + 1.0, dt=1.0)[-1]
    assert d.state is State.NIGHT and core.kinds().count("night") == 1


def test_parked_for_the_night_with_a_wake_alarm_it_powers_down(core: CoreDriver) -> None:
    core.set(panel_w=DARK, sun_elevation_deg=-5.0, can_sleep=True)
    decisions = core.hold(core.cfg.night_dwell_s + 1.0, dt=1.0)
    assert {d.power_down for d in decisions} == {""}  # not while still driving to the parking spot
    d = core.step(arrived=True)
    assert d.state is State.NIGHT and d.motors == ALL_BRAKED and d.power_down == "night"


@pytest.mark.parametrize(
    "over",
    [{"can_sleep": False}, {"sun_elevation_deg": None, "raining": False}],
    ids=["no wake alarm", "time unknown"],
)
def test_no_sleep_without_a_way_to_wake(core: CoreDriver, over: dict[str, object]) -> None:
    core.set(panel_w=DARK, sun_elevation_deg=-5.0, can_sleep=True, arrived=True)
    core.set(**over)
    decisions = core.hold(core.cfg.night_dwell_s + 10.0, dt=1.0)
    assert decisions[-1].state is State.NIGHT
    assert {d.power_down for d in decisions} == {""}


def test_woken_at_dawn_under_a_dark_sky_it_does_not_go_back_to_sleep(cfg: CoreConfig) -> None:
    d = CoreDriver(cfg)  # a fresh boot
    d.set(panel_w=DARK, sun_elevation_deg=8.0, can_sleep=True, arrived=True)
    decisions = d.hold(3 * cfg.night_dwell_s, dt=1.0)
    assert {x.power_down for x in decisions} == {""}
    assert State.NIGHT not in {x.state for x in decisions}


# ---- the night's reserve ------------------------------------------------------------------------------------


def test_above_the_reserve_it_cleans_on_the_battery(core: CoreDriver) -> None:
    core.set(panel_w=SHADOW, battery_soc=core.cfg.reserve_soc + 0.05)
    assert {d.state for d in core.hold(600.0, dt=1.0)} == {State.CLEANING}


def test_at_the_reserve_it_cleans_only_while_the_panel_carries_it(core: CoreDriver) -> None:
    cfg = core.cfg
    core.set(battery_soc=cfg.reserve_soc - 0.02)
    assert {d.state for d in core.hold(600.0, dt=1.0)} == {State.CLEANING}  # the panel carries it
    core.set(panel_w=SHADOW)
    before = core.hold(cfg.reserve_dwell_s - 1.0, dt=1.0)
    assert {d.state for d in before} == {State.CLEANING}  # a passing cloud is ridden out
    d = core.hold(2.0, dt=1.0)[-1]
    assert d.state is State.WAITING_FOR_SUN and d.goal is Goal.PARK and not d.motors.brushing
    core.set(arrived=True)
    core.set(panel_w=SUN)
    d = core.hold(cfg.reserve_dwell_s + 1.0, dt=1.0)[-1]
    assert d.state is State.CLEANING
    assert [(a.kind, a.severity) for a in core.alerts if a.kind in ("waiting_for_sun", "sun")] == [
        ("waiting_for_sun", Severity.INFO),
        ("sun", Severity.INFO),
    ]


def test_waiting_for_the_sun_ends_when_the_battery_is_back_at_resume(core: CoreDriver) -> None:
    cfg = core.cfg
    core.set(battery_soc=cfg.reserve_soc - 0.02, panel_w=SHADOW, arrived=True)
    core.hold(cfg.reserve_dwell_s + 1.0, dt=1.0)
    assert core.state is State.WAITING_FOR_SUN
    assert core.step(battery_soc=cfg.resume_soc).state is State.CLEANING
