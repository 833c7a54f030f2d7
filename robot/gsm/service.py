"""The SMS service: alerts from the outbox out by SMS, commands from trusted numbers in, on one thread."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType

from robot.alerts import AlertOutbox
from robot.commands import CommandQueue
from robot.core.types import Alert, Severity
from robot.errors import ModemError, RamudroidError
from robot.gsm.sms import (
    Verdict,
    ack_text,
    fit,
    format_alert,
    format_status,
    help_text,
    normalise_number,
    parse_sms,
)
from robot.hardware.interfaces import SmsModem
from robot.telemetry import TelemetryBus

log = logging.getLogger(__name__)

# Lower sends first: a critical alert goes before a command reply, a reply before a warning.
_PRIORITY_CRITICAL = 0
_PRIORITY_REPLY = 1
_PRIORITY_WARNING = 2

STAT_KEYS = (
    "alerts_seen",
    "alerts_queued",
    "alerts_coalesced",
    "alerts_missed",
    "sent",
    "send_failures",
    "gave_up",
    "dropped",
    "received",
    "receive_failures",
    "commands",
    "commands_rejected",
    "status_replies",
    "help_replies",
    "untrusted",
    "bad_pin",
    "replies_limited",
    "loop_errors",
)


@dataclass
class Outgoing:
    """One SMS waiting to be sent, with its retry state."""

    number: str
    text: str
    priority: int
    seq: int
    created: float
    attempts: int = 0
    next_try: float = 0.0


class SmsService:
    """Delivers WARNING and CRITICAL alerts to `alert_numbers` and takes commands from `trusted_numbers`.

    Repeats of one alert kind and severity within `coalesce_s` become one later SMS "(xN in window)".
    A failed send is retried with exponential backoff up to `max_attempts`; every give-up, drop, coalesced
    alert and ignored sender is counted in `stats` and logged. The modem is not owned: close it yourself.
    """

    def __init__(
        self,
        modem: SmsModem,
        outbox: AlertOutbox,
        commands: CommandQueue,
        telemetry: TelemetryBus,
        alert_numbers: Iterable[str],
        trusted_numbers: Iterable[str],
        pin: str = "",
        clock: Callable[[], float] = time.monotonic,
        *,
        name: str = "ramudroid",
        country_code: str = "91",
        poll_s: float = 5.0,
        tick_s: float = 1.0,
        coalesce_s: float = 600.0,
        retry_s: float = 10.0,
        retry_max_s: float = 600.0,
        max_attempts: int = 8,
        max_pending: int = 50,
        replies_per_hour: int = 20,
    ) -> None:
        self._modem = modem
        self._outbox = outbox
        self._commands = commands
        self._telemetry = telemetry
        self._country = country_code
        self.alert_numbers = tuple(dict.fromkeys(normalise_number(n, country_code) for n in alert_numbers))
        self.trusted_numbers = frozenset(normalise_number(n, country_code) for n in trusted_numbers)
        self._pin = pin
        self._clock = clock
        self.name = name
        self.poll_s = poll_s
        self.tick_s = tick_s
        self.coalesce_s = coalesce_s
        self.retry_s = retry_s
        self.retry_max_s = retry_max_s
        self.max_attempts = max_attempts
        self.max_pending = max_pending
        self.replies_per_hour = replies_per_hour
        self._stats = dict.fromkeys(STAT_KEYS, 0)
        self._pending: list[Outgoing] = []
        self._seq = itertools.count()
        self._cursor = 0
        self._last_sent: dict[tuple[str, Severity], float] = {}
        self._suppressed: dict[tuple[str, Severity], tuple[int, Alert]] = {}
        self._replies: dict[str, deque[float]] = {}
        self._next_receive = float("-inf")
        self._receive_failures = 0
        self._send_hold_until = float("-inf")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    # ----- public API -----------------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, int]:
        """Counters (see STAT_KEYS) plus `pending`, the number of SMS waiting to be sent."""
        with self._lock:
            return {**self._stats, "pending": len(self._pending)}

    @property
    def pending(self) -> list[tuple[str, str]]:
        """(number, text) of SMS waiting to be sent, in sending order."""
        with self._lock:
            return [(o.number, o.text) for o in sorted(self._pending, key=lambda o: (o.priority, o.seq))]

    def start(self) -> None:
        """Run poll_once() every `tick_s` seconds on a background thread until close()."""
        if self._thread is not None or self._closed:
            return
        self._thread = threading.Thread(target=self._run, name="sms-service", daemon=True)
        self._thread.start()

    def poll_once(self, now: float | None = None) -> None:
        """One round: take new alerts, fetch and act on received SMS when due, send what is due."""
        with self._lock:
            t = self._clock() if now is None else now
            self._take_alerts(t)
            self._flush_suppressed(t)
            if t >= self._next_receive:
                self._receive(t)
            self._send_due(t)  # after receiving, so replies go out in the same round

    def close(self) -> None:
        """Stop the thread (the modem stays open); safe to call twice."""
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.tick_s + 65.0)  # a send in progress may take up to a minute
            self._thread = None

    def __enter__(self) -> SmsService:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ----- the loop -------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except RamudroidError as err:
                with self._lock:
                    self._stats["loop_errors"] += 1
                log.error("SMS service: %s", err)
            except Exception:
                # Alerts must keep flowing even after a bug in one round: log it loudly, count it, go on.
                with self._lock:
                    self._stats["loop_errors"] += 1
                log.exception("SMS service: unexpected error; continuing")
                self._stop.wait(30.0)
            self._stop.wait(self.tick_s)

    # ----- alerts out -----------------------------------------------------------------------------

    def _take_alerts(self, now: float) -> None:
        cursor, alerts = self._outbox.since(self._cursor)
        missed = (cursor - self._cursor) - len(alerts)
        if missed > 0:
            self._stats["alerts_missed"] += missed
            log.error("SMS service: %d alerts left the outbox before they could be sent", missed)
        self._cursor = cursor
        for alert in alerts:
            if alert.severity not in (Severity.CRITICAL, Severity.WARNING):
                continue
            self._stats["alerts_seen"] += 1
            key = (alert.kind, alert.severity)
            last = self._last_sent.get(key)
            if last is not None and now - last < self.coalesce_s:
                count, _ = self._suppressed.get(key, (0, alert))
                self._suppressed[key] = (count + 1, alert)
                self._stats["alerts_coalesced"] += 1
                continue
            held, _ = self._suppressed.pop(key, (0, alert))
            self._queue_alert(alert, held, now)

    def _flush_suppressed(self, now: float) -> None:
        """Send one summary SMS for repeats held back, once their window has passed."""
        for key, (count, alert) in list(self._suppressed.items()):
            if now - self._last_sent[key] >= self.coalesce_s:
                del self._suppressed[key]
                self._queue_alert(alert, count - 1, now)

    def _queue_alert(self, alert: Alert, repeats: int, now: float) -> None:
        key = (alert.kind, alert.severity)
        self._last_sent[key] = now
        if not self.alert_numbers:
            log.warning("SMS service: alert %r not sent: sms.alert_numbers is empty", alert.kind)
            return
        text = format_alert(alert, self.name, repeats)
        priority = _PRIORITY_CRITICAL if alert.severity is Severity.CRITICAL else _PRIORITY_WARNING
        for number in self.alert_numbers:
            self._enqueue(number, text, priority, now)
        self._stats["alerts_queued"] += 1

    def _enqueue(self, number: str, text: str, priority: int, now: float) -> None:
        if len(self._pending) >= self.max_pending:
            # Bounded: shed the least urgent, oldest message, loudly.
            victim = max(self._pending, key=lambda o: (o.priority, -o.seq))
            self._pending.remove(victim)
            self._stats["dropped"] += 1
            log.error("SMS service: outgoing queue full, dropped SMS to %s: %s", victim.number, victim.text)
        self._pending.append(Outgoing(number, text, priority, next(self._seq), now, next_try=now))

    def _send_due(self, now: float) -> None:
        if now < self._send_hold_until:
            return
        for item in sorted(self._pending, key=lambda o: (o.priority, o.seq)):
            if item.next_try > now:
                continue
            try:
                self._modem.send_sms(item.number, item.text)
            except ModemError as err:
                self._stats["send_failures"] += 1
                item.attempts += 1
                if item.attempts >= self.max_attempts:
                    self._pending.remove(item)
                    self._stats["gave_up"] += 1
                    log.error(
                        "SMS service: gave up on SMS to %s after %d tries (%s): %s",
                        item.number,
                        item.attempts,
                        err,
                        item.text,
                    )
                else:
                    delay = min(self.retry_max_s, self.retry_s * 2 ** (item.attempts - 1))
                    item.next_try = now + delay
                    self._send_hold_until = now + delay  # the modem is likely down: spare the rest too
                    log.warning(
                        "SMS service: send to %s failed (%s); retry in %.0f s", item.number, err, delay
                    )
                return
            self._pending.remove(item)
            self._stats["sent"] += 1

    # ----- commands in ----------------------------------------------------------------------------

    def _receive(self, now: float) -> None:
        try:
            messages = self._modem.receive_sms()
        except ModemError as err:
            self._stats["receive_failures"] += 1
            self._receive_failures += 1
            delay = min(self.retry_max_s, self.poll_s * 2**self._receive_failures)
            self._next_receive = now + delay
            log.warning("SMS service: cannot read messages (%s); retry in %.0f s", err, delay)
            return
        self._receive_failures = 0
        self._next_receive = now + self.poll_s
        for sender, text in messages:
            self._stats["received"] += 1
            self._handle(sender, text, now)

    def _handle(self, sender: str, text: str, now: float) -> None:
        req = parse_sms(
            sender, text, trusted=self.trusted_numbers, pin=self._pin, now=now, country_code=self._country
        )
        if req.verdict is Verdict.UNTRUSTED:
            self._stats["untrusted"] += 1
            log.warning("SMS service: ignored SMS from untrusted %s", req.sender)
            return
        if req.verdict is Verdict.BAD_PIN:
            # No reply: a spoofer learns nothing and cannot make us spend credit.
            self._stats["bad_pin"] += 1
            log.warning("SMS service: ignored SMS from %s without the right PIN", req.sender)
            return
        if req.verdict is Verdict.COMMAND and req.command is not None:
            if self._commands.put(req.command):
                self._stats["commands"] += 1
                log.info("SMS service: %s from %s queued", req.command.kind.value, req.sender)
                reply = ack_text(self.name, req)
            else:
                self._stats["commands_rejected"] += 1
                reply = fit(f"{self.name}: busy, {req.word} not taken; send it again")
        elif req.verdict is Verdict.STATUS:
            self._stats["status_replies"] += 1
            reply = format_status(self._telemetry.latest(), self.name, now)
        else:
            self._stats["help_replies"] += 1
            reply = help_text(self.name, bool(self._pin))
        self._reply(req.sender, reply, now)

    def _reply(self, number: str, text: str, now: float) -> None:
        sent = self._replies.setdefault(number, deque())
        while sent and now - sent[0] >= 3600.0:
            sent.popleft()
        if len(sent) >= self.replies_per_hour:
            self._stats["replies_limited"] += 1
            log.warning(
                "SMS service: reply to %s suppressed (over %d an hour)", number, self.replies_per_hour
            )
            return
        sent.append(now)
        self._enqueue(number, text, _PRIORITY_REPLY, now)
