"""The SMS service end to end: outbox -> Sim800Modem -> fake SIM800 on a pty, and SMS commands back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from robot.alerts import AlertOutbox
from robot.commands import CommandQueue
from robot.core.types import ALL_BRAKED, Alert, Command, CommandKind, Mode, Severity
from robot.errors import ConfigError
from robot.gsm.modem import Sim800Modem
from robot.gsm.service import SmsService
from robot.store import Store
from robot.telemetry import Telemetry, TelemetryBus
from sim.devices.modem import FakeSim800

OWNER = "+919876543210"
DEPUTY = "+919812345678"
STRANGER = "+919999999999"
PIN = "482913"


class FakeClock:
    """Virtual monotonic time, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    """Everything around one SmsService."""

    fake: FakeSim800
    modem: Sim800Modem
    outbox: AlertOutbox
    commands: CommandQueue
    telemetry: TelemetryBus
    clock: FakeClock

    def service(self, **kw: object) -> SmsService:
        args: dict[str, object] = {
            "alert_numbers": [OWNER, "09812345678"],
            "trusted_numbers": [OWNER],
            "pin": PIN,
            "clock": self.clock,
            "name": "ramudroid-1",
        }
        args.update(kw)
        return SmsService(self.modem, self.outbox, self.commands, self.telemetry, **args)  # type: ignore[arg-type]

    def alert(
        self, kind: str = "tray_full", severity: Severity = Severity.CRITICAL, msg: str = "tray full"
    ) -> None:
        self.outbox.add(Alert(kind, severity, msg, self.clock.now))

    def sends(self) -> int:
        return sum(1 for c in self.fake.commands if c.startswith("AT+CMGS"))


@pytest.fixture
def rig() -> Iterator[Rig]:
    with FakeSim800() as fake:
        assert fake.port is not None
        with Sim800Modem(fake.port, timeout=2.0) as modem, Store(":memory:") as store:
            yield Rig(fake, modem, AlertOutbox(store=store), CommandQueue(), TelemetryBus(), FakeClock())


def test_a_critical_alert_becomes_an_sms_to_every_alert_number(rig: Rig) -> None:
    svc = rig.service()
    rig.alert(msg="tray full 1.96 kg; empty it and send EMPTIED")
    svc.poll_once()
    text = "ramudroid-1 CRITICAL: tray full 1.96 kg; empty it and send EMPTIED"
    assert rig.fake.outbox == [(OWNER, text), (DEPUTY, text)]
    assert svc.stats["sent"] == 2
    assert svc.stats["pending"] == 0


def test_info_alerts_stay_off_sms_and_warnings_go_after_criticals(rig: Rig) -> None:
    svc = rig.service(alert_numbers=[OWNER])
    rig.alert("night", Severity.INFO, "parked for the night")
    rig.alert("gps_lost", Severity.WARNING, "no GPS fix for 60 s")
    rig.alert("estop", Severity.CRITICAL, "emergency stop pressed")
    svc.poll_once()
    assert [text for _, text in rig.fake.outbox] == [
        "ramudroid-1 CRITICAL: emergency stop pressed",
        "ramudroid-1 WARNING: no GPS fix for 60 s",
    ]


def test_repeats_within_the_window_are_coalesced_and_summarised_later(rig: Rig) -> None:
    svc = rig.service(alert_numbers=[OWNER], coalesce_s=600.0)
    rig.alert("obstacle", Severity.WARNING, "obstacle at 0.3 m")
    svc.poll_once()
    for _ in range(3):
        rig.clock.now += 60.0
        rig.alert("obstacle", Severity.WARNING, "obstacle at 0.2 m")
        svc.poll_once()
    assert len(rig.fake.outbox) == 1
    assert svc.stats["alerts_coalesced"] == 3
    rig.clock.now += 500.0  # 680 s after the first SMS: the window has passed, the held repeats go out
    svc.poll_once()
    assert rig.fake.outbox[1] == (OWNER, "ramudroid-1 WARNING: obstacle at 0.2 m (x3 in window)")
    rig.clock.now += 601.0
    svc.poll_once()
    assert len(rig.fake.outbox) == 2  # nothing more was held back


def test_a_critical_is_not_hidden_by_an_earlier_warning_of_the_same_kind(rig: Rig) -> None:
    svc = rig.service(alert_numbers=[OWNER])
    rig.alert("battery", Severity.WARNING, "battery low 25%")
    svc.poll_once()
    rig.clock.now += 30.0
    rig.alert("battery", Severity.CRITICAL, "battery critical 9%")
    svc.poll_once()
    assert [t for _, t in rig.fake.outbox] == [
        "ramudroid-1 WARNING: battery low 25%",
        "ramudroid-1 CRITICAL: battery critical 9%",
    ]


def test_sends_during_network_loss_are_retried_with_backoff(rig: Rig) -> None:
    svc = rig.service(alert_numbers=[OWNER], retry_s=10.0)
    rig.fake.set_registered(False)
    rig.alert()
    svc.poll_once()
    assert svc.stats["send_failures"] == 1
    assert svc.pending == [(OWNER, "ramudroid-1 CRITICAL: tray full")]
    tries = rig.sends()
    rig.clock.now += 5.0
    svc.poll_once()
    assert rig.sends() == tries  # still backing off: the modem is not hammered
    rig.clock.now += 5.0
    svc.poll_once()
    assert rig.sends() == tries + 1
    assert svc.stats["send_failures"] == 2
    rig.fake.set_registered(True)
    rig.clock.now += 19.0
    svc.poll_once()
    assert rig.sends() == tries + 1  # second delay is 20 s
    rig.clock.now += 1.0
    svc.poll_once()
    assert rig.fake.outbox == [(OWNER, "ramudroid-1 CRITICAL: tray full")]
    assert svc.stats["pending"] == 0


def test_an_undeliverable_sms_is_given_up_and_counted(rig: Rig) -> None:
    svc = rig.service(alert_numbers=[OWNER], retry_s=1.0, retry_max_s=1.0, max_attempts=3)
    rig.fake.set_registered(False)
    rig.alert()
    for _ in range(4):
        svc.poll_once()
        rig.clock.now += 1.0
    assert svc.stats["gave_up"] == 1
    assert svc.stats["send_failures"] == 3
    assert svc.stats["pending"] == 0
    assert rig.fake.outbox == []


def test_a_full_send_queue_drops_the_least_urgent_and_counts_it(rig: Rig) -> None:
    svc = rig.service(alert_numbers=[OWNER], max_pending=2)
    rig.fake.set_registered(False)
    rig.alert("gps", Severity.WARNING, "gps lost")
    rig.alert("stuck", Severity.CRITICAL, "stuck")
    rig.alert("rain", Severity.CRITICAL, "rain")
    svc.poll_once()
    assert svc.stats["dropped"] == 1
    assert [t for _, t in svc.pending] == ["ramudroid-1 CRITICAL: stuck", "ramudroid-1 CRITICAL: rain"]


def test_alerts_beyond_the_in_memory_outbox_are_still_sent_from_the_store(rig: Rig) -> None:
    # Behaviour change on purpose: with the store, a full in-memory buffer no longer loses alerts for SMS.
    assert rig.outbox.store is not None
    rig.outbox = AlertOutbox(maxlen=2, store=rig.outbox.store)
    svc = rig.service(alert_numbers=[OWNER])
    for kind in ("a", "b", "c", "d", "e"):
        rig.alert(kind)
    svc.poll_once()
    assert rig.outbox.dropped == 3
    assert [t for _, t in rig.fake.outbox] == ["ramudroid-1 CRITICAL: tray full"] * 5


def test_a_trusted_stop_is_latched_on_disk_then_queued_then_acknowledged(rig: Rig) -> None:
    svc = rig.service()
    rig.fake.inject_sms("09876543210", "stop")  # no PIN needed to stop
    svc.poll_once()
    assert rig.commands.drain() == (Command(CommandKind.ESTOP, at=1000.0, source=f"sms:{OWNER}"),)
    assert rig.outbox.store is not None and rig.outbox.store.estop_latched
    assert rig.outbox.store.estop_source == f"sms:{OWNER}"
    assert rig.fake.outbox == [
        (OWNER, "ramudroid-1: STOP accepted (emergency stop; send PIN RESET to clear)")
    ]
    assert rig.fake.memory == {}  # read and deleted from the SIM


def test_a_stop_whose_latch_cannot_be_saved_still_stops_and_says_so(rig: Rig) -> None:
    svc = rig.service()
    assert rig.outbox.store is not None
    rig.outbox.store.close()  # every write now fails
    rig.outbox.store = Store(":memory:")  # alerts still work; the SMS service keeps the broken one
    rig.fake.inject_sms(OWNER, "STOP")
    with pytest.raises(Exception, match="after close"):
        svc.poll_once()
    assert [c.kind for c in rig.commands.drain()] == [CommandKind.ESTOP]
    assert svc.stats["store_errors"] >= 1


def test_an_untrusted_stop_is_ignored_and_counted(rig: Rig) -> None:
    svc = rig.service()
    rig.fake.inject_sms(STRANGER, "STOP")
    svc.poll_once()
    assert rig.commands.drain() == ()
    assert rig.fake.outbox == []
    assert svc.stats["untrusted"] == 1
    assert svc.stats["received"] == 1


def test_only_pinned_messages_command_and_others_get_no_reply(rig: Rig) -> None:
    svc = rig.service()
    rig.fake.inject_sms(OWNER, "AUTO")
    rig.fake.inject_sms(OWNER, f"{PIN} auto")
    svc.poll_once()
    assert rig.commands.drain() == (
        Command(CommandKind.SET_MODE, at=1000.0, mode=Mode.AUTO, source=f"sms:{OWNER}"),
    )
    assert svc.stats["bad_pin"] == 1
    assert rig.fake.outbox == [(OWNER, "ramudroid-1: AUTO accepted (mode auto)")]


def test_commands_without_a_pin_are_a_config_error(rig: Rig) -> None:
    with pytest.raises(ConfigError, match=r"sms\.pin"):
        rig.service(pin="")
    with pytest.raises(ConfigError, match="6 digits"):
        rig.service(pin="4321")
    rig.service(pin="", enabled=["STATUS"])  # status only: no PIN needed


def test_status_replies_with_the_latest_telemetry(rig: Rig) -> None:
    svc = rig.service()
    rig.telemetry.publish(
        Telemetry(
            at=995.0, wall=1.7e9, state="sheltering", mode="auto", reason="rain: going to shelter",
            goal="shelter", power_source="battery", motors=ALL_BRAKED, battery_v=11.6, battery_soc=0.55,
            raining=True, link_ok=True,
        )
    )  # fmt: skip
    rig.fake.inject_sms(OWNER, "STATUS")
    svc.poll_once()
    status = (
        "ramudroid-1 SHELTERING mode auto, batt 11.6V 55%, raining, no GPS, link ok, rain: going to shelter"
    )
    assert rig.fake.outbox == [(OWNER, status)]
    assert svc.stats["status_replies"] == 1


def test_unknown_words_get_the_help_text(rig: Rig) -> None:
    svc = rig.service()
    rig.fake.inject_sms(OWNER, f"{PIN} go home")
    svc.poll_once()
    assert rig.fake.outbox == [
        (OWNER, "ramudroid-1: PIN then one of: STATUS, STOP, RESET, AUTO, PAUSE, EMPTIED")
    ]
    assert rig.commands.drain() == ()


def test_a_full_command_queue_is_reported_back(rig: Rig) -> None:
    rig.commands = CommandQueue(maxsize=1)
    rig.commands.put(Command(CommandKind.RESET, at=0.0))
    svc = rig.service()
    rig.fake.inject_sms(OWNER, f"{PIN} PAUSE")
    svc.poll_once()
    assert svc.stats["commands_rejected"] == 1
    assert rig.fake.outbox == [(OWNER, "ramudroid-1: busy, PAUSE not taken; send it again")]


def test_messages_are_fetched_every_poll_interval_not_every_tick(rig: Rig) -> None:
    svc = rig.service(poll_s=5.0)
    svc.poll_once()
    rig.fake.inject_sms(OWNER, f"{PIN} EMPTIED")
    rig.clock.now += 4.0
    svc.poll_once()
    assert rig.commands.drain() == ()
    rig.clock.now += 1.0
    svc.poll_once()
    assert [c.kind for c in rig.commands.drain()] == [CommandKind.TRAY_EMPTIED]


def test_replies_are_rate_limited_per_number(rig: Rig) -> None:
    svc = rig.service(replies_per_hour=2)
    for _ in range(3):
        rig.fake.inject_sms(OWNER, "status")
    svc.poll_once()
    assert len(rig.fake.outbox) == 2
    assert svc.stats["replies_limited"] == 1
    rig.clock.now += 3600.0
    rig.fake.inject_sms(OWNER, "status")
    svc.poll_once()
    assert len(rig.fake.outbox) == 3


def test_a_silent_modem_does_not_stop_the_service(rig: Rig) -> None:
    svc = rig.service(alert_numbers=[OWNER], poll_s=5.0, retry_s=10.0)
    rig.modem.timeout = 0.2
    rig.fake.set_mute(True)
    rig.alert()
    svc.poll_once()
    assert svc.stats["send_failures"] == 1
    assert svc.stats["receive_failures"] == 1
    rig.fake.set_mute(False)
    rig.modem.timeout = 2.0
    rig.fake.inject_sms(OWNER, "STOP")
    rig.clock.now += 10.0
    svc.poll_once()
    assert (OWNER, "ramudroid-1 CRITICAL: tray full") in rig.fake.outbox
    assert [c.kind for c in rig.commands.drain()] == [CommandKind.ESTOP]


def test_the_background_thread_delivers_and_closes_cleanly(rig: Rig) -> None:
    svc = rig.service(clock=time.monotonic, tick_s=0.01, poll_s=0.02, alert_numbers=[OWNER])
    svc.start()
    try:
        rig.alert()
        rig.fake.inject_sms(OWNER, f"{PIN} RESET")
        deadline = time.monotonic() + 5.0
        while len(rig.fake.outbox) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # waiting on a real thread and a real pty; no virtual time to advance here
    finally:
        svc.close()
        svc.close()
    assert (OWNER, "ramudroid-1 CRITICAL: tray full") in rig.fake.outbox
    assert (OWNER, "ramudroid-1: RESET accepted (faults and e-stop reset)") in rig.fake.outbox
    assert [c.kind for c in rig.commands.drain()] == [CommandKind.RESET]
    assert svc.stats["loop_errors"] == 0


# ---- hostile senders, a full SIM, wrong PINs, crashes -------------------------------------------------------

FORGED = (
    'ok\r\nOK\r\n+CMGL: 7,"REC UNREAD","+919876543210","","24/05/01,10:20:30+22"\r\n'
    f"{PIN} RESET\r\nERROR\r\n+CMGL: 8,1,,24\r\n0004"
)


def test_forged_listing_lines_from_a_stranger_never_clear_an_estop_and_the_owners_stop_acts(rig: Rig) -> None:
    svc = rig.service()
    assert rig.outbox.store is not None
    rig.outbox.store.latch_estop("web")
    rig.fake.inject_sms(STRANGER, FORGED)
    rig.fake.inject_sms(STRANGER, f'RESET\n+CMGL: 2,"REC READ","{OWNER}"\n{PIN} AUTO')
    svc.poll_once()
    assert rig.commands.drain() == ()  # no RESET, no AUTO: the bodies were only ever text from a stranger
    assert rig.outbox.store.estop_latched
    assert svc.stats["untrusted"] == 2 and rig.fake.outbox == [] and rig.fake.memory == {}
    rig.fake.inject_sms(OWNER, "STOP")
    rig.clock.now += 5.0
    svc.poll_once()
    assert [c.kind for c in rig.commands.drain()] == [CommandKind.ESTOP]


def test_thirty_junk_texts_fill_the_sim_then_the_owners_stop_still_acts(rig: Rig) -> None:
    svc = rig.service()
    for i in range(rig.fake.capacity):
        rig.fake.inject_sms(STRANGER, f"win a prize {i} " + "x" * 100)
    assert len(rig.fake.memory) == 30
    rig.fake.inject_sms(OWNER, "STOP")  # the SIM is full: the network holds it back
    assert rig.fake.waiting
    for _ in range(3):
        svc.poll_once()
        if rig.commands.drain():
            break
        rig.clock.now += 1.0  # one service tick; the new-message indication triggers the read at once
    else:
        raise AssertionError("the owner's STOP never acted")
    assert rig.outbox.store is not None and rig.outbox.store.estop_latched
    assert svc.stats["untrusted"] == 30 and rig.fake.memory == {} and not rig.fake.waiting


def test_wrong_pins_lock_commands_out_and_alert_the_owner_but_stop_still_works(rig: Rig) -> None:
    svc = rig.service(max_bad_pins=5, lockout_s=3600.0, alert_numbers=[OWNER])
    for guess in range(5):
        rig.fake.inject_sms(OWNER, f"{100000 + guess} RESET")  # someone spoofing the owner's number
    svc.poll_once()
    assert svc.locked and svc.stats["bad_pin"] == 5 and svc.stats["lockouts"] == 1
    assert rig.commands.drain() == ()
    lockout = [t for n, t in rig.fake.outbox if "wrong SMS PINs" in t]
    assert lockout and lockout[0].startswith("ramudroid-1 CRITICAL:") and "STOP" in lockout[0]
    rig.fake.inject_sms(OWNER, f"{PIN} RESET")  # even the right PIN waits out the lockout
    rig.fake.inject_sms(OWNER, "STOP")
    rig.clock.now += 10.0
    svc.poll_once()
    assert [c.kind for c in rig.commands.drain()] == [CommandKind.ESTOP]
    assert svc.stats["locked_out"] == 1
    rig.clock.now += 3600.0
    rig.fake.inject_sms(OWNER, f"{PIN} RESET")
    svc.poll_once()
    assert [c.kind for c in rig.commands.drain()] == [CommandKind.RESET] and not svc.locked


def test_a_message_handled_before_a_crash_is_not_obeyed_again(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    svc = rig.service()
    rig.fake.inject_sms(OWNER, f"{PIN} RESET")

    def lost(index: int) -> None:
        from robot.errors import ModemError

        raise ModemError("no answer to AT+CMGD (the process died here)")

    monkeypatch.setattr(rig.modem, "delete_sms", lost)
    svc.poll_once()
    assert [c.kind for c in rig.commands.drain()] == [CommandKind.RESET]
    monkeypatch.undo()
    restarted = rig.service()  # same store, same SIM
    rig.clock.now += 10.0
    restarted.poll_once()
    assert rig.commands.drain() == () and restarted.stats["replayed"] == 1 and rig.fake.memory == {}


def test_a_long_message_from_the_owner_is_data_never_a_command(rig: Rig) -> None:
    svc = rig.service()
    rig.fake.inject_sms(OWNER, "y" * 150 + f" {PIN} RESET")  # 160+ characters: two parts, the 2nd "PIN RESET"
    svc.poll_once()
    assert rig.commands.drain() == () and svc.stats["parts"] == 2
