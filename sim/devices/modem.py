"""A fake SIM800 GSM modem answering AT commands byte for byte, on a pseudo-terminal or fed in memory.

Messages are kept as SMS-DELIVER PDUs, as a real SIM keeps them: listed raw in text mode (where a body can
contain anything, even lines that look like headers) and as hex in PDU mode. A text longer than one SMS arrives
as concatenated parts, and a message that finds the SIM full waits at the service centre until a slot is free.
"""

from __future__ import annotations

import contextlib
import csv
import os
import select
import threading
import time
import tty
from dataclasses import dataclass
from types import TracebackType

from robot.gsm.pdu import decode_deliver, encode_deliver, gsm7_encode, tpdu_length

CTRL_Z = 0x1A
ESC = 0x1B


_STATS = ("REC UNREAD", "REC READ", "STO UNSENT", "STO SENT")


@dataclass
class StoredSms:
    """One message in the fake SIM's memory: its SMS-DELIVER PDU (hex, with an empty SMSC field)."""

    stat: str  # "REC UNREAD" or "REC READ"
    pdu: str

    @property
    def decoded(self) -> tuple[str, str, str]:
        """(number, text, scts) as text mode shows them; an undecodable PDU shows as empty."""
        try:
            d = decode_deliver(self.pdu)
        except ValueError:
            return "", "", ""
        return d.sender, d.text, d.scts


def split_text(text: str) -> list[str]:
    """The parts a network delivers for `text`: one when it fits one SMS, else 153 GSM / 67 UCS-2 characters
    each (an escaped character is never split from its escape)."""
    septets = gsm7_encode(text)
    if septets is not None:
        if len(septets) <= 160:
            return [text]
        parts, cur, used = [], "", 0
        for ch in text:
            n = len(gsm7_encode(ch) or [0, 0])
            if used + n > 153:
                parts.append(cur)
                cur, used = "", 0
            cur += ch
            used += n
        return [*parts, cur]
    if len(text) <= 70:
        return [text]
    return [text[i : i + 67] for i in range(0, len(text), 67)]


class FakeSim800:
    """Behaves like a SIM800 in SMS text mode: echo, AT+CMEE, +CMGS prompt, +CMGL listing, +CMTI, +CREG.

    With `use_pty` (the default) a thread serves the master side of a pseudo-terminal and `port` is the slave
    path to open with pyserial. Without it, `feed()` bytes in and `read_output()` bytes out, no thread.
    Faults for tests: `set_registered(False)` (sends fail with +CMS ERROR: 331), `fail_next_send(code)`,
    `interleave(data)` (bytes written just before the next answer), `inject_raw(data)`, `set_mute(True)`.
    """

    def __init__(
        self, *, use_pty: bool = True, registered: bool = True, signal: int = 18, capacity: int = 30
    ) -> None:
        self.outbox: list[tuple[str, str]] = []  # (number, text) of every SMS "sent"
        self.commands: list[str] = []  # every AT command line received, in order
        self.memory: dict[int, StoredSms] = {}
        self.capacity = capacity
        self.waiting: list[str] = []  # PDUs held at the service centre while the SIM is full
        self._ref = 0
        self.echo = True  # a SIM800 powers up with echo on
        self.cmee = 0
        self.cmgf = 0  # powers up in PDU mode, like the real one
        self.cnmi_mt = 0
        self.creg_n = 0
        self.signal = signal
        self._registered = registered
        self._mute = False
        self._fail_next: int | None = None
        self._hang_next = False
        self._pending: list[bytes] = []
        self._line = bytearray()
        self._text: bytearray | None = None  # message text being typed after the "> " prompt
        self._to = ""
        self._mr = 0
        self._out = bytearray()
        self._lock = threading.RLock()
        self._closed = False
        self._master: int | None = None
        self._slave: int | None = None
        self._thread: threading.Thread | None = None
        self.port: str | None = None
        if use_pty:
            self._master, self._slave = os.openpty()
            # Raw at once: a cooked slave would echo our own answers back to us as commands.
            tty.setraw(self._slave)
            os.set_blocking(self._master, False)
            self.port = os.ttyname(self._slave)
            self._thread = threading.Thread(target=self._serve, name="fake-sim800", daemon=True)
            self._thread.start()

    # ----- test controls --------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes from the computer (DTE) to the modem."""
        with self._lock:
            for byte in data:
                self._byte(byte)

    def read_output(self) -> bytes:
        """Bytes the modem has written since the last call (in-memory mode only)."""
        with self._lock:
            out = bytes(self._out)
            self._out.clear()
            return out

    def inject_sms(self, number: str, text: str) -> int:
        """A message arrives from `number` (in parts when long): stored unread at the lowest free index, which
        is returned (of the first part); -1 when the SIM is full and it waits at the service centre."""
        parts = split_text(text)
        scts = time.strftime("%y/%m/%d,%H:%M:%S+22", time.gmtime())
        with self._lock:
            if len(parts) == 1:
                return self.inject_pdu(encode_deliver(number, text, scts))
            self._ref = (self._ref + 1) % 256
            indexes = [
                self.inject_pdu(encode_deliver(number, part, scts, (self._ref, len(parts), i + 1)))
                for i, part in enumerate(parts)
            ]
            return indexes[0]

    def inject_pdu(self, pdu: str) -> int:
        """A raw SMS-DELIVER PDU (hex, SMSC field first) arrives; index, or -1 while the SIM is full."""
        with self._lock:
            free = next((i for i in range(1, self.capacity + 1) if i not in self.memory), None)
            if free is None:
                self.waiting.append(pdu)
                return -1
            self.memory[free] = StoredSms("REC UNREAD", pdu)
            if self.cnmi_mt in (1, 2) and not self._mute:
                self._emit(f'\r\n+CMTI: "SM",{free}\r\n'.encode())
            return free

    def set_registered(self, registered: bool) -> None:
        """Gain or lose the network; announced with +CREG: <stat> when AT+CREG=1 asked for it."""
        with self._lock:
            self._registered = registered
            if self.creg_n >= 1 and not self._mute:
                self._emit(f"\r\n+CREG: {1 if registered else 0}\r\n".encode())

    def fail_next_send(self, code: int) -> None:
        """The next AT+CMGS ends with +CMS ERROR: <code> instead of being sent."""
        with self._lock:
            self._fail_next = code

    def hang_next_send(self) -> None:
        """The next AT+CMGS takes the text and then never answers (the network swallowed it)."""
        with self._lock:
            self._hang_next = True

    def interleave(self, data: bytes) -> None:
        """Bytes (URCs, garbage) written right before the next answer, as a modem does mid-command."""
        with self._lock:
            self._pending.append(data)

    def inject_raw(self, data: bytes) -> None:
        """Bytes written to the computer now."""
        with self._lock:
            self._emit(data)

    def set_mute(self, mute: bool) -> None:
        """A hung or unpowered modem: input is swallowed, nothing is answered."""
        with self._lock:
            self._mute = mute

    def reboot(self) -> None:
        """Power-cycle (a brown-out): settings back to power-up defaults, the boot URCs printed, SIM kept."""
        with self._lock:
            self.echo, self.cmee, self.cmgf, self.cnmi_mt, self.creg_n = True, 0, 0, 0, 0
            self._line.clear()
            self._text = None
            self._emit(b"\r\nRDY\r\n\r\n+CFUN: 1\r\n\r\n+CPIN: READY\r\n\r\nCall Ready\r\n\r\nSMS Ready\r\n")

    def close(self) -> None:
        """Stop the thread and close the pseudo-terminal; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def __enter__(self) -> FakeSim800:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ----- the pty side ---------------------------------------------------------------------------

    def _serve(self) -> None:
        assert self._master is not None
        while not self._closed:
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return  # the pty went away
            self.feed(data)

    def _emit(self, data: bytes) -> None:
        if self._master is None:
            self._out.extend(data)
            return
        view = memoryview(data)
        deadline = time.monotonic() + 1.0
        while view and time.monotonic() < deadline:
            try:
                view = view[os.write(self._master, view) :]
            except BlockingIOError:
                select.select([], [self._master], [], 0.05)  # the reader is slow: wait, never forever
            except OSError:
                return

    # ----- the modem ------------------------------------------------------------------------------

    def _byte(self, byte: int) -> None:
        if self._mute:
            return
        if self._text is not None:
            self._text_byte(byte)
            return
        if self.echo:
            self._emit(bytes([byte]))
        if byte == 0x0D:
            line = self._line.decode("latin-1").strip()
            self._line.clear()
            if line:
                self._command(line)
        elif byte >= 0x20 and len(self._line) < 556:  # control bytes are ignored; 556 = SIM800 line limit
            self._line.append(byte)

    def _text_byte(self, byte: int) -> None:
        assert self._text is not None
        if byte == CTRL_Z:
            text = self._text.decode("latin-1")
            self._text = None
            self._finish_send(text)
        elif byte == ESC:
            self._text = None
            self._answer("OK")
        elif byte == 0x0D:
            self._text.append(0x0A)
            self._emit(b"\r\n> ")
        else:
            self._text.append(byte)

    def _answer(self, *lines: str) -> None:
        for pending in self._pending:
            self._emit(pending)
        self._pending.clear()
        self._emit(b"".join(b"\r\n" + line.encode("latin-1") + b"\r\n" for line in lines))

    def _cms(self, code: int) -> None:
        self._answer("ERROR" if self.cmee == 0 else f"+CMS ERROR: {code}")

    def _finish_send(self, text: str) -> None:
        if self._hang_next:
            self._hang_next = False
        elif self._fail_next is not None:
            code, self._fail_next = self._fail_next, None
            self._cms(code)
        elif not self._registered:
            self._cms(331)
        else:
            self.outbox.append((self._to, text))
            self._mr = (self._mr + 1) % 256
            self._answer(f"+CMGS: {self._mr}", "OK")

    def _command(self, line: str) -> None:
        self.commands.append(line)
        if not line.upper().startswith("AT"):
            return  # a SIM800 ignores lines that do not start with AT
        cmd = line[2:]
        upper = cmd.upper()
        if upper == "":
            self._answer("OK")
        elif upper in ("E0", "E1"):
            self.echo = upper == "E1"
            self._answer("OK")
        elif upper == "I":
            self._answer("SIM800 R14.18", "OK")
        elif upper.startswith("+CMEE="):
            self._set_int("cmee", upper[6:], (0, 1, 2))
        elif upper.startswith("+CMGF="):
            self._set_int("cmgf", upper[6:], (0, 1))
        elif upper == "+CMGF?":
            self._answer(f"+CMGF: {self.cmgf}", "OK")
        elif upper.startswith("+CSCS=") or upper.startswith("+CSDH="):
            self._answer("OK")
        elif upper.startswith("+CNMI="):
            fields = upper[6:].split(",")
            if len(fields) >= 2 and fields[1].isdigit():
                self.cnmi_mt = int(fields[1])
                self._answer("OK")
            else:
                self._error()
        elif upper == "+CREG?":
            self._answer(f"+CREG: {self.creg_n},{1 if self._registered else 0}", "OK")
        elif upper.startswith("+CREG="):
            self._set_int("creg_n", upper[6:], (0, 1, 2))
        elif upper == "+CSQ":
            self._answer(f"+CSQ: {self.signal if self._registered else 99},0", "OK")
        elif upper == "+CPIN?":
            self._answer("+CPIN: READY", "OK")
        elif upper.startswith("+CMGS="):
            self._start_send(cmd[6:])
        elif upper.startswith("+CMGL"):
            self._list(cmd[6:] if upper.startswith("+CMGL=") else '"REC UNREAD"')
        elif upper.startswith("+CMGR="):
            self._read(upper[6:])
        elif upper.startswith("+CMGD="):
            self._delete(upper[6:])
        else:
            self._error()

    def _error(self) -> None:
        self._answer("ERROR" if self.cmee == 0 else "+CME ERROR: " + ("4" if self.cmee == 1 else "unknown"))

    def _set_int(self, attr: str, value: str, allowed: tuple[int, ...]) -> None:
        if value.strip().isdigit() and int(value) in allowed:
            setattr(self, attr, int(value))
            self._answer("OK")
        else:
            self._error()

    def _start_send(self, arg: str) -> None:
        if self.cmgf != 1:
            self._cms(304)  # PDU mode wants a length, not a number
            return
        number = arg.strip().strip('"')
        if not number:
            self._cms(305)
            return
        self._to = number
        self._text = bytearray()
        for pending in self._pending:
            self._emit(pending)
        self._pending.clear()
        self._emit(b"\r\n> ")

    def _list(self, arg: str) -> None:
        if self.cmgf == 0:
            self._list_pdu(arg)
            return
        wanted = arg.strip().strip('"').upper()
        if wanted not in ("REC UNREAD", "REC READ", "STO UNSENT", "STO SENT", "ALL"):
            self._cms(305)
            return
        lines: list[str] = []
        for index in sorted(self.memory):
            sms = self.memory[index]
            if wanted in ("ALL", sms.stat):
                number, text, scts = sms.decoded
                # Text mode prints the body raw, as the SIM800 does: whatever the sender typed, line breaks too.
                lines += [f'+CMGL: {index},"{sms.stat}","{number}","","{scts}"', text]
                sms.stat = "REC READ"
        # The SIM800 puts one CR LF between entries and a blank line before OK.
        body = "\r\n".join(lines)
        for pending in self._pending:
            self._emit(pending)
        self._pending.clear()
        self._emit((("\r\n" + body) if body else "").encode("latin-1", "replace") + b"\r\n\r\nOK\r\n")

    def _list_pdu(self, arg: str) -> None:
        arg = arg.strip()
        if arg == "":
            arg = "0"
        if not arg.isdigit() or int(arg) > 4:
            self._cms(304)
            return
        wanted = int(arg)
        lines: list[str] = []
        for index in sorted(self.memory):
            sms = self.memory[index]
            if wanted == 4 or _STATS[wanted] == sms.stat:
                lines += [f"+CMGL: {index},{_STATS.index(sms.stat)},,{tpdu_length(sms.pdu)}", sms.pdu]
                if sms.stat == "REC UNREAD":
                    sms.stat = "REC READ"
        body = "\r\n".join(lines)
        for pending in self._pending:
            self._emit(pending)
        self._pending.clear()
        self._emit((("\r\n" + body) if body else "").encode("ascii") + b"\r\n\r\nOK\r\n")

    def _read(self, arg: str) -> None:
        if not arg.strip().isdigit():
            self._cms(305 if self.cmgf else 304)
            return
        sms = self.memory.get(int(arg))
        if sms is None:
            self._answer("OK")
            return
        if self.cmgf == 0:
            stat = _STATS.index(sms.stat)
            self._answer(f"+CMGR: {stat},,{tpdu_length(sms.pdu)}", sms.pdu, "OK")
        else:
            number, text, scts = sms.decoded
            self._answer(f'+CMGR: "{sms.stat}","{number}","","{scts}"', text, "OK")
        sms.stat = "REC READ"

    def _delete(self, arg: str) -> None:
        fields = next(csv.reader([arg]))
        if not fields or not fields[0].strip().isdigit():
            self._cms(305)
            return
        index = int(fields[0])
        flag = int(fields[1]) if len(fields) > 1 and fields[1].strip().isdigit() else 0
        if flag == 4:
            self.memory.clear()
        elif flag == 1:
            self.memory = {i: m for i, m in self.memory.items() if m.stat != "REC READ"}
        elif not 1 <= index <= self.capacity:
            self._cms(321)
            return
        else:
            self.memory.pop(index, None)
        self._answer("OK")
        # Memory is free again: the service centre delivers what it held back (3GPP's "memory available").
        while self.waiting and len(self.memory) < self.capacity:
            self.inject_pdu(self.waiting.pop(0))
