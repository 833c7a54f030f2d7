"""The Supervisor in virtual time: readings in, each decision out to the link, relay, outbox, telemetry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conftest import FakeClock, Rig

from robot.core.types import ALL_BRAKED, Command, CommandKind, PowerSource, State
from robot.errors import ScaleError


def run(rig: Rig, clock: FakeClock, seconds: float, dt: float = 0.05) -> None:
    """Poll every part and step, every dt, as the simulator does."""
    for _ in range(round(seconds / dt)):
        now = clock.advance(dt)
        rig.sup.poll_parts(now)
        rig.sup.step(now)


def test_supervisor_sends_one_frame_per_step_and_publishes_what_it_decided(
    make_rig: Callable[..., Rig],
) -> None:
    clock = FakeClock()
    rig = make_rig(clock=clock)
    run(rig, clock, 1.0)
    assert len(rig.link.sent) == rig.sup.steps == 20
    tel = rig.telemetry.latest()
    assert tel is not None and tel.at == clock.t
    assert tel.state == State.CLEANING.value and tel.motors == rig.link.sent[-1][1]
    assert tel.motors.moving and tel.motors.brushing  # navigation settled on the fixes and drives on
    assert tel.counters["scale_errors"] == 0


def test_supervisor_switches_the_relay_only_when_the_source_changes(make_rig: Callable[..., Rig]) -> None:
    clock = FakeClock()
    rig = make_rig(clock=clock)
    run(rig, clock, rig.sup.cfg.switch_dwell_s + 2.0, dt=0.25)
    assert rig.parts.relay.selected == [PowerSource.BATTERY, PowerSource.PANEL]
    assert "power_source" in [a.kind for a in rig.outbox.recent(50)]


def test_failing_part_is_counted_goes_stale_and_faults(make_rig: Callable[..., Rig]) -> None:
    clock = FakeClock()
    rig = make_rig(clock=clock)
    run(rig, clock, 1.0)
    rig.parts.scale.fail = ScaleError("tray scale on GPIO 5/6: no data")
    run(rig, clock, rig.sup.cfg.sensor_stale_s - 0.1)
    assert rig.sup.last is not None and rig.sup.last.state is State.CLEANING  # last good reading still fresh
    run(rig, clock, 0.2)
    d = rig.sup.last
    assert d is not None and d.state is State.FAULT and "tray scale" in d.reason
    assert rig.link.sent[-1][1] == ALL_BRAKED
    assert rig.sup.readings.scale.errors == round((rig.sup.cfg.sensor_stale_s + 0.1) / 0.05)
    assert "no data" in rig.sup.readings.scale.last_error
    tel = rig.telemetry.latest()
    assert tel is not None and tel.counters["scale_errors"] == rig.sup.readings.scale.errors
    assert [a.kind for a in rig.outbox.recent(5)][-1] == "fault"


def test_operator_estop_through_the_queue_brakes_and_alerts(make_rig: Callable[..., Rig]) -> None:
    clock = FakeClock()
    rig = make_rig(clock=clock)
    run(rig, clock, 1.0)
    assert rig.commands.put(Command(CommandKind.ESTOP, at=clock.t, source="web"))
    run(rig, clock, 0.05)
    assert rig.sup.last is not None and rig.sup.last.state is State.ESTOP
    assert rig.link.sent[-1][1] == ALL_BRAKED
    assert rig.outbox.recent(1)[0].kind == "estop"


def test_obstacle_reading_brakes_on_the_next_step(make_rig: Callable[..., Rig]) -> None:
    clock = FakeClock()
    rig = make_rig(clock=clock)
    run(rig, clock, 1.0)
    assert rig.link.sent[-1][1].moving
    rig.parts.distance.value = 0.2
    run(rig, clock, 0.05)
    assert rig.link.sent[-1][1] == ALL_BRAKED and rig.sup.last is not None
    assert rig.sup.last.state is State.OBSTACLE_STOP


def test_close_brakes_once_and_is_idempotent(make_rig: Callable[..., Rig]) -> None:
    clock = FakeClock()
    rig = make_rig(clock=clock)
    run(rig, clock, 1.0)
    before = len(rig.link.sent)
    with rig.sup:
        pass
    rig.sup.close()
    assert [m for _, m in rig.link.sent[before:]] == [ALL_BRAKED]


def test_throttled_telemetry_publishes_each_second_and_at_once_on_a_new_decision(
    make_rig: Callable[..., Rig],
) -> None:
    clock = FakeClock()
    rig = make_rig(clock=clock)
    rig.sup.telemetry_every_s = 1.0  # the simulator's setting
    run(rig, clock, 3.0)
    settled = rig.telemetry.version
    assert settled < rig.sup.steps  # not every step
    run(rig, clock, 3.0)
    assert 2 <= rig.telemetry.version - settled <= 3  # once a second (50 ms steps: 1.0-1.05 s) while it holds
    tel = rig.telemetry.latest()
    assert tel is not None and clock.t - tel.at < 1.0 and tel.state == State.CLEANING.value
    assert rig.commands.put(Command(CommandKind.ESTOP, at=clock.t, source="web"))
    run(rig, clock, 0.05)
    tel = rig.telemetry.latest()
    assert tel is not None and tel.at == clock.t and tel.state == State.ESTOP.value
    assert tel.recent_alerts[-1].kind == "estop"


def test_side_sensors_reach_the_core_and_a_failing_one_goes_stale_and_brakes(parts: Any) -> None:
    """hardware.side fitted: the supervisor polls the pair, hands it to the core (a thing 0.1 m from a side stops
    the robot), and a pair that stops answering goes stale, which brakes too."""
    from conftest import FakeLink, FakePart

    from robot.alerts import AlertOutbox
    from robot.commands import CommandQueue
    from robot.config import from_dict
    from robot.site_file import demo_site
    from robot.supervisor import Supervisor
    from robot.telemetry import TelemetryBus

    class FakeSide(FakePart):
        def distances_m(self) -> tuple[float | None, float | None]:
            return self._read()  # type: ignore[no-any-return]

    parts.side = FakeSide((4.0, 4.0))
    clock = FakeClock()
    settings = from_dict({"hardware": {"side": "sim"}, "control": {"fault_clear_s": 0.0}})
    link = FakeLink(clock)
    rig = Rig(None, parts, link, AlertOutbox(), CommandQueue(), TelemetryBus())
    rig.sup = Supervisor(
        settings, parts, link, site=demo_site(), outbox=rig.outbox, commands=rig.commands, telemetry=rig.telemetry
    )  # fmt: skip
    run(rig, clock, 1.0)
    assert rig.link.sent[-1][1].moving
    tel = rig.telemetry.latest()
    assert tel is not None and tel.side_left_m == 4.0 and tel.side_right_m == 4.0
    parts.side.value = (4.0, 0.1)
    run(rig, clock, 0.05)
    assert rig.link.sent[-1][1] == ALL_BRAKED and rig.sup.last is not None
    assert "right side sensor" in rig.sup.last.reason
    parts.side.value = (4.0, 4.0)
    run(rig, clock, rig.sup.cfg.quiet_s + 1.0)  # gone: after the passers-by rule's quiet time it drives on
    assert rig.link.sent[-1][1].moving
    parts.side.fail = ScaleError("side sensors: no echo")  # every read fails from now on
    run(rig, clock, 1.0)
    assert rig.sup.readings.side.errors > 0
    assert not rig.link.sent[-1][1].moving and "side distance unknown" in rig.sup.last.reason
