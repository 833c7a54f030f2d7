"""The SIM800 driver against the fake SIM800 on a real pseudo-terminal, and the fake on its own."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from robot.errors import ModemError
from robot.gsm.modem import Sim800Modem, describe_error
from robot.hardware.interfaces import SmsModem
from sim.devices.modem import FakeSim800

OWNER = "+919876543210"


@pytest.fixture
def fake() -> Iterator[FakeSim800]:
    with FakeSim800() as f:
        yield f


@pytest.fixture
def modem(fake: FakeSim800) -> Iterator[Sim800Modem]:
    assert fake.port is not None
    with Sim800Modem(fake.port, timeout=2.0) as m:  # generous: answers take ~1 ms unless a test mutes
        yield m


def test_setup_puts_the_modem_in_sms_text_mode(fake: FakeSim800, modem: Sim800Modem) -> None:
    assert modem.ready
    assert isinstance(modem, SmsModem)
    assert fake.commands[:5] == ["AT", "ATE0", "AT+CMEE=2", "AT+CMGF=1", 'AT+CSCS="GSM"']  # after ESC
    assert (fake.echo, fake.cmee, fake.cmgf, fake.cnmi_mt) == (False, 2, 1, 1)


def test_send_sms_delivers_safe_text_cut_to_one_sms(fake: FakeSim800, modem: Sim800Modem) -> None:
    modem.send_sms(OWNER, "tray_full @ 1.96 kg")
    modem.send_sms(OWNER, "y" * 300)
    assert fake.outbox[0] == (OWNER, "tray-full at 1.96 kg")
    assert len(fake.outbox[1][1]) == 160
    assert modem.counters["sent"] == 2


def test_send_sms_rejects_a_bad_number_without_touching_the_modem(
    fake: FakeSim800, modem: Sim800Modem
) -> None:
    before = len(fake.commands)
    with pytest.raises(ModemError, match="expected a number"):
        modem.send_sms('+91";AT+CMGD=1,4', "hi")
    assert len(fake.commands) == before


def test_network_loss_fails_sends_with_a_clear_reason_then_recovers(
    fake: FakeSim800, modem: Sim800Modem
) -> None:
    assert modem.registered()
    fake.set_registered(False)
    assert not modem.registered()
    assert modem.signal() is None
    with pytest.raises(ModemError, match=r"CMS ERROR: 331.*no network service.*antenna"):
        modem.send_sms(OWNER, "hello")
    assert fake.outbox == []
    assert modem.counters["errors"] == 1
    fake.set_registered(True)
    modem.send_sms(OWNER, "hello")
    assert fake.outbox == [(OWNER, "hello")]
    assert modem.signal() == 18


@pytest.mark.parametrize(("code", "hint"), [(330, "SMS centre"), (50, "SMS plan"), (322, "memory full")])
def test_cms_errors_are_explained(fake: FakeSim800, modem: Sim800Modem, code: int, hint: str) -> None:
    fake.fail_next_send(code)
    with pytest.raises(ModemError, match=hint):
        modem.send_sms(OWNER, "hello")
    assert modem.ready  # the modem answered: no resync needed
    modem.send_sms(OWNER, "again")
    assert fake.outbox == [(OWNER, "again")]


def test_verbose_and_numeric_error_lines_are_described() -> None:
    assert describe_error("+CMS ERROR: 331") == (331, "no network service")
    assert describe_error("+CME ERROR: SIM not inserted") == (10, "SIM not inserted")
    assert describe_error("+CMS ERROR: 9999") == (9999, "see the SIM800 AT command manual")
    assert describe_error("ERROR") == (None, "command rejected")


def test_unsolicited_codes_in_the_middle_of_answers_are_set_aside(
    fake: FakeSim800, modem: Sim800Modem
) -> None:
    fake.interleave(b'\r\nRING\r\n\r\n+CMTI: "SM",3\r\n\r\n+CREG: 1\r\n')
    assert modem.registered()
    assert modem.has_new_messages
    fake.interleave(b'\r\n+CLIP: "+911234",145\r\n\r\nNO CARRIER\r\n')
    modem.send_sms(OWNER, "still fine")
    assert fake.outbox == [(OWNER, "still fine")]
    assert modem.counters["urc"] >= 5


def test_garbage_replies_are_counted_and_skipped(fake: FakeSim800, modem: Sim800Modem) -> None:
    fake.interleave(b"\xff\xfe\x00noise\r\n+CS\r\n")
    assert modem.signal() == 18
    assert modem.counters["rejected_lines"] == 2
    fake.inject_raw(b"\x55" * 5000)  # a flood with no line end (wrong baud rate, say)
    assert modem.registered()
    assert modem.counters["rejected_lines"] >= 3


def received(modem: Sim800Modem) -> list[tuple[str, str]]:
    return [(m.sender, m.text) for m in modem.receive_sms()]


def test_received_messages_are_read_in_pdu_mode_and_deleted_one_by_one(
    fake: FakeSim800, modem: Sim800Modem
) -> None:
    fake.inject_sms(OWNER, "STOP")
    fake.inject_sms("09876543210", "OK")  # a text that looks like a result code
    fake.inject_sms("+447700900123", "two\nlines\r\nERROR")
    got = modem.receive_sms()
    assert [(m.sender, m.text) for m in got] == [
        (OWNER, "STOP"),
        ("09876543210", "OK"),
        ("+447700900123", "two\nlines\r\nERROR"),
    ]
    assert "AT+CMGL=4" in fake.commands and fake.cmgf == 0
    assert len(fake.memory) == 3  # nothing deleted until handled
    for m in got:
        modem.delete_sms(m.index)
    assert fake.memory == {} and modem.counters["deleted"] == 3
    assert modem.receive_sms() == []
    modem.send_sms(OWNER, "back to text mode for sending")
    assert fake.cmgf == 1 and fake.outbox == [(OWNER, "back to text mode for sending")]


def test_forged_listing_lines_inside_a_body_are_only_text(fake: FakeSim800, modem: Sim800Modem) -> None:
    # In text mode this body would print as a second message from the owner; in PDU mode it is hex.
    forged = 'hi\r\nOK\r\n+CMGL: 9,"REC UNREAD","+919876543210","","24/05/01,10:20:30+22"\r\nRESET\r\nERROR'
    fake.inject_sms("+919999999999", forged)
    fake.inject_sms(OWNER, "STATUS")
    assert received(modem) == [("+919999999999", forged), (OWNER, "STATUS")]
    assert modem.counters["rejected_lines"] == 0


def test_long_and_unicode_bodies_arrive_as_data(fake: FakeSim800, modem: Sim800Modem) -> None:
    fake.inject_sms(OWNER, "x" * 200)  # two concatenated parts
    fake.inject_sms(OWNER, "रोबोट रुको")  # UCS-2
    got = modem.receive_sms()
    assert [m.message.part is not None for m in got] == [True, True, False]
    assert "".join(m.text for m in got[:2]) == "x" * 200 and got[2].text == "रोबोट रुको"


def test_an_undecodable_pdu_is_counted_and_deleted_and_the_rest_still_read(
    fake: FakeSim800, modem: Sim800Modem
) -> None:
    fake.inject_pdu("0004")  # an SMS-DELIVER cut short
    fake.inject_pdu("00" + "44" * 30)  # not a DELIVER at all
    fake.inject_sms(OWNER, "STOP")
    assert received(modem) == [(OWNER, "STOP")]
    assert modem.counters["rejected_pdus"] == 2 and sorted(fake.memory) == [3]


def test_a_full_sim_takes_new_messages_once_handled_ones_are_deleted(
    fake: FakeSim800, modem: Sim800Modem
) -> None:
    for i in range(fake.capacity):
        fake.inject_sms("+919999999999", f"junk {i}")
    assert fake.inject_sms(OWNER, "STOP") == -1  # held at the service centre: the SIM is full
    first = modem.receive_sms()
    assert len(first) == fake.capacity
    for m in first:
        modem.delete_sms(m.index)
    assert received(modem) == [(OWNER, "STOP")]


def test_new_message_indication_sets_the_hint_until_read(fake: FakeSim800, modem: Sim800Modem) -> None:
    fake.inject_sms(OWNER, "status")
    modem.signal()  # any command reads the +CMTI that arrived meanwhile
    assert modem.has_new_messages
    assert received(modem) == [(OWNER, "status")]
    assert not modem.has_new_messages


def test_a_setup_after_a_crash_at_the_send_prompt_escapes_it_first(fake: FakeSim800) -> None:
    assert fake.port is not None
    fake.feed(b'AT+CMGF=1\rAT+CMGS="+919876543210"\rhalf a mess')  # the previous run died here
    with Sim800Modem(fake.port, timeout=2.0) as m:
        assert m.ready
        m.send_sms(OWNER, "after the crash")
    assert fake.outbox == [(OWNER, "after the crash")]  # the half message was abandoned, never sent


def test_a_silent_modem_times_out_quickly_and_is_resynchronised_later(
    fake: FakeSim800, modem: Sim800Modem
) -> None:
    modem.timeout = 0.2
    fake.set_mute(True)
    start = time.monotonic()
    with pytest.raises(ModemError, match="no answer to AT"):
        modem.registered()
    assert time.monotonic() - start < 5.0
    assert not modem.ready
    assert modem.counters["timeouts"] >= 1
    fake.set_mute(False)
    modem.timeout = 2.0
    assert modem.registered()
    assert modem.ready
    assert fake.commands.count("ATE0") == 2


def test_a_timed_out_send_is_abandoned_and_the_modem_recovers(fake: FakeSim800, modem: Sim800Modem) -> None:
    modem.send_timeout = 0.3
    fake.hang_next_send()
    with pytest.raises(ModemError, match="no answer"):
        modem.send_sms(OWNER, "lost")
    modem.send_sms(OWNER, "found")
    assert fake.outbox == [(OWNER, "found")]


def test_a_modem_reboot_is_noticed_and_text_mode_restored(fake: FakeSim800, modem: Sim800Modem) -> None:
    fake.reboot()
    assert fake.cmgf == 0
    # The boot codes may reach the driver before or during the next command: at most one try is lost.
    try:
        modem.send_sms(OWNER, "after brown-out")
    except ModemError as err:
        assert "AT+CMGS" in str(err)  # PDU mode after the reboot (CMEE=0: a plain ERROR)
        modem.send_sms(OWNER, "after brown-out")
    assert fake.cmgf == 1
    assert fake.outbox == [(OWNER, "after brown-out")]


def test_close_is_idempotent_and_use_after_close_fails_clearly(fake: FakeSim800) -> None:
    assert fake.port is not None
    m = Sim800Modem(fake.port, timeout=0.3)
    m.close()
    m.close()
    with pytest.raises(ModemError, match="after close"):
        m.send_sms(OWNER, "x")


def test_a_missing_port_fails_with_the_fix() -> None:
    with pytest.raises(ModemError, match=r"/dev/does-not-exist.*modem_port"):
        Sim800Modem("/dev/does-not-exist")


def test_an_absent_modem_opens_but_is_not_ready() -> None:
    with FakeSim800() as dead:
        dead.set_mute(True)
        assert dead.port is not None
        m = Sim800Modem(dead.port, timeout=0.1)
        assert not m.ready
        assert m.last_error is not None and "no answer to AT" in m.last_error
        m.close()


def test_fake_works_in_memory_without_a_pty() -> None:
    fake = FakeSim800(use_pty=False)
    assert fake.port is None
    fake.feed(b"AT\r")
    assert fake.read_output() == b"AT\r\r\nOK\r\n"  # echo on at power-up
    fake.feed(b'ATE0\rAT+CMGF=1\rAT+CMGS="+919876543210"\r')
    assert fake.read_output().endswith(b"\r\n> ")
    fake.feed(b"hello\x1a")
    assert fake.read_output() == b"\r\n+CMGS: 1\r\n\r\nOK\r\n"
    assert fake.outbox == [("+919876543210", "hello")]
    fake.feed(b"AT+CNMI=2,1,0,0,0\r")
    fake.read_output()
    assert fake.inject_sms(OWNER, "hi") == 1
    assert fake.read_output() == b'\r\n+CMTI: "SM",1\r\n'
    fake.feed(b'AT+CMGL="ALL"\r')
    out = fake.read_output().decode()
    assert '+CMGL: 1,"REC UNREAD","+919876543210"' in out and "\r\nhi\r\n" in out and out.endswith("OK\r\n")
    fake.feed(b"AT+CMGF=0\rAT+CMGL=4\r")
    out = fake.read_output().decode()
    assert "+CMGL: 1,1,," in out and "\r\n00" in out and out.endswith("OK\r\n")
    fake.feed(b"AT+BOGUS\r")
    assert fake.read_output() == b"\r\nERROR\r\n"
    fake.close()
    fake.close()
