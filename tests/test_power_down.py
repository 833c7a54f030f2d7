"""The planned power-down (issue 11): the PowerDown part, the supervisor's plan and wake time from GPS, the runner
stopping for it, and the sun's position it relies on."""

from __future__ import annotations

import asyncio
import random
import shutil
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import FakeClock, Rig

from robot.core import sun
from robot.core.types import ALL_BRAKED, State
from robot.errors import PowerDownError
from robot.hardware.interfaces import PowerReading
from robot.power_down import PowerDown, PowerDownPlan, fill, run_command
from robot.runner import Runner

NOON = datetime(2024, 5, 1, 6, 30, tzinfo=UTC)  # 12:00 in Bangalore
DRAINED = PowerReading(panel_v=0.5, panel_a=0.0, battery_v=10.2, battery_a=-0.3, soc=0.05)


class Commands:
    """A command runner that records argv lists (and can be told to fail one command)."""

    def __init__(self, log: list[str], fail: str = "") -> None:
        self.log = log
        self.fail = fail
        self.argvs: list[list[str]] = []

    def __call__(self, argv: Sequence[str]) -> None:
        self.argvs.append(list(argv))
        self.log.append(argv[0])
        if argv[0] == self.fail:
            raise PowerDownError(f"{argv[0]}: exit 1")


def power_down(log: list[str], fail: str = "", **kw: object) -> tuple[PowerDown, Commands]:
    cmds = Commands(log, fail)
    pd = PowerDown(
        poweroff_command=("systemctl", "poweroff"),
        wake_command=("rtcwake", "-m", "no", "-u", "-t", "{epoch}"),
        run=cmds,
        record_reason=lambda reason, detail: log.append(f"record {reason}: {detail}"),
        **kw,  # type: ignore[arg-type]
    )
    return pd, cmds


# ---- PowerDown ----------------------------------------------------------------------------------------------


def test_the_power_down_sets_the_alarm_flushes_records_closes_and_powers_off_last() -> None:
    log: list[str] = []
    pd, cmds = power_down(
        log, flush=[("sms", lambda: log.append("sms"))], close=[("store", lambda: log.append("store closed"))]
    )
    wake = datetime(2024, 3, 16, 1, 30, tzinfo=UTC)
    plan = PowerDownPlan("night", "planned power-down for the night", wake)
    assert pd.arm(plan)
    pd.finish(plan)
    assert log == [
        "rtcwake",
        "sms",
        "record power_down: planned power-down for the night",
        "store closed",  # the store records why before it closes
        "systemctl",
    ]
    assert cmds.argvs[0] == ["rtcwake", "-m", "no", "-u", "-t", str(int(wake.timestamp()))]
    assert cmds.argvs[-1] == ["systemctl", "poweroff"]


def test_a_failing_flush_or_record_never_keeps_the_battery_draining() -> None:
    log: list[str] = []

    def broken() -> None:
        raise RuntimeError("modem gone")

    def bad_record(reason: str, detail: str) -> None:
        raise OSError("disk full")

    pd = PowerDown(
        poweroff_command=("systemctl", "poweroff"),
        run=Commands(log),
        record_reason=bad_record,
        flush=[("sms", broken), ("store", lambda: log.append("store"))],
    )
    pd.finish(PowerDownPlan("critical_battery", "planned power-down at critical battery"))
    assert log == ["store", "systemctl"]
    assert pd.done == ["store", "poweroff"]


@pytest.mark.parametrize(
    ("reason", "wake", "fail", "goes"),
    [
        ("night", None, "", False),  # a night's sleep with no way to wake: refused
        ("night", NOON, "rtcwake", False),
        ("critical_battery", None, "", True),  # the battery comes first, alarm or not
        ("critical_battery", NOON, "rtcwake", True),
    ],
)
def test_a_night_without_a_wake_alarm_is_refused_a_critical_battery_is_not(
    reason: str, wake: datetime | None, fail: str, goes: bool
) -> None:
    pd, _ = power_down([], fail=fail)
    assert pd.arm(PowerDownPlan(reason, "x", wake)) is goes


def test_commands_fill_in_the_wake_time_in_utc() -> None:
    local = datetime(2024, 3, 16, 7, 0, tzinfo=UTC) + timedelta(hours=5, minutes=30)
    assert fill(["w", "{epoch}", "--at={iso}"], local.astimezone(UTC)) == [
        "w",
        str(int(datetime(2024, 3, 16, 12, 30, tzinfo=UTC).timestamp())),
        "--at=2024-03-16T12:30:00+00:00",
    ]


def test_run_command_reports_the_exit_and_the_last_line() -> None:
    run_command([sys.executable, "-c", "pass"])
    with pytest.raises(PowerDownError, match=r"exit 3 \(no RTC\)"):
        run_command([sys.executable, "-c", "import sys; print('no RTC', file=sys.stderr); sys.exit(3)"])
    with pytest.raises(PowerDownError, match="could not run"):
        run_command(["/nonexistent/poweroff"])


def test_can_wake_needs_a_wake_command_and_for_rtcwake_an_rtc_with_an_alarm(tmp_path: Path) -> None:
    assert not PowerDown(poweroff_command=("true",)).can_wake()
    assert PowerDown(poweroff_command=("true",), wake_command=(sys.executable, "{epoch}")).can_wake()
    assert not PowerDown(poweroff_command=("true",), wake_command=("/nonexistent/wake",)).can_wake()
    alarm = tmp_path / "wakealarm"
    rtc = PowerDown(
        poweroff_command=("true",), wake_command=("rtcwake", "-t", "{epoch}"), rtc_wakealarm=alarm
    )
    assert not rtc.can_wake()
    alarm.write_text("")
    assert rtc.can_wake() is (shutil.which("rtcwake") is not None)


# ---- the sun --------------------------------------------------------------------------------------------------


def test_sun_elevation_agrees_with_pvlib() -> None:
    pvlib = pytest.importorskip("pvlib")
    pd = pytest.importorskip("pandas")
    rng = random.Random(11)
    for lat, lon in (
        (12.97, 77.59),
        (-33.9, 18.4),
        (51.5, -0.1),
        (rng.uniform(-60, 60), rng.uniform(-180, 180)),
    ):
        times = [datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.uniform(0, 3 * 365 * 86400))]
        times += [times[0] + timedelta(hours=h) for h in range(1, 24, 2)]
        ref = pvlib.solarposition.get_solarposition(pd.DatetimeIndex(times), lat, lon, method="nrel_numpy")
        for t, want in zip(times, ref["elevation"], strict=True):
            assert sun.elevation_deg(t, lat, lon) == pytest.approx(float(want), abs=0.5)


def test_next_crossing_finds_sunrise_and_sunset_in_bangalore() -> None:
    t = datetime(2024, 3, 15, 0, 0, tzinfo=UTC)
    rise = sun.next_crossing(t, 12.97, 77.59, 0.0, rising=True)
    setting = sun.next_crossing(t, 12.97, 77.59, 0.0, rising=False)
    assert rise is not None and setting is not None
    # 06:30 and 18:27 local (UTC+05:30), to the minute of published tables less refraction's few minutes.
    assert abs((rise - datetime(2024, 3, 15, 1, 0, tzinfo=UTC)).total_seconds()) < 300
    assert abs((setting - datetime(2024, 3, 15, 12, 57, tzinfo=UTC)).total_seconds()) < 300
    assert sun.elevation_deg(rise, 12.97, 77.59) == pytest.approx(0.0, abs=0.01)
    assert sun.next_crossing(datetime(2024, 6, 21, tzinfo=UTC), 80.0, 0.0, 0.0) is None  # midnight sun


# ---- the supervisor's plan and the runner ---------------------------------------------------------------------


def run_rig(rig: Rig, clock: FakeClock, seconds: float, dt: float = 0.25) -> None:
    for _ in range(round(seconds / dt)):
        now = clock.advance(dt)
        rig.sup.poll_parts(now)
        rig.sup.step(now)


def test_the_supervisor_takes_utc_and_the_sun_from_gps(make_rig: Callable[..., Rig]) -> None:
    clock = FakeClock()
    rig = make_rig(clock=clock)
    assert rig.sup.utc_now(clock.t) is None
    run_rig(rig, clock, 2.0)
    utc = rig.sup.utc_now(clock.t)
    assert utc is not None and utc.tzinfo is not None
    lat, lon = rig.sup.site.origin
    assert rig.sup._sun_elevation(clock.t) == pytest.approx(sun.elevation_deg(utc, lat, lon), abs=0.5)


def test_critical_by_day_plans_a_power_down_with_a_wake_an_hour_on(make_rig: Callable[..., Rig]) -> None:
    clock = FakeClock()
    rig = make_rig(clock=clock)
    run_rig(rig, clock, 5.0)
    rig.parts.power.value = DRAINED
    run_rig(rig, clock, rig.sup.cfg.critical_drive_s + 5.0)
    d = rig.sup.last
    assert d is not None and d.state is State.CRITICAL_BATTERY and d.motors == ALL_BRAKED
    plan = rig.sup.power_down_plan
    assert plan is not None and plan.reason == "critical_battery"
    assert plan.detail.startswith("planned power-down at critical battery")
    utc = rig.sup.utc_now(clock.t)
    assert utc is not None and plan.wake_at is not None
    assert abs((plan.wake_at - utc).total_seconds() - rig.sup.settings.power.wake_retry_s) < 300.0
    assert [a.kind for a in rig.outbox.recent(50) if a.severity == "critical"] == ["critical_battery"]


def test_a_night_plan_wakes_when_the_sun_climbs_to_the_wake_elevation(make_rig: Callable[..., Rig]) -> None:
    clock = FakeClock()
    rig = make_rig(clock=clock)
    run_rig(rig, clock, 2.0)
    rig.sup._utc_anchor = (datetime(2024, 3, 15, 14, 0, tzinfo=UTC), clock.t)  # 19:30 local: dark
    plan = rig.sup._plan_power_down("night", clock.t)
    lat, lon = rig.sup._where()
    assert plan.wake_at is not None and plan.wake_at.date().isoformat() == "2024-03-16"
    assert sun.elevation_deg(plan.wake_at, lat, lon) == pytest.approx(
        rig.sup.settings.power.wake_sun_deg, abs=0.05
    )


def test_the_runner_stops_for_an_armed_power_down_and_carries_on_when_refused(
    make_rig: Callable[..., Rig],
) -> None:
    def go(accept: bool) -> tuple[Runner, list[PowerDownPlan]]:
        clock = FakeClock()
        rig = make_rig(clock=clock)
        armed: list[PowerDownPlan] = []

        def arm(plan: PowerDownPlan) -> bool:
            armed.append(plan)
            return accept

        rig.sup.power_down_plan = PowerDownPlan("night", "planned power-down for the night", NOON)
        r = Runner(rig.sup, rate_hz=20.0, clock=clock, arm_power_down=arm)
        code = asyncio.run(r.run(install_signals=False, max_steps=3))
        assert code == 0
        assert rig.link.sent[-1][1] == ALL_BRAKED  # every way out brakes
        return r, armed

    stopped, armed = go(True)
    assert stopped.power_down is not None and len(armed) == 1
    carried_on, armed = go(False)
    assert carried_on.power_down is None and len(armed) == 1  # refused once; no plan is made again


# ---- the composition root -------------------------------------------------------------------------------------


class FakeSms:
    """The part of SmsService the power-down uses: each poll sends one pending SMS."""

    def __init__(self, pending: int) -> None:
        self.pending = pending
        self.polls = 0

    def poll_once(self) -> None:
        self.polls += 1
        self.pending = max(0, self.pending - 1)

    @property
    def stats(self) -> dict[str, int]:
        return {"pending": self.pending}

    def close(self) -> None:
        pass


def test_the_robot_sends_its_alerts_closes_everything_records_why_then_powers_off(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from ramudroid.app import Robot, ScaledClock
    from robot.config import Settings

    monkeypatch.setattr("time.sleep", lambda s: None)  # the SMS flush waits between polls
    s = Settings()
    s = replace(s, robot=replace(s.robot, state_dir=str(tmp_path)))
    robot = Robot(s, clock=ScaledClock())
    robot.sms = FakeSms(pending=2)
    with caplog.at_level("WARNING"):
        robot.finish_power_down(PowerDownPlan("critical_battery", "planned power-down at critical battery"))
    assert robot.power_down.done == [
        "SMS alerts sent",
        "reason recorded",  # before the store closes with everything else
        "braked, progress saved, parts closed",
        "poweroff",
    ]
    assert robot.sms is None or robot.sms.stats["pending"] == 0
    from robot.core.boot import StopReason
    from robot.store import Store

    with Store.in_dir(tmp_path) as store:  # recorded in the store itself, for the next boot's rule
        saved = store.saved()
    assert saved is not None
    assert (saved.stop_reason, saved.stop_detail) == (
        StopReason.POWER_DOWN,
        "planned power-down at critical battery",
    )
    assert "the real robot would run systemctl poweroff" in caplog.text  # a simulated world: never for real
    assert (tmp_path / "route_progress.json").exists()
    robot.close()  # idempotent after the power-down closed everything
