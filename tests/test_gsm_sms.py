"""SMS texts: number normalising, command parsing from trusted numbers, alert and status formatting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from robot.core.types import ALL_BRAKED, Alert, CommandKind, Mode, Severity
from robot.gsm.sms import (
    GSM7_SAFE,
    SMS_MAX,
    Verdict,
    ack_text,
    fit,
    format_alert,
    format_status,
    gsm_safe,
    help_text,
    normalise_number,
    parse_sms,
    policy_error,
)
from robot.hardware.interfaces import GpsFix
from robot.telemetry import Telemetry

OWNER = "+919876543210"
PIN = "482913"


@pytest.mark.parametrize(
    "raw",
    ["+919876543210", "+91 98765 43210", "+91-98765-43210", "00919876543210", "09876543210", "9876543210",
     "919876543210", " (+91) 98765.43210 "],
)  # fmt: skip
def test_indian_number_spellings_all_normalise_to_the_international_form(raw: str) -> None:
    assert normalise_number(raw) == OWNER


def test_other_country_numbers_keep_their_code() -> None:
    assert normalise_number("+44 7700 900123") == "+447700900123"
    assert normalise_number("0044 7700 900123") == "+447700900123"
    assert normalise_number("07700900123", country_code="44") == "+447700900123"


def test_operator_sender_ids_are_never_numbers() -> None:
    assert normalise_number("AX-Airtel") == "AX-AIRTEL"
    assert parse_sms("AX-Airtel", "STOP", trusted=[OWNER], pin="", now=0.0).verdict is Verdict.UNTRUSTED


@pytest.mark.parametrize(
    ("text", "kind", "mode"),
    [
        ("STOP", CommandKind.ESTOP, None),
        ("stop", CommandKind.ESTOP, None),
        (" Stop! ", CommandKind.ESTOP, None),
        ("RESET", CommandKind.RESET, None),
        ("auto", CommandKind.SET_MODE, Mode.AUTO),
        ("Pause.", CommandKind.SET_MODE, Mode.PAUSED),
        ("EMPTIED", CommandKind.TRAY_EMPTIED, None),
    ],
)
def test_trusted_command_words_become_commands(text: str, kind: CommandKind, mode: Mode | None) -> None:
    req = parse_sms("09876543210", f"{PIN} {text}", trusted=["+91 98765 43210"], pin=PIN, now=12.5)
    assert req.verdict is Verdict.COMMAND
    assert req.command is not None
    assert req.command.kind is kind
    assert req.command.mode is mode
    assert req.command.at == 12.5
    assert req.command.source == f"sms:{OWNER}"


def test_untrusted_number_is_not_obeyed_even_with_the_pin() -> None:
    for text in ("STOP", f"{PIN} RESET", "STATUS"):
        req = parse_sms("+919999999999", text, trusted=[OWNER], pin=PIN, now=0.0)
        assert req.verdict is Verdict.UNTRUSTED
        assert req.command is None


def test_status_and_unknown_words() -> None:
    assert parse_sms(OWNER, "status", trusted=[OWNER], pin=PIN, now=0.0).verdict is Verdict.STATUS
    assert parse_sms(OWNER, f"{PIN} dance", trusted=[OWNER], pin=PIN, now=0.0).verdict is Verdict.HELP
    assert parse_sms(OWNER, PIN, trusted=[OWNER], pin=PIN, now=0.0).verdict is Verdict.HELP


def test_a_chat_message_containing_a_command_word_is_not_a_command() -> None:
    for text in (f"{PIN} please go auto now", "please stop", "don't stop"):
        assert parse_sms(OWNER, text, trusted=[OWNER], pin=PIN, now=0.0).verdict is not Verdict.COMMAND


def test_every_command_but_stop_and_status_needs_the_pin_first() -> None:
    ok = parse_sms(OWNER, f"{PIN} reset", trusted=[OWNER], pin=PIN, now=0.0)
    assert ok.verdict is Verdict.COMMAND and ok.command is not None and ok.command.kind is CommandKind.RESET
    for text in ("RESET", "482914 RESET", f"RESET {PIN}", f"{PIN}RESET", "AUTO"):
        assert parse_sms(OWNER, text, trusted=[OWNER], pin=PIN, now=0.0).verdict is Verdict.BAD_PIN, text


@pytest.mark.parametrize("text", ["STOP", "stop!", f"{PIN} STOP", "111111 halt"])
def test_stop_from_a_trusted_number_acts_with_or_without_the_pin(text: str) -> None:
    req = parse_sms(OWNER, text, trusted=[OWNER], pin=PIN, now=0.0)
    assert (
        req.verdict is Verdict.COMMAND and req.command is not None and req.command.kind is CommandKind.ESTOP
    )


def test_without_a_pin_only_status_is_answered() -> None:
    assert parse_sms(OWNER, "STATUS", trusted=[OWNER], pin="", now=0.0).verdict is Verdict.STATUS
    for text in ("STOP", "RESET", "AUTO"):
        assert parse_sms(OWNER, text, trusted=[OWNER], pin="", now=0.0).verdict is not Verdict.COMMAND


def test_disabled_commands_and_message_parts_never_command() -> None:
    only = ["STATUS", "STOP"]
    req = parse_sms(OWNER, f"{PIN} AUTO", trusted=[OWNER], pin=PIN, now=0.0, enabled=only)
    assert req.verdict is Verdict.DISABLED
    assert parse_sms(OWNER, "STOP", trusted=[OWNER], pin=PIN, now=0.0, part=True).verdict is Verdict.PART


@pytest.mark.parametrize(
    ("trusted", "pin", "commands", "fragment"),
    [
        ([OWNER], "", ["STATUS", "STOP"], "sms.pin: SMS commands STOP are enabled"),
        ([OWNER], "12345", ["STATUS", "RESET"], "at least 6 digits"),
        ([OWNER], "abcdef", ["STATUS"], "at least 6 digits"),
        ([OWNER], PIN, ["STATUS", "FLY"], "unknown FLY"),
    ],
)
def test_unsafe_sms_policies_are_refused(
    trusted: list[str], pin: str, commands: list[str], fragment: str
) -> None:
    assert fragment in policy_error(trusted, pin, commands)


def test_safe_sms_policies_pass() -> None:
    assert policy_error([OWNER], "", ["STATUS"]) == ""
    assert policy_error([], "", ["STATUS", "STOP", "RESET"]) == ""  # no trusted numbers: no commands at all
    assert policy_error([OWNER], PIN, ["STATUS", "STOP", "RESET", "AUTO", "PAUSE", "EMPTIED"]) == ""


def test_gsm_safe_replaces_characters_the_gsm_charset_would_garble() -> None:
    assert (
        gsm_safe("tray_full @ 1.9 kg, 35°C, ₹500 café\n\tok") == "tray-full at 1.9 kg, 35 degC, Rs500 cafe ok"
    )
    assert "\x1a" not in gsm_safe("end\x1amore")  # Ctrl-Z would end the AT+CMGS text early


@given(st.text(max_size=400))
def test_fit_always_gives_one_safe_sms(text: str) -> None:
    out = fit(text)
    assert len(out) <= SMS_MAX
    assert set(out) <= GSM7_SAFE


def test_fit_marks_a_cut() -> None:
    out = fit("x" * 200)
    assert len(out) == SMS_MAX
    assert out.endswith("...")


def test_alert_text_names_robot_severity_and_keeps_the_repeat_count_when_cut() -> None:
    alert = Alert("tray_full", Severity.CRITICAL, "tray full 1.96 kg; empty it and send EMPTIED", 5.0)
    assert (
        format_alert(alert, "ramudroid-1")
        == "ramudroid-1 CRITICAL: tray full 1.96 kg; empty it and send EMPTIED"
    )
    long = Alert("stuck", Severity.WARNING, "stuck " * 60, 5.0)
    text = format_alert(long, "ramudroid-1", repeats=3)
    assert len(text) <= SMS_MAX
    assert text.startswith("ramudroid-1 WARNING: stuck")
    assert text.endswith("(x4 in window)")


def _telemetry(**kw: object) -> Telemetry:
    base: dict[str, object] = {
        "at": 100.0,
        "wall": 1.7e9,
        "state": "cleaning",
        "mode": "auto",
        "reason": "following route",
        "goal": "route",
        "power_source": "panel",
        "motors": ALL_BRAKED,
    }
    base.update(kw)
    return Telemetry(**base)  # type: ignore[arg-type]


def test_status_text_reports_the_readings() -> None:
    fix = GpsFix(None, 12.971601, 77.594563, 3, 0.4, 90.0, 0.9, 9)
    t = _telemetry(
        battery_v=11.84, battery_soc=0.62, panel_w=31.4, tray_kg=0.8, raining=False, fix=fix, link_ok=True
    )
    text = format_status(t, "ramudroid-1", now=101.0)
    assert text == (
        "ramudroid-1 CLEANING mode auto, batt 11.8V 62%, panel 31W, tray 0.80kg, dry, GPS 12.97160,77.59456, "
        "link ok, following route"
    )


def test_status_text_says_when_data_is_stale_or_missing_and_stays_one_sms() -> None:
    t = _telemetry(state="fault", reason="arduino link lost: " + "x" * 200)
    text = format_status(t, "ramudroid-1", now=400.0)
    assert text.startswith("ramudroid-1 FAULT mode auto, no GPS, link DOWN, data 300s old, arduino link lost")
    assert len(text) <= SMS_MAX
    assert "no status yet" in format_status(None, "ramudroid-1")


def test_help_and_ack_texts() -> None:
    assert "PIN" in help_text("r1", pin_required=True)
    assert "PIN" not in help_text("r1", pin_required=False)
    req = parse_sms(OWNER, f"{PIN} pause", trusted=[OWNER], pin=PIN, now=0.0)
    assert ack_text("r1", req) == "r1: PAUSE accepted (mode paused)"
