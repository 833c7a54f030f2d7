"""SIM800 GSM modem driver over AT commands, robust to URCs, garbage and timeouts.

Sending uses text mode. Receiving uses PDU mode: each message is listed as a header and one line of hex digits,
decoded by robot.gsm.pdu, so no message body can ever be read as a header, `OK` or `ERROR` (in text mode a body
is printed raw and a stranger could forge another sender's message inside their own). Messages are deleted one
by one, by index, once the caller has handled them.
"""

from __future__ import annotations

import csv
import logging
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from robot.errors import ModemError
from robot.gsm.pdu import Deliver, PduError, decode_deliver
from robot.gsm.sms import SMS_MAX, fit

log = logging.getLogger(__name__)

# +CMS ERROR codes (3GPP TS 27.005 and network causes of TS 24.011) an SMS sender meets in practice.
CMS_ERRORS: dict[int, str] = {
    1: "unassigned number",
    8: "operator determined barring",
    10: "call barred",
    21: "short message transfer rejected",
    27: "destination out of service",
    38: "network out of order",
    41: "temporary failure",
    42: "network congestion",
    47: "resources unavailable",
    50: "requested facility not subscribed (no SMS plan or credit)",
    96: "invalid mandatory information",
    300: "ME failure",
    301: "SMS service of ME reserved",
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "SIM not inserted",
    311: "SIM PIN required",
    312: "PH-SIM PIN required",
    313: "SIM failure",
    314: "SIM busy",
    315: "SIM wrong",
    316: "SIM PUK required",
    320: "memory failure",
    321: "invalid memory index",
    322: "SIM memory full",
    330: "SMS centre address unknown",
    331: "no network service",
    332: "network timeout",
    340: "no +CNMA acknowledgement expected",
    500: "unknown error",
}

CME_ERRORS: dict[int, str] = {
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    30: "no network service",
    31: "network timeout",
    100: "unknown error",
}

_FIXES: tuple[tuple[frozenset[int], str], ...] = (
    (frozenset({10, 11, 12, 13, 15, 310, 311, 312, 313, 315, 316}), "insert the SIM and remove its PIN lock"),
    (frozenset({14, 314}), "the SIM is still starting; it will be retried"),
    (
        frozenset({30, 31, 41, 42, 47, 331, 332, 38, 27}),
        "check the antenna and coverage (AT+CSQ), will retry",
    ),
    (frozenset({330}), "set the SMS centre number of your operator with AT+CSCA"),
    (frozenset({8, 10, 50}), "check the SIM's SMS plan and balance"),
    (frozenset({322}), "delete old messages from the SIM (AT+CMGDA)"),
    (frozenset({1}), "check the phone number in sms.alert_numbers / sms.trusted_numbers"),
)

# Unsolicited result codes a SIM800 may print at any time, also in the middle of a command's answer.
URC_PREFIXES = (
    "+CMTI:",
    "RING",
    "+CREG:",
    "+CLIP:",
    "NO CARRIER",
    "Call Ready",
    "SMS Ready",
    "+CPIN:",
    "RDY",
    "+CFUN:",
    "UNDER-VOLTAGE",
    "OVER-VOLTAGE",
    "NORMAL POWER DOWN",
    "+CDS:",
    "+CUSD:",
    "+CIEV:",
    "*PSUTTZ:",
    "DST:",
    "+CTZV:",
    "+PDP: DEACT",
)

_PROMPT = "\x00PROMPT"  # sentinel line for the "> " text prompt of AT+CMGS
_HEX = frozenset("0123456789ABCDEFabcdef")
_RESYNC_S = 0.15  # after ESC at setup: time for the answer to an abandoned prompt to arrive and be drained


@dataclass(frozen=True, slots=True)
class IncomingSms:
    """One received message as listed in PDU mode: its SIM index and the decoded SMS-DELIVER."""

    index: int
    message: Deliver

    @property
    def sender(self) -> str:
        return self.message.sender

    @property
    def text(self) -> str:
        return self.message.text


_MAX_LINE = 1024  # a "line" longer than this is garbage (wrong baud, noise): drop it
_READ_SLICE_S = 0.05  # serial read timeout; the command deadline is kept in our own loop


def describe_error(line: str) -> tuple[int | None, str]:
    """(code, meaning) of a +CMS ERROR / +CME ERROR / ERROR line; verbose (AT+CMEE=2) text kept."""
    if line == "ERROR":
        return None, "command rejected"
    table = CMS_ERRORS if line.startswith("+CMS") else CME_ERRORS
    detail = line.split(":", 1)[1].strip()
    if detail.isdigit():
        code = int(detail)
        return code, table.get(code, "see the SIM800 AT command manual")
    # Verbose form: find the code whose text matches, so the fix hint still applies.
    for code, text in table.items():
        if text.lower() == detail.lower():
            return code, detail
    return None, detail


def _fix_for(code: int | None) -> str:
    for codes, fix in _FIXES:
        if code in codes:
            return fix
    return "see the SIM800 AT command manual"


class Sim800Modem:
    """A SIM800 on a serial port (any pyserial URL): send and receive SMS, report network registration.

    Opening fails only when the port cannot be opened. If the modem does not answer yet (it needs ~3 s after
    power-up) the AT setup is retried before each operation, which raises ModemError until it succeeds.
    """

    def __init__(
        self,
        url: str,
        *,
        baud: int = 115200,
        timeout: float = 2.0,
        send_timeout: float = 60.0,
        resync_s: float = _RESYNC_S,
    ) -> None:
        self.url = url
        self.baud = baud
        self.timeout = timeout
        self.send_timeout = send_timeout  # SIM800 manual: +CMGS may take up to 60 s on a slow network
        self.resync_s = resync_s
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "sent",
                "received",
                "urc",
                "rejected_lines",
                "rejected_pdus",
                "timeouts",
                "errors",
                "inits",
                "deleted",
            ),
            0,
        )
        self.last_error: str | None = None
        self.notify = True  # False when AT+CNMI was refused: then we rely on polling alone
        self._lock = threading.RLock()
        self._buf = bytearray()
        self._ready = False
        self._closed = False
        self._new_messages = False
        self._creg: int | None = None
        self._cmgf: int | None = None  # 1 text (sending), 0 PDU (receiving); None unknown
        import serial  # lazy: the module imports on a machine without pyserial

        try:
            self._port: Any = serial.serial_for_url(
                url, baudrate=baud, timeout=_READ_SLICE_S, write_timeout=timeout
            )
        except (serial.SerialException, ValueError) as err:
            raise ModemError(
                f"GSM modem on {url}: cannot open the port ({err}); check hardware.modem_port and that "
                "this user is in the dialout group"
            ) from err
        try:
            self._ensure_ready()
        except ModemError as err:
            log.warning("%s (will retry)", err)

    # ----- public API -----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once the AT setup succeeded and no timeout has happened since."""
        return self._ready

    @property
    def has_new_messages(self) -> bool:
        """True when the modem announced a new SMS (+CMTI) that receive_sms() has not fetched yet."""
        return self._new_messages

    @property
    def registration(self) -> int | None:
        """Last +CREG status seen: 0 none, 1 home, 2 searching, 3 denied, 5 roaming; None before any."""
        return self._creg

    def send_sms(self, number: str, text: str) -> None:
        """Send one SMS (text made GSM-safe and cut to 160 characters); raises ModemError on any failure."""
        digits = number[1:] if number.startswith("+") else number
        if not digits.isdigit() or not 3 <= len(digits) <= 20:
            raise ModemError(f"GSM modem: cannot send to {number!r}: expected a number like +919876543210")
        body = fit(text, SMS_MAX)
        with self._lock:
            self._ensure_ready()
            self._set_format(1)
            cmd = f'AT+CMGS="{number}"'
            self._command(cmd, prompt=True)
            self._write(body.encode("ascii") + b"\x1a")
            lines = self._collect(cmd, expect="+CMGS:", timeout=self.send_timeout)
            if not any(line.startswith("+CMGS:") for line in lines):
                self.counters["rejected_lines"] += 1  # OK without a message reference: odd, but it was sent
            self.counters["sent"] += 1

    def receive_sms(self) -> list[IncomingSms]:
        """Every message stored on the SIM (read or not), oldest index first, decoded from PDU mode. Nothing
        is deleted here: call delete_sms(index) once a message is handled. A message that cannot be decoded is
        deleted at once and counted in `rejected_pdus` (it would only fill the SIM)."""
        with self._lock:
            self._ensure_ready()
            self._new_messages = False
            self._set_format(0)
            lines = self._command("AT+CMGL=4", expect="+CMGL:", pdu=True)
            out: list[IncomingSms] = []
            undecodable: list[int] = []
            i = 0
            while i < len(lines):
                header = lines[i]
                if not header.startswith("+CMGL:"):
                    self.counters["rejected_lines"] += 1  # a hex line without its header
                    i += 1
                    continue
                body = lines[i + 1] if i + 1 < len(lines) and not lines[i + 1].startswith("+CMGL:") else None
                i += 2 if body is not None else 1
                parsed = self._parse_cmgl(header)
                if parsed is None:
                    continue
                index, length = parsed
                if body is None:
                    self.counters["rejected_lines"] += 1
                    continue
                try:
                    out.append(IncomingSms(index, decode_deliver(body, length)))
                except PduError as err:
                    self.counters["rejected_pdus"] += 1
                    log.warning(
                        "GSM modem on %s: message %d undecodable (%s); deleting it", self.url, index, err
                    )
                    undecodable.append(index)
            for index in undecodable:
                self._delete(index)
            self.counters["received"] += len(out)
            return sorted(out, key=lambda m: m.index)

    def delete_sms(self, index: int) -> None:
        """Delete one message from the SIM; raises ModemError when the modem does not confirm it."""
        with self._lock:
            self._ensure_ready()
            self._delete(index)

    def _delete(self, index: int) -> None:
        self._command(f"AT+CMGD={int(index)}")
        self.counters["deleted"] += 1

    def _set_format(self, cmgf: int) -> None:
        if self._cmgf != cmgf:
            self._command(f"AT+CMGF={cmgf}")
            self._cmgf = cmgf

    def registered(self) -> bool:
        """True when registered on the home network or roaming (AT+CREG? stat 1 or 5)."""
        with self._lock:
            self._ensure_ready()
            for line in self._command("AT+CREG?", expect="+CREG:"):
                fields = line.split(":", 1)[1].split(",")
                if len(fields) >= 2 and fields[1].strip().isdigit():
                    self._creg = int(fields[1])
                    return self._creg in (1, 5)
            self.counters["rejected_lines"] += 1
            raise self._fail(f"GSM modem on {self.url}: no usable answer to AT+CREG?")

    def signal(self) -> int | None:
        """Received signal strength as CSQ 0..31 (dBm = -113 + 2 x CSQ), None when the modem does not know."""
        with self._lock:
            self._ensure_ready()
            for line in self._command("AT+CSQ", expect="+CSQ:"):
                rssi = line.split(":", 1)[1].split(",")[0].strip()
                if rssi.isdigit():
                    value = int(rssi)
                    return value if value <= 31 else None
            self.counters["rejected_lines"] += 1
            raise self._fail(f"GSM modem on {self.url}: no usable answer to AT+CSQ")

    def sim_status(self) -> str:
        """The SIM card from AT+CPIN?: "READY", or what it waits for ("SIM PIN", "SIM PUK", ...); raises
        ModemError when the modem says why not (e.g. +CME ERROR: SIM not inserted)."""
        with self._lock:
            self._ensure_ready()
            for line in self._command("AT+CPIN?", expect="+CPIN:"):
                return line.split(":", 1)[1].strip()
            self.counters["rejected_lines"] += 1
            raise self._fail(f"GSM modem on {self.url}: no usable answer to AT+CPIN?")

    def close(self) -> None:
        """Close the serial port; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._ready = False
            self._port.close()

    def __enter__(self) -> Sim800Modem:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ----- setup ----------------------------------------------------------------------------------

    def _ensure_ready(self) -> None:
        if self._closed:
            raise ModemError(f"GSM modem on {self.url}: used after close()")
        self._drain()  # a reboot announced meanwhile (RDY) must be seen before trusting the old setup
        if self._ready:
            return
        self.counters["inits"] += 1
        # ESC first: if a previous run died at the "> " prompt of AT+CMGS, the modem would take our commands
        # as message text. ESC abandons that message (the modem answers OK, drained below), and is ignored at
        # the command prompt.
        self._write(b"\x1b")
        time.sleep(self.resync_s)
        self._drain()
        self._buf.clear()  # the echo of ESC, if any, is a line fragment of no meaning
        # The SIM800 auto-bauds on the first "AT" it hears, so the first tries may go unanswered.
        for attempt in range(3):
            try:
                self._command("AT", timeout=min(self.timeout, 1.0))
                break
            except ModemError:
                if attempt == 2:
                    raise self._fail(
                        f"GSM modem on {self.url}: no answer to AT at {self.baud} baud; check power, "
                        "TX/RX wiring (crossed) and hardware.modem_baud"
                    ) from None
        self._cmgf = None
        for cmd in ("ATE0", "AT+CMEE=2", "AT+CMGF=1", 'AT+CSCS="GSM"'):
            self._command(cmd)
        self._cmgf = 1
        # New-message indications only speed things up; polling with AT+CMGL works without them.
        try:
            self._command("AT+CSDH=0")
            self._command("AT+CNMI=2,1,0,0,0")
            self.notify = True
        except ModemError as err:
            self.notify = False
            log.info("GSM modem on %s: no new-message indications (%s); polling only", self.url, err)
        self._ready = True
        self.last_error = None

    # ----- AT transactions ------------------------------------------------------------------------

    def _command(
        self,
        cmd: str,
        *,
        expect: str = "",
        timeout: float | None = None,
        prompt: bool = False,
        pdu: bool = False,
    ) -> list[str]:
        """Send `cmd` and return the information lines answering it (starting with `expect`)."""
        self._drain()
        self._write(cmd.encode("ascii") + b"\r")
        return self._collect(cmd, expect=expect, timeout=timeout, prompt=prompt, pdu=pdu)

    def _collect(
        self,
        cmd: str,
        *,
        expect: str = "",
        timeout: float | None = None,
        prompt: bool = False,
        pdu: bool = False,
    ) -> list[str]:
        """Read until the final result code (or the "> " prompt when `prompt`); URCs and garbage set aside.

        With `pdu`, lines made only of hex digits are kept too (the PDUs of a listing): they can never be
        mistaken for a header or a result code, whatever the message says.
        """
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        lines: list[str] = []
        while True:
            line = self._readline(deadline, prompt=prompt)
            if line is None:
                self.counters["timeouts"] += 1
                self._ready = False  # resynchronise (AT, ATE0, ...) before the next operation
                if prompt:
                    self._write(b"\x1b")  # abandon the half-open AT+CMGS so the modem returns to commands
                raise self._fail(f"GSM modem on {self.url}: no answer to {cmd} within {limit:.1f} s")
            if line == _PROMPT or (prompt and line.startswith(">")):
                return lines
            if not line:
                continue
            if line == "OK":
                if prompt:
                    raise self._fail(f"GSM modem on {self.url}: {cmd} answered OK without the '>' prompt")
                return lines
            if line == "ERROR" or line.startswith(("+CMS ERROR:", "+CME ERROR:")):
                code, meaning = describe_error(line)
                if code is None or code in (302, 303, 304, 305):
                    self._ready = False  # setup problem (PDU mode after a reboot?): redo the setup next time
                raise self._fail(
                    f"GSM modem on {self.url}: {cmd} answered {line!r} ({meaning}); {_fix_for(code)}"
                )
            if expect and line.startswith(expect) and not self._is_creg_urc(expect, line):
                lines.append(line)
                continue
            if pdu and len(line) % 2 == 0 and set(line) <= _HEX:
                lines.append(line)
                continue
            if self._handle_urc(line):
                continue
            if line.upper() == cmd.upper():
                continue  # our own echo (before ATE0 took effect)
            self.counters["rejected_lines"] += 1
            log.debug("GSM modem on %s: ignored line %r while waiting for %s", self.url, line, cmd)

    @staticmethod
    def _is_creg_urc(expect: str, line: str) -> bool:
        # "+CREG: <stat>" (one field) is the URC; the answer to AT+CREG? has "<n>,<stat>".
        return expect == "+CREG:" and "," not in line

    def _handle_urc(self, line: str) -> bool:
        """Note an unsolicited result code; False when the line is not one."""
        if not line.startswith(URC_PREFIXES):
            return False
        self.counters["urc"] += 1
        if line.startswith("+CMTI:"):
            self._new_messages = True
        elif line.startswith("+CREG:"):
            stat = line.split(":", 1)[1].split(",")[-1].strip()
            if stat.isdigit():
                self._creg = int(stat)
        elif line.startswith(("RDY", "Call Ready", "NORMAL POWER DOWN", "UNDER-VOLTAGE")):
            self._ready = False  # the modem restarted or browned out: its settings are gone
        return True

    def _drain(self) -> None:
        """Handle what arrived between commands (URCs, late answers) so it is not taken as an answer."""
        try:
            while waiting := self._port.in_waiting:
                self._buf.extend(self._port.read(waiting))
        except OSError as err:
            self._ready = False
            raise self._fail(f"GSM modem on {self.url}: read failed ({err}); check the cable") from err
        while (nl := self._buf.find(b"\n")) >= 0:
            line = self._decode(self._buf[:nl])
            del self._buf[: nl + 1]
            if line and not self._handle_urc(line):
                self.counters["rejected_lines"] += 1
        if len(self._buf) > _MAX_LINE:
            self._buf.clear()
            self.counters["rejected_lines"] += 1

    def _readline(self, deadline: float, *, prompt: bool) -> str | None:
        """The next line without CR/LF, _PROMPT for the "> " prompt, or None at the deadline."""
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                raw = self._buf[:nl]
                del self._buf[: nl + 1]
                return self._decode(raw)
            if prompt:
                head = self._buf.lstrip(b"\r")
                if head.startswith(b">"):
                    self._buf.clear()  # nothing else is sent before we answer the prompt
                    return _PROMPT
            if len(self._buf) > _MAX_LINE:
                self._buf.clear()
                self.counters["rejected_lines"] += 1
            if time.monotonic() >= deadline:
                return None
            try:
                chunk = self._port.read(max(1, self._port.in_waiting))
            except OSError as err:
                self._ready = False
                raise self._fail(f"GSM modem on {self.url}: read failed ({err}); check the cable") from err
            self._buf.extend(chunk)

    @staticmethod
    def _decode(raw: bytes | bytearray) -> str:
        # latin-1 maps every byte, so line noise can never raise; GSM-charset letters and digits are ASCII.
        return bytes(raw).decode("latin-1").strip("\r").strip()

    def _write(self, data: bytes) -> None:
        try:
            self._port.write(data)
        except OSError as err:  # serial.SerialException and SerialTimeoutException are OSErrors
            self._ready = False
            raise self._fail(f"GSM modem on {self.url}: write failed ({err}); check the cable") from err

    def _fail(self, message: str) -> ModemError:
        self.counters["errors"] += 1
        self.last_error = message
        return ModemError(message)

    # ----- messages -------------------------------------------------------------------------------

    def _parse_cmgl(self, header: str) -> tuple[int, int] | None:
        """(index, TPDU length) from a PDU-mode listing header '+CMGL: 3,0,,24' (alpha may be quoted)."""
        try:
            fields = next(csv.reader([header.split(":", 1)[1].strip()], skipinitialspace=True))
            index, length = int(fields[0]), int(fields[-1])
        except (StopIteration, IndexError, ValueError, csv.Error):
            self.counters["rejected_lines"] += 1
            return None
        if len(fields) < 3 or not 0 <= index <= 65535 or not 0 < length <= 200:
            self.counters["rejected_lines"] += 1
            return None
        return index, length
