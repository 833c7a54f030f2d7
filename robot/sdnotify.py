"""systemd service notifications (sd_notify): READY, WATCHDOG, STATUS and STOPPING as datagrams to
$NOTIFY_SOCKET, and a watchdog that is fed only while the control loop steps on time.

No dependency: the protocol is one AF_UNIX datagram of newline-separated KEY=VALUE lines (sd_notify(3)); a
socket name starting with '@' is in the abstract namespace. Outside systemd (no NOTIFY_SOCKET) everything here
does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

# A loop that has not stepped for this long is not controlling anything: no WATCHDOG=1 for that step. The
# runner steps every 50 ms; the obstacle-to-brake budget is 150 ms. One late step only skips one ping: systemd
# restarts the service after WatchdogSec without any.
MAX_STEP_GAP_S = 1.0


class Notifier:
    """Sends notifications to the service manager; does nothing when not started by systemd (no NOTIFY_SOCKET).

    Sending never raises and never blocks: a failure is logged once and counted in `errors`.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.errors = 0
        self.sent = 0
        self._sock: socket.socket | None = None
        self._addr: str | bytes | None = None
        name = env.get("NOTIFY_SOCKET", "")
        if not name:
            return
        if name.startswith("@"):
            self._addr = b"\0" + name[1:].encode()
        elif name.startswith("/"):
            self._addr = name
        else:  # vsock:... and relative paths: not something a unit on a Pi hands us
            log.warning("NOTIFY_SOCKET=%r: unsupported address; systemd will not hear from us", name)
            return
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        """True when there is a service manager to talk to."""
        return self._sock is not None

    def notify(self, *fields: str) -> bool:
        """Send KEY=VALUE fields in one datagram, e.g. notify("READY=1", "STATUS=cleaning"); True if sent."""
        if self._sock is None or self._addr is None:
            return False
        try:
            self._sock.sendto("\n".join(fields).encode(), self._addr)
        except OSError as err:
            if self.errors == 0:
                log.warning("systemd notification failed (%s); further failures are only counted", err)
            self.errors += 1
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        """Close the socket; safe to call twice."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def watchdog_period_s(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when systemd set no watchdog for us.

    Like sd_watchdog_enabled(3): WATCHDOG_USEC gives the timeout; WATCHDOG_PID, when set, must be our pid.
    """
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    owner = env.get("WATCHDOG_PID", "")
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    return int(usec) / 2e6


class LoopWatchdog:
    """Feeds systemd's watchdog from the control loop itself (call on_step after every step), and only while
    the loop is healthy: a step that comes more than `max_gap_s` after the previous one sends nothing. So a
    stalled loop (a step that never returns, a deadlock, a loop starved for seconds) stops the pings and
    systemd restarts the service after WatchdogSec; a live thread elsewhere cannot keep a dead loop alive.

    `status` (optional) gives a one-line STATUS= for `systemctl status` with each ping. Uses its own
    monotonic clock: the runner's clock may be the simulator's, running faster than real time.
    """

    def __init__(
        self,
        notifier: Notifier,
        period_s: float,
        *,
        max_gap_s: float = MAX_STEP_GAP_S,
        status: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._notifier = notifier
        self._period = period_s
        self._max_gap = max_gap_s
        self._status = status
        self._clock = clock
        self._last_step: float | None = None
        self._last_ping: float | None = None
        self.pings = 0
        self.late_steps = 0

    def on_step(self, _now: float = 0.0) -> None:
        """The loop finished a step: ping if it came on time and the last ping is `period_s` old."""
        t = self._clock()
        last, self._last_step = self._last_step, t
        if last is not None and t - last > self._max_gap:
            self.late_steps += 1
            return
        if self._last_ping is not None and t - self._last_ping < self._period:
            return
        fields = ["WATCHDOG=1"]
        if self._status is not None:
            try:
                fields.append("STATUS=" + self._status().replace("\n", " "))
            except Exception as err:  # the status line is a nicety; the ping is what matters
                log.debug("watchdog status line: %s", err)
        if self._notifier.notify(*fields):
            self.pings += 1
        self._last_ping = t
