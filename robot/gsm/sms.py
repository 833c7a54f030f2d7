"""SMS texts, pure: number normalising, command parsing from trusted numbers, alert and status formatting."""

from __future__ import annotations

import hmac
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from robot.core.types import Alert, Command, CommandKind, Mode, Severity
from robot.telemetry import Telemetry

SMS_MAX = (
    160  # one GSM-7 SMS; longer texts would be split into parts that may arrive out of order or not at all
)

# Characters whose GSM 03.38 code equals their ASCII code, so they survive AT+CSCS="GSM" byte for byte.
GSM7_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 !\"#%&'()*+,-./:;<=>?")

# Common characters outside that set, spelled with safe ones instead of '?'.
_REPLACEMENTS = {
    "@": "at",
    "$": "USD",
    "_": "-",
    "[": "(",
    "]": ")",
    "{": "(",
    "}": ")",
    "\\": "/",
    "|": "/",
    "~": "-",
    "^": "",
    "`": "'",
    "°": " deg",
    "–": "-",
    "—": "-",
    "‘": "'",
    "’": "'",
    "“": '"',
    "”": '"',
    "…": "...",
    "₹": "Rs",
    "×": "x",
    "±": "+/-",
}


def gsm_safe(text: str) -> str:
    """Text reduced to characters a SIM800 in GSM charset passes unchanged; whitespace collapsed."""
    out: list[str] = []
    for ch in text:
        if ch in GSM7_SAFE:
            out.append(ch)
        elif ch.isspace():
            out.append(" ")
        elif ch in _REPLACEMENTS:
            out.append(_REPLACEMENTS[ch])
        else:
            # Accented letters keep their base letter (é -> e); anything else becomes '?'.
            base = "".join(c for c in unicodedata.normalize("NFKD", ch) if c in GSM7_SAFE)
            out.append(base or "?")
    return " ".join("".join(out).split())


def fit(text: str, limit: int = SMS_MAX) -> str:
    """GSM-safe text cut to `limit` characters, marking a cut with '...'."""
    text = gsm_safe(text)
    if len(text) <= limit:
        return text
    return text[: limit - 3].rstrip() + "..."


def normalise_number(number: str, country_code: str = "91") -> str:
    """A phone number in +<country><number> form; alphanumeric sender ids come back upper-cased as they are.

    Accepts "+91 98765-43210", "0091...", "0987..." (national trunk 0) and a bare 10-digit national number.
    """
    raw = number.strip()
    compact = "".join(ch for ch in raw if ch not in " -.()/")
    if not compact:
        return ""
    if compact.startswith("+"):
        digits = compact[1:]
        return "+" + digits if digits.isdigit() else raw.upper()
    if not compact.isdigit():
        return raw.upper()  # e.g. "AX-AIRTEL": operator sender ids can never be trusted numbers
    if compact.startswith("00"):
        return "+" + compact[2:]
    if compact.startswith("0"):
        return "+" + country_code + compact[1:]
    if len(compact) > 10:
        return "+" + compact  # already carries its country code
    return "+" + country_code + compact


class Verdict(StrEnum):
    """What to do with one received SMS."""

    COMMAND = "command"
    STATUS = "status"
    HELP = "help"
    UNTRUSTED = "untrusted"
    BAD_PIN = "bad_pin"
    PART = "part"  # one piece of a concatenated (long) message: data, never a command
    DISABLED = "disabled"  # a known command that sms.commands does not enable


@dataclass(frozen=True, slots=True)
class SmsRequest:
    """One received SMS, judged: the normalised sender, the verdict, and the command for COMMAND."""

    sender: str
    verdict: Verdict
    word: str = ""
    command: Command | None = None


# Command words and their spellings; the canonical word (first column) is what sms.commands lists.
COMMAND_WORDS = ("STATUS", "STOP", "RESET", "AUTO", "PAUSE", "EMPTIED")
_COMMANDS: dict[str, tuple[str, CommandKind | None, Mode | None]] = {
    "STATUS": ("STATUS", None, None),
    "S": ("STATUS", None, None),
    "?": ("STATUS", None, None),
    "STOP": ("STOP", CommandKind.ESTOP, None),
    "ESTOP": ("STOP", CommandKind.ESTOP, None),
    "HALT": ("STOP", CommandKind.ESTOP, None),
    "RESET": ("RESET", CommandKind.RESET, None),
    "AUTO": ("AUTO", CommandKind.SET_MODE, Mode.AUTO),
    "START": ("AUTO", CommandKind.SET_MODE, Mode.AUTO),
    "RESUME": ("AUTO", CommandKind.SET_MODE, Mode.AUTO),
    "PAUSE": ("PAUSE", CommandKind.SET_MODE, Mode.PAUSED),
    "EMPTIED": ("EMPTIED", CommandKind.TRAY_EMPTIED, None),
    "EMPTY": ("EMPTIED", CommandKind.TRAY_EMPTIED, None),
}
PIN_MIN_DIGITS = 6

_MEANING = {
    CommandKind.ESTOP: "emergency stop; send PIN RESET to clear",
    CommandKind.RESET: "faults and e-stop reset",
    CommandKind.TRAY_EMPTIED: "tray marked emptied",
}


def policy_error(trusted: Iterable[str], pin: str, commands: Iterable[str]) -> str:
    """Why this SMS command set-up is unsafe, or "" when it is fine: anything beyond STATUS from trusted
    numbers needs a PIN of at least 6 digits (caller id is easy to spoof; the PIN is what authorises)."""
    enabled = set(commands)
    unknown = sorted(enabled - set(COMMAND_WORDS))
    if unknown:
        return f"sms.commands: unknown {', '.join(unknown)}; choose from {', '.join(COMMAND_WORDS)}"
    if pin and not (pin.isdigit() and len(pin) >= PIN_MIN_DIGITS):
        return f"sms.pin: must be at least {PIN_MIN_DIGITS} digits (and only digits)"
    if tuple(trusted) and enabled - {"STATUS"} and not pin:
        return (
            f"sms.pin: SMS commands {', '.join(sorted(enabled - {'STATUS'}))} are enabled for "
            f"sms.trusted_numbers without a PIN; set sms.pin to {PIN_MIN_DIGITS} or more digits, or "
            'sms.commands = ["STATUS"]'
        )
    return ""


def parse_sms(
    sender: str,
    text: str,
    *,
    trusted: Iterable[str],
    pin: str,
    now: float,
    country_code: str = "91",
    enabled: Iterable[str] = COMMAND_WORDS,
    part: bool = False,
) -> SmsRequest:
    """Judge one SMS: only trusted numbers may command; every command but STOP and STATUS needs the PIN first.

    STOP from a trusted number acts without the PIN (and with a wrong one): stopping is never gated, and a
    spoofed caller id can only stop the robot. STATUS is answered without the PIN too: the reply goes to the
    real owner of the number, never to a spoofer. The command must be the whole message (after the PIN), case
    and surrounding punctuation ignored, so a chat message that merely contains "auto" never starts the robot.
    A piece of a long (concatenated) message is never a command, and no PIN means no commands beyond STATUS.
    """
    who = normalise_number(sender, country_code)
    trusted_set = {normalise_number(n, country_code) for n in trusted}
    if not who.startswith("+") or who not in trusted_set:
        return SmsRequest(who, Verdict.UNTRUSTED)
    if part:
        return SmsRequest(who, Verdict.PART)
    allowed = set(enabled) if pin else set(enabled) & {"STATUS"}
    words = text.split()
    # Caller id can be spoofed; the PIN is what really authorises. Constant-time compare.
    pin_ok = bool(pin) and bool(words) and hmac.compare_digest(words[0].encode(), pin.encode())
    if pin_ok:
        words = words[1:]
    last = words[-1].strip(".,;:!").upper() if words else ""
    canonical, kind, mode = _COMMANDS.get(last, ("", None, None))
    pin_attempt = len(words) == 2 and words[0].isdigit()  # "STOP" after a mistyped PIN still stops
    if canonical == "STOP" and (len(words) == 1 or pin_attempt) and "STOP" in allowed:
        return SmsRequest(who, Verdict.COMMAND, last, Command(kind, at=now, source=f"sms:{who}"))  # type: ignore[arg-type]
    if len(words) == 1 and canonical == "STATUS" and "STATUS" in allowed:
        return SmsRequest(who, Verdict.STATUS, last)
    if pin and not pin_ok:
        return SmsRequest(who, Verdict.BAD_PIN)
    if len(words) != 1 or not canonical:
        return SmsRequest(who, Verdict.HELP, " ".join(words)[:20])
    if canonical not in allowed:
        return SmsRequest(who, Verdict.DISABLED, canonical)
    assert kind is not None
    command = Command(kind=kind, at=now, mode=mode, source=f"sms:{who}")
    return SmsRequest(who, Verdict.COMMAND, last, command)


def help_text(name: str, pin_required: bool, enabled: Iterable[str] = COMMAND_WORDS) -> str:
    """The reply to an unknown message from a trusted number."""
    words = [w for w in COMMAND_WORDS if w in set(enabled)]
    prefix = "PIN then one of" if pin_required else "Send one of"
    return fit(f"{name}: {prefix}: {', '.join(words)}")


def ack_text(name: str, request: SmsRequest) -> str:
    """The reply confirming that a command was queued for the supervisor."""
    cmd = request.command
    if cmd is None:
        return fit(f"{name}: nothing to do")
    if cmd.kind is CommandKind.SET_MODE and cmd.mode is not None:
        meaning = f"mode {cmd.mode.value}"
    else:
        meaning = _MEANING.get(cmd.kind, cmd.kind.value)
    return fit(f"{name}: {request.word} accepted ({meaning})")


def format_alert(alert: Alert, name: str, repeats: int = 0) -> str:
    """One alert as one SMS: '<name> CRITICAL: <message>', noting coalesced repeats."""
    label = "CRITICAL" if alert.severity is Severity.CRITICAL else alert.severity.value.upper()
    suffix = f" (x{repeats + 1} in window)" if repeats else ""
    body = fit(f"{name} {label}: {alert.message}", SMS_MAX - len(suffix))
    return body + suffix


def format_status(t: Telemetry | None, name: str, now: float | None = None) -> str:
    """The STATUS reply: state and mode first, then battery, panel, tray, rain, GPS, link, age, reason."""
    if t is None:
        return fit(f"{name}: no status yet (supervisor not publishing)")
    parts = [f"{name} {t.state.upper()} mode {t.mode}"]
    batt = []
    if t.battery_v is not None:
        batt.append(f"{t.battery_v:.1f}V")
    if t.battery_soc is not None:
        batt.append(f"{t.battery_soc:.0%}")
    if batt:
        parts.append("batt " + " ".join(batt))
    if t.panel_w is not None:
        parts.append(f"panel {t.panel_w:.0f}W")
    if t.tray_kg is not None:
        parts.append(f"tray {t.tray_kg:.2f}kg")
    if t.raining is not None:
        parts.append("raining" if t.raining else "dry")
    parts.append(f"GPS {t.fix.lat:.5f},{t.fix.lon:.5f}" if t.fix is not None else "no GPS")
    parts.append("link ok" if t.link_ok else "link DOWN")
    if now is not None and now - t.at > 10.0:
        parts.append(f"data {now - t.at:.0f}s old")
    if t.reason:
        parts.append(t.reason)
    return fit(", ".join(parts))
