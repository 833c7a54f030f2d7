"""The SMS service: alerts from the store out by SMS, commands from trusted numbers in, on one thread.

Everything it sends goes through the SMS outbox in the store first, so a crash or kill -9 loses nothing: an alert
becomes its SMS exactly once (one transaction), and an SMS is marked sent right after the modem confirms it, so
at worst one SMS is sent once more after a crash at that instant. A received message is read in PDU mode (its
body can never pass for a header), judged, recorded as handled (with the e-stop latch, for STOP, in the same
fsync'd transaction) before anything is acknowledged, and then deleted from the SIM.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from types import TracebackType

from robot.alerts import AlertOutbox
from robot.commands import CommandQueue
from robot.core.types import Alert, CommandKind, Severity
from robot.errors import ConfigError, ModemError, RamudroidError, StoreError
from robot.gsm.sms import (
    COMMAND_WORDS,
    SmsRequest,
    Verdict,
    ack_text,
    fit,
    format_alert,
    format_status,
    help_text,
    normalise_number,
    parse_sms,
    policy_error,
)
from robot.hardware.interfaces import SmsModem
from robot.store import Store, StoredAlert
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
    "sent",
    "send_failures",
    "gave_up",
    "dropped",
    "received",
    "receive_failures",
    "replayed",
    "delete_failures",
    "commands",
    "commands_rejected",
    "status_replies",
    "help_replies",
    "untrusted",
    "parts",
    "bad_pin",
    "locked_out",
    "lockouts",
    "disabled",
    "replies_limited",
    "loop_errors",
    "store_errors",
)


class SmsService:
    """Delivers WARNING and CRITICAL alerts to `alert_numbers` and takes commands from `trusted_numbers`.

    `outbox` must carry a Store: alerts are read from it, and the SMS outbox and the handled messages live in
    it. Repeats of one alert kind and severity within `coalesce_s` become one later SMS "(xN in window)". A
    failed send is retried with exponential backoff up to `max_attempts`. `max_bad_pins` wrong PINs within an
    hour lock every PIN command out for `lockout_s` and alert the owner; STOP from a trusted number still works.
    Every give-up, drop, coalesced alert and ignored sender is counted in `stats` and logged. The modem is not
    owned: close it yourself.
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
        enabled: Iterable[str] = COMMAND_WORDS,
        poll_s: float = 5.0,
        tick_s: float = 1.0,
        coalesce_s: float = 600.0,
        retry_s: float = 10.0,
        retry_max_s: float = 600.0,
        max_attempts: int = 8,
        max_pending: int = 50,
        replies_per_hour: int = 20,
        max_bad_pins: int = 5,
        lockout_s: float = 3600.0,
    ) -> None:
        if outbox.store is None:
            raise ValueError("SmsService needs an AlertOutbox with a Store (the SMS outbox lives there)")
        self._store: Store = outbox.store
        self._modem = modem
        self._outbox = outbox
        self._commands = commands
        self._telemetry = telemetry
        self._country = country_code
        self.alert_numbers = tuple(dict.fromkeys(normalise_number(n, country_code) for n in alert_numbers))
        self.trusted_numbers = frozenset(normalise_number(n, country_code) for n in trusted_numbers)
        self.enabled = tuple(enabled)
        problem = policy_error(self.trusted_numbers, pin, self.enabled)
        if problem:
            raise ConfigError(problem)
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
        self.max_bad_pins = max_bad_pins
        self.lockout_s = lockout_s
        self._stats = dict.fromkeys(STAT_KEYS, 0)
        self._last_sent: dict[tuple[str, Severity], float] = {}
        self._suppressed: dict[tuple[str, Severity], tuple[int, StoredAlert]] = {}
        self._replies: dict[str, deque[float]] = {}
        self._bad_pins: deque[float] = deque()
        self._locked_until = float("-inf")
        self._next_try: dict[int, float] = {}  # SMS id -> earliest retry (after a restart: at once)
        self._next_receive = float("-inf")
        self._receive_failures = 0
        self._send_hold_until = float("-inf")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._failed: StoreError | None = None

    # ----- public API -----------------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, int]:
        """Counters (see STAT_KEYS) plus `pending`, the number of SMS waiting to be sent."""
        with self._lock:
            try:
                pending = len(self._store.pending_sms())
            except StoreError:
                pending = -1  # unknown: the store cannot be read
            return {**self._stats, "pending": pending}

    @property
    def pending(self) -> list[tuple[str, str]]:
        """(number, text) of SMS waiting to be sent, in sending order."""
        return [(o.number, o.text) for o in self._store.pending_sms()]

    @property
    def locked(self) -> bool:
        """True while PIN commands are locked out after too many wrong PINs."""
        return self._clock() < self._locked_until

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
            # Each part on its own: a failing store must not keep a STOP from being read and obeyed.
            self._guard(self._take_alerts, t)
            self._guard(self._flush_suppressed, t)
            if t >= self._next_receive or getattr(self._modem, "has_new_messages", False):
                self._guard(self._receive, t)
                self._guard(self._take_alerts, t)  # e.g. a PIN lockout raised just now goes out this round
            self._guard(self._send_due, t)  # after receiving, so replies go out in the same round
            if self._failed is not None:
                err, self._failed = self._failed, None
                raise err

    def _guard(self, part: Callable[[float], None], t: float) -> None:
        try:
            part(t)
        except StoreError as err:
            self._stats["store_errors"] += 1
            self._failed = err

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
        for stored in self._store.alerts_for_sms():
            alert = stored.alert
            if alert.severity not in (Severity.CRITICAL, Severity.WARNING):
                self._store.queue_sms([], handled_alerts=[stored.id])
                continue
            self._stats["alerts_seen"] += 1
            key = (alert.kind, alert.severity)
            last = self._last_sent.get(key)
            if last is not None and now - last < self.coalesce_s:
                count, _ = self._suppressed.get(key, (0, stored))
                self._suppressed[key] = (count + 1, stored)
                self._stats["alerts_coalesced"] += 1
                self._store.queue_sms([], handled_alerts=[stored.id])
                continue
            held, _ = self._suppressed.pop(key, (0, stored))
            self._queue_alert(stored, held, now)

    def _flush_suppressed(self, now: float) -> None:
        """Send one summary SMS for repeats held back, once their window has passed."""
        for key, (count, stored) in list(self._suppressed.items()):
            if now - self._last_sent[key] >= self.coalesce_s:
                del self._suppressed[key]
                self._queue_alert(stored, count - 1, now, summary=True)

    def _queue_alert(self, stored: StoredAlert, repeats: int, now: float, *, summary: bool = False) -> None:
        alert = stored.alert
        key = (alert.kind, alert.severity)
        self._last_sent[key] = now
        handled = [] if summary else [stored.id]
        if not self.alert_numbers:
            log.warning("SMS service: alert %r not sent: sms.alert_numbers is empty", alert.kind)
            self._store.queue_sms([], handled_alerts=handled)
            return
        text = format_alert(alert, self.name, repeats)
        priority = _PRIORITY_CRITICAL if alert.severity is Severity.CRITICAL else _PRIORITY_WARNING
        self._store.queue_sms(
            [(number, text, priority, stored.id) for number in self.alert_numbers], handled_alerts=handled
        )
        self._stats["alerts_queued"] += 1
        self._shed()

    def _enqueue(self, number: str, text: str, priority: int) -> None:
        self._store.queue_sms([(number, text, priority, None)])
        self._shed()

    def _shed(self) -> None:
        """Bounded: beyond `max_pending`, drop the least urgent, newest SMS, loudly."""
        pending = self._store.pending_sms()
        while len(pending) > self.max_pending:
            victim = max(pending, key=lambda o: (o.priority, o.id))
            pending.remove(victim)
            self._store.sms_done(victim.id, "dropped")
            self._stats["dropped"] += 1
            log.error("SMS service: outgoing queue full, dropped SMS to %s: %s", victim.number, victim.text)

    def _send_due(self, now: float) -> None:
        if now < self._send_hold_until:
            return
        for item in self._store.pending_sms():
            if self._next_try.get(item.id, float("-inf")) > now:
                continue
            try:
                self._modem.send_sms(item.number, item.text)
            except ModemError as err:
                self._stats["send_failures"] += 1
                attempts = item.attempts + 1
                if attempts >= self.max_attempts:
                    self._store.sms_done(item.id, "gave_up")
                    self._next_try.pop(item.id, None)
                    self._stats["gave_up"] += 1
                    log.error(
                        "SMS service: gave up on SMS to %s after %d tries (%s): %s",
                        item.number,
                        attempts,
                        err,
                        item.text,
                    )
                else:
                    self._store.sms_attempted(item.id, attempts)
                    delay = min(self.retry_max_s, self.retry_s * 2 ** (attempts - 1))
                    self._next_try[item.id] = now + delay
                    self._send_hold_until = now + delay  # the modem is likely down: spare the rest too
                    log.warning(
                        "SMS service: send to %s failed (%s); retry in %.0f s", item.number, err, delay
                    )
                return
            # Sent: recorded at once. A crash between the modem's answer and this line is the only way an
            # SMS goes out twice.
            self._store.sms_done(item.id, "sent")
            self._next_try.pop(item.id, None)
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
        for incoming in messages:
            self._stats["received"] += 1
            # The index too: the same text sent twice within a second is two messages, at two indexes.
            fingerprint = f"{incoming.index}:{incoming.message.fingerprint}"
            try:
                seen = self._store.sms_seen(fingerprint)
            except StoreError as err:
                self._stats["store_errors"] += 1
                self._failed = err
                seen = False
            if seen:
                self._stats["replayed"] += 1  # handled before a crash or a failed delete: only delete it
            else:
                self._handle(
                    incoming.sender, incoming.text, incoming.message.part is not None, fingerprint, now
                )
            try:
                self._modem.delete_sms(incoming.index)
            except ModemError as err:
                self._stats["delete_failures"] += 1
                log.warning("SMS service: %s (deleted next round)", err)
                continue
            # Gone from the SIM: it cannot be listed again, so its record may go (the index is reused).
            self._store.forget_sms(fingerprint)

    def _handle(self, sender: str, text: str, part: bool, fingerprint: str, now: float) -> None:
        req = parse_sms(
            sender,
            text,
            trusted=self.trusted_numbers,
            pin=self._pin,
            now=now,
            country_code=self._country,
            enabled=self.enabled,
            part=part,
        )
        verdict = req.verdict
        if verdict is Verdict.UNTRUSTED or verdict is Verdict.PART:
            self._stats["untrusted" if verdict is Verdict.UNTRUSTED else "parts"] += 1
            log.warning("SMS service: ignored %s SMS from %s", verdict.value, req.sender)
            self._store.mark_sms_seen(fingerprint, durable=False)
            self._store.log_event(f"sms_{verdict.value}", f"from {req.sender}: {text[:60]!r}")
            return
        if verdict is Verdict.BAD_PIN:
            # No reply: a spoofer learns nothing. Counted towards the lockout, which alerts the owner.
            self._stats["bad_pin"] += 1
            self._store.mark_sms_seen(fingerprint, durable=False)
            self._store.log_event("sms_bad_pin", f"from {req.sender}")
            log.warning("SMS service: SMS from %s without the right PIN", req.sender)
            self._count_bad_pin(req.sender, now)
            return
        cmd = req.command
        if verdict is Verdict.COMMAND and cmd is not None and cmd.kind is CommandKind.ESTOP:
            # Queued first (the brake never waits for the disk), then latched on disk in the same transaction
            # that records the message as handled, then answered. A crash before the latch leaves the message on
            # the SIM: it is read and obeyed again after the restart.
            queued = self._commands.put(cmd)
            try:
                self._store.mark_sms_seen(fingerprint, estop_source=cmd.source)
            except StoreError as err:
                log.error("SMS service: STOP from %s not saved (%s); stopped anyway", req.sender, err)
                note = "; NOT saved (storage error): it will not survive a restart"
                self._acknowledge(req, queued, now, note)
                return
            self._acknowledge(req, True, now)  # latched: the supervisor applies it even if the queue was full
            return
        if verdict is Verdict.COMMAND and now < self._locked_until:
            self._stats["locked_out"] += 1
            self._store.mark_sms_seen(fingerprint, durable=False)
            self._store.log_event("sms_locked_out", f"{req.word} from {req.sender} refused during lockout")
            log.warning("SMS service: %s from %s refused: PIN commands locked out", req.word, req.sender)
            return
        self._store.mark_sms_seen(fingerprint, durable=verdict is Verdict.COMMAND)
        if verdict is Verdict.COMMAND and cmd is not None:
            self._queue_command(req, now)
            return
        if verdict is Verdict.STATUS:
            self._stats["status_replies"] += 1
            reply = format_status(self._telemetry.latest(), self.name, now)
        elif verdict is Verdict.DISABLED:
            self._stats["disabled"] += 1
            reply = fit(f"{self.name}: {req.word} is not enabled by SMS on this robot (sms.commands)")
        else:
            self._stats["help_replies"] += 1
            reply = help_text(self.name, bool(self._pin), self.enabled)
        self._reply(req.sender, reply, now)

    def _queue_command(self, req: SmsRequest, now: float) -> None:
        assert req.command is not None
        self._acknowledge(req, self._commands.put(req.command), now)

    def _acknowledge(self, req: SmsRequest, taken: bool, now: float, note: str = "") -> None:
        """Reply to a command: accepted (queued, or an e-stop latched on disk) or busy."""
        cmd = req.command
        assert cmd is not None
        if taken:
            self._stats["commands"] += 1
            log.info("SMS service: %s from %s taken", cmd.kind.value, req.sender)
            reply = ack_text(self.name, req) + note
        else:
            self._stats["commands_rejected"] += 1
            reply = fit(f"{self.name}: busy, {req.word} not taken; send it again")
        try:
            self._store.log_event("sms_command", f"{req.word} from {req.sender}")
        except StoreError as err:
            log.error("SMS service: %s", err)
        self._reply(req.sender, fit(reply), now)

    def _count_bad_pin(self, sender: str, now: float) -> None:
        bad = self._bad_pins
        bad.append(now)
        while bad and now - bad[0] >= 3600.0:
            bad.popleft()
        if len(bad) < self.max_bad_pins or now < self._locked_until:
            return
        self._locked_until = now + self.lockout_s
        bad.clear()
        self._stats["lockouts"] += 1
        minutes = round(self.lockout_s / 60)
        message = (
            f"{self.max_bad_pins} wrong SMS PINs within an hour (last from {sender}): SMS commands locked for "
            f"{minutes} min; STOP from a trusted number still works"
        )
        log.error("SMS service: %s", message)
        try:
            self._outbox.add(Alert("sms_lockout", Severity.CRITICAL, message, now))
        except StoreError as err:
            log.error("SMS service: %s", err)

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
        self._enqueue(number, text, _PRIORITY_REPLY)
