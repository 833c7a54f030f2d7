"""The state store (SQLite WAL) and the boot rule: what a restart remembers, and what the robot does with it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import Rig

from robot.alerts import AlertOutbox
from robot.config import Settings
from robot.core.boot import RESUMABLE, SavedState, StopReason, boot_mode
from robot.core.types import ALL_BRAKED, Alert, Command, CommandKind, Mode, Severity, State
from robot.errors import StoreError
from robot.store import DB_FILE, Store


def settings(resume: bool = True, start_mode: str = "auto") -> Settings:
    s = Settings()
    return replace(s, control=replace(s.control, resume_after_restart=resume, start_mode=start_mode))


# ---- the boot rule (pure) ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("saved", "resume", "mode", "estop"),
    [
        (None, True, Mode.AUTO, False),  # no store at all: control.start_mode
        (SavedState(), True, Mode.AUTO, False),  # first boot
        (SavedState(unreadable=True), True, Mode.PAUSED, True),  # cannot know: assume a person's stop
        (SavedState(estop=True, mode=Mode.AUTO, state=State.ESTOP), True, Mode.PAUSED, True),
        (SavedState(estop=True, mode=Mode.AUTO, state=State.CLEANING), True, Mode.PAUSED, True),
        (SavedState(mode=Mode.PAUSED, state=State.PAUSED), True, Mode.PAUSED, False),
        (SavedState(mode=Mode.MANUAL, state=State.MANUAL), True, Mode.PAUSED, False),
        (
            SavedState(mode=Mode.AUTO, state=State.CLEANING, stop_reason=StopReason.CRASH),
            True,
            Mode.AUTO,
            False,
        ),
        (SavedState(mode=Mode.AUTO, state=State.CLEANING), False, Mode.PAUSED, False),
        (SavedState(mode=Mode.AUTO, state=State.STUCK), True, Mode.PAUSED, False),  # needs a person
        (SavedState(mode=Mode.AUTO, state=None), True, Mode.PAUSED, False),  # unknown: do not move
        (
            SavedState(mode=Mode.AUTO, state=State.CRITICAL_BATTERY, stop_reason=StopReason.POWER_DOWN),
            True,
            Mode.AUTO,
            False,
        ),
    ],
)
def test_boot_rule(saved: SavedState | None, resume: bool, mode: Mode, estop: bool) -> None:
    plan = boot_mode(saved, settings(resume))
    assert (plan.mode, plan.estop) == (mode, estop), plan.reason
    assert plan.reason


def test_a_person_stop_never_boots_into_motion_whatever_the_config() -> None:
    for resume in (True, False):
        for start_mode in ("auto", "manual", "paused"):
            for state in State:
                for person in (
                    SavedState(estop=True, mode=Mode.AUTO, state=state),
                    SavedState(mode=Mode.PAUSED, state=state),
                    SavedState(mode=Mode.MANUAL, state=state),
                ):
                    plan = boot_mode(person, settings(resume, start_mode))
                    assert plan.mode is Mode.PAUSED, (person, resume, start_mode)
    assert State.ESTOP not in RESUMABLE and State.PAUSED not in RESUMABLE and State.MANUAL not in RESUMABLE


# ---- the store ----------------------------------------------------------------------------------------------


def test_estop_latch_mode_state_and_stop_reason_survive_reopening(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path) as st:
        assert st.saved() == SavedState()
        gen = st.latch_estop("web 127.0.0.1")
        assert st.latch_estop("sms:+91") == gen  # already latched: the first latch holds
        st.save_mode(Mode.AUTO, "web")
        st.save_state(State.ESTOP)
        st.mark_running()
    with Store(tmp_path / DB_FILE) as st:
        saved = st.saved()
        assert saved.estop and saved.estop_source == "web 127.0.0.1"
        assert (saved.mode, saved.state, saved.stop_reason) == (Mode.AUTO, State.ESTOP, StopReason.CRASH)
        assert st.estop_generation == gen
        assert not st.clear_estop(gen - 1)  # a RESET that saw an older latch does not clear this one
        assert st.estop_latched
        assert st.clear_estop(gen, "web")
        st.record_stop(StopReason.SIGNAL)
    with Store(tmp_path / DB_FILE) as st:
        assert not st.saved().estop and st.saved().stop_reason is StopReason.SIGNAL
        assert [e.kind for e in st.events()] == ["estop", "mode", "start", "reset", "stop"]


def test_a_planned_power_down_is_not_overwritten_by_the_sigterm_that_follows(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path) as st:
        st.mark_running()
        st.record_stop(StopReason.POWER_DOWN, "battery 9 %")
        st.record_stop(StopReason.SIGNAL)
        assert st.saved().stop_reason is StopReason.POWER_DOWN and st.saved().stop_detail == "battery 9 %"
        st.mark_running()  # the next run starts from scratch
        assert st.saved().stop_reason is StopReason.CRASH


@pytest.mark.parametrize("garbage", [b"not a database at all" * 100, b"SQLite format 3\x00" + bytes(4000)])
def test_an_unreadable_store_is_set_aside_and_the_robot_boots_estopped(
    tmp_path: Path, garbage: bytes
) -> None:
    (tmp_path / DB_FILE).write_bytes(garbage)
    with Store.in_dir(tmp_path) as st:
        assert st.recovered and "unreadable" in st.recovered
        assert st.saved().unreadable
        plan = boot_mode(st.saved(), settings())
        assert plan.estop and plan.mode is Mode.PAUSED
        st.latch_estop("boot")  # the new database works
    assert list(tmp_path.glob(f"{DB_FILE}.unreadable-*"))
    with Store.in_dir(tmp_path) as st:
        assert st.saved().estop


@pytest.mark.parametrize(
    "record", ["[[[[[[[[[[", "[" * 100000 + "]" * 100000, '{"latched": "no", "generation": 1}', '"x"', "7"]
)
def test_a_damaged_estop_record_counts_as_latched(tmp_path: Path, record: str) -> None:
    with Store.in_dir(tmp_path):
        pass
    with sqlite3.connect(tmp_path / DB_FILE) as raw:
        raw.execute("INSERT INTO kv VALUES ('estop', ?, 0)", (record,))
    with Store.in_dir(tmp_path) as st:
        saved = st.saved()
        assert saved.estop and "unreadable" in saved.estop_source
        assert boot_mode(saved, settings()).estop


def test_a_damaged_mode_or_state_record_boots_paused_and_estopped(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path):
        pass
    with sqlite3.connect(tmp_path / DB_FILE) as raw:
        raw.execute("""INSERT INTO kv VALUES ('mode', '{"mode": "turbo"}', 0)""")
    with Store.in_dir(tmp_path) as st:
        plan = boot_mode(st.saved(), settings())
        assert plan.mode is Mode.PAUSED and plan.estop


def test_alerts_become_sms_exactly_once_and_the_outbox_survives(tmp_path: Path) -> None:
    with Store.in_dir(tmp_path) as st:
        ids = [st.add_alert(Alert(f"k{i}", Severity.CRITICAL, f"m{i}", float(i))) for i in range(3)]
        todo = st.alerts_for_sms()
        assert [a.id for a in todo] == ids
        st.queue_sms([("+91", "m0", 0, ids[0])], handled_alerts=[ids[0]])
        assert [a.id for a in st.alerts_for_sms()] == ids[1:]
    with Store.in_dir(tmp_path) as st:
        (pending,) = st.pending_sms()
        assert (pending.number, pending.text, pending.alert_id) == ("+91", "m0", ids[0])
        st.sms_attempted(pending.id, 1)
        st.sms_done(pending.id, "sent")
        assert st.pending_sms() == [] and st.sms_count("sent") == 1
        assert [a.alert.message for a in st.recent_alerts(2)] == ["m1", "m2"]


def test_use_after_close_is_a_clear_error(tmp_path: Path) -> None:
    st = Store.in_dir(tmp_path)
    st.close()
    st.close()
    with pytest.raises(StoreError, match="after close"):
        st.latch_estop("x")


def test_a_state_dir_that_cannot_be_created_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match=r"state directory .*robot.state_dir"):
        Store.in_dir(tmp_path / "file" / "sub")


# ---- the supervisor with a store -----------------------------------------------------------------------------


@pytest.fixture
def store_rig(make_rig: Callable[..., Rig], tmp_path: Path) -> Callable[..., Rig]:
    """make_rig with a store in tmp_path (a new Supervisor per call = a restart)."""
    from robot.supervisor import Supervisor

    def build(**control: object) -> Rig:
        rig = make_rig(**control)
        store = Store.in_dir(tmp_path)
        rig.outbox = AlertOutbox(store=store)
        rig.sup = Supervisor(
            rig.sup.settings,
            rig.parts,
            rig.link,
            site=rig.sup.site,
            outbox=rig.outbox,
            commands=rig.commands,
            telemetry=rig.telemetry,
            store=store,
        )
        return rig

    return build


def run(rig: Rig, t0: float, steps: int) -> float:
    t = t0
    for _ in range(steps):
        rig.sup.poll_parts(t)
        rig.sup.step(t)
        t += 0.05
    return t


def test_a_latch_in_the_store_stops_the_robot_even_when_its_command_never_arrives(
    store_rig: Callable[..., Rig],
) -> None:
    rig = store_rig()
    t = run(rig, 0.0, 5)
    assert rig.sup.last is not None and rig.sup.last.state is not State.ESTOP
    assert rig.sup.store is not None
    rig.sup.store.latch_estop("web 10.0.0.7")  # e.g. the queue was full: no ESTOP command queued
    t = run(rig, t, 1)
    assert rig.sup.last.state is State.ESTOP and rig.link.sent[-1][1] == ALL_BRAKED
    assert any("web 10.0.0.7" in a.message for a in rig.outbox.recent(5))


def test_estop_survives_a_restart_until_reset_and_then_the_robot_stays_paused(
    store_rig: Callable[..., Rig],
) -> None:
    rig = store_rig()
    t = run(rig, 0.0, 3)
    rig.commands.put(Command(CommandKind.ESTOP, at=t, source="sms:+919876543210"))
    t = run(rig, t, 2)
    assert rig.sup.last is not None and rig.sup.last.state is State.ESTOP
    assert rig.sup.store is not None and rig.sup.store.estop_latched  # the supervisor latched it itself
    rig.sup.store.close()

    again = store_rig()  # restart: same state dir
    t = run(again, 100.0, 40)
    assert again.sup.last is not None and again.sup.last.state is State.ESTOP
    assert all(m == ALL_BRAKED for _, m in again.link.sent)
    assert any(a.kind == "boot" and "RESET" in a.message for a in again.outbox.recent(10))
    again.commands.put(Command(CommandKind.RESET, at=t, source="web"))
    t = run(again, t, 40)
    assert again.sup.last.state is State.PAUSED and all(m == ALL_BRAKED for _, m in again.link.sent)
    assert again.sup.store is not None and not again.sup.store.estop_latched


def test_a_pause_survives_a_restart_and_a_working_robot_resumes(store_rig: Callable[..., Rig]) -> None:
    rig = store_rig()
    t = run(rig, 0.0, 3)
    rig.commands.put(Command(CommandKind.SET_MODE, at=t, mode=Mode.PAUSED, source="web"))
    run(rig, t, 3)
    assert rig.sup.store is not None
    rig.sup.store.close()
    paused = store_rig()
    assert paused.sup.core.mode is Mode.PAUSED
    t = run(paused, 0.0, 3)
    paused.commands.put(Command(CommandKind.SET_MODE, at=t, mode=Mode.AUTO, source="web"))
    run(paused, t, 40)
    assert paused.sup.last is not None and paused.sup.last.state is not State.PAUSED
    assert paused.sup.store is not None
    paused.sup.store.close()
    resumed = store_rig()  # it was working on its own when it stopped: resume (the default)
    assert resumed.sup.core.mode is Mode.AUTO and not resumed.sup.core.estop
    assert resumed.sup.store is not None
    resumed.sup.store.close()
    assert store_rig(resume_after_restart=False).sup.core.mode is Mode.PAUSED


def test_after_a_planned_power_down_at_critical_battery_the_boot_resumes_knowing_the_battery_is_critical(
    store_rig: Callable[..., Rig],
) -> None:
    """The critical alert went out before the halt: the woken robot resumes by the boot rule, and its core
    starts critical so the same event is not raised (and texted) again."""
    from robot.core.boot import StopReason

    rig = store_rig()
    run(rig, 0.0, 3)
    store = rig.sup.store
    assert store is not None
    store.save_state(State.CRITICAL_PARKING)
    store.record_stop(StopReason.POWER_DOWN, "planned power-down at critical battery")
    store.record_stop(StopReason.SIGNAL, "SIGTERM")  # the poweroff's own SIGTERM does not overwrite it
    store.close()
    woken = store_rig()
    assert woken.sup.core.mode is Mode.AUTO and woken.sup.core.critical and not woken.sup.core.estop
    assert woken.sup.store is not None
    woken.sup.store.close()

    rig2 = store_rig()  # a crash in a critical state is not a planned end: nothing is assumed
    assert rig2.sup.store is not None
    rig2.sup.store.save_state(State.CRITICAL_BATTERY)
    rig2.sup.store.close()
    assert not store_rig().sup.core.critical
