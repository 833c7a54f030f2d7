"""The MQTT bridge: the robot's telemetry and alerts out to a broker, operator commands in, on its own thread.

It reads the one telemetry snapshot and the one alert outbox (its own cursor) and feeds the one command queue,
like the dashboard and the SMS service, and never touches the control loop: a broker that is down, slow or
hostile costs the robot nothing but this thread's time. QoS 1 messages (alerts, command results) go through a
bounded disk spool first and leave it only when the broker acknowledges them, so an outage or a restart of the
robot loses none; the state is retained and simply republished on reconnection.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import secrets
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from robot.alerts import AlertOutbox
from robot.commands import CommandQueue
from robot.core.types import CommandKind
from robot.errors import MqttError
from robot.mqtt import topics as tp
from robot.mqtt.auth import CommandAuth, Outcome, Verdict, parse_ha
from robot.mqtt.discovery import discovery_messages, removal_messages
from robot.mqtt.spool import DiskSpool
from robot.telemetry import TelemetryBus

log = logging.getLogger(__name__)

SPOOL_FILE = "mqtt-spool.db"
MAX_INFLIGHT = 20  # QoS 1 messages awaiting PUBACK at once
MIN_CHANGE_GAP_S = 0.2  # on-change state publishes are at most 5 a second, so a flapping reason cannot flood

STAT_KEYS = (
    "connects",
    "connect_failures",
    "refused_by_broker",
    "disconnects",
    "states_published",
    "states_skipped",
    "alerts_spooled",
    "alerts_missed",
    "spool_sent",
    "spool_acked",
    "commands_accepted",
    "estops",
    "commands_rejected",
    "commands_dropped",
    "handler_errors",
    "loop_errors",
)


class MqttBridge:
    """One robot's link to one broker. `step()` does one round (tests drive it on a virtual clock);
    `start()` runs rounds on a daemon thread until `close()`.

    `clock` must be the supervisor's clock (it stamps commands and ages alerts); `wall` is UNIX time, used for
    the timestamps in payloads and the replay window of signed commands; `pace` times the bridge's own work
    (telemetry period, reconnection backoff) in real seconds even when the simulator runs fast.
    """

    def __init__(
        self,
        *,
        name: str,
        telemetry: TelemetryBus,
        outbox: AlertOutbox,
        commands: CommandQueue,
        host: str,
        port: int = 1883,
        username: str = "",
        password: str = "",
        tls: bool = False,
        ca_file: str = "",
        cert_file: str = "",
        key_file: str = "",
        keepalive_s: int = 30,
        prefix: str = "ramudroid",
        telemetry_s: float = 1.0,
        command_key: str = "",
        command_window_s: float = 30.0,
        discovery: bool = True,
        discovery_prefix: str = "homeassistant",
        ha_commands: bool = False,
        spool_path: str | Path | None = None,
        spool_max: int = 10000,
        tray_capacity_kg: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        pace: Callable[[], float] = time.monotonic,
        tick_s: float = 0.05,
        connect_timeout_s: float = 10.0,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        if not tp.valid_name(name):
            raise MqttError(
                f"robot name {name!r} cannot be an MQTT topic level: use letters, digits, '_' and '-'"
            )
        for label, path in (
            ("mqtt.ca_file", ca_file),
            ("mqtt.cert_file", cert_file),
            ("mqtt.key_file", key_file),
        ):
            if path and not Path(path).expanduser().is_file():
                raise MqttError(f"{label} = {path!r}: no such file; give the PEM file's full path")
        self.name = name
        self.topics = tp.Topics(prefix, name)
        self._telemetry = telemetry
        self._outbox = outbox
        self._commands = commands
        self.host, self.port = host, port
        self._username, self._password = username, password
        self._tls = tls
        self._ca_file, self._cert_file, self._key_file = ca_file, cert_file, key_file
        self.keepalive_s = keepalive_s
        self.telemetry_s = telemetry_s
        self._auth = CommandAuth(command_key, name, window_s=command_window_s)
        self.discovery = discovery
        self.discovery_prefix = discovery_prefix
        self.ha_commands = ha_commands
        self.tray_capacity_kg = tray_capacity_kg
        self._clock = clock
        self._wall = wall
        self._pace = pace
        self.tick_s = tick_s
        self.connect_timeout_s = connect_timeout_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self._rng = rng or random.Random()
        self.spool = DiskSpool(spool_path, spool_max)
        # Alert ids must stay unique across restarts of the robot: the outbox counts from 0 at each boot.
        self.boot = secrets.token_hex(4)
        self._stats = dict.fromkeys(STAT_KEYS, 0)
        self._rejected: dict[str, int] = {}
        self._cursor = 0
        self._client: paho.Client | None = None
        self._connected = False
        self._connect_started = 0.0
        self._next_connect = float("-inf")
        self._backoff = reconnect_min_s
        self._refusal: str | None = None
        self._last_error: str | None = None
        self._inflight: dict[int, int] = {}  # paho mid -> spool id
        self._acked: list[int] = []
        self._last_sent_id = 0
        self._last_state_t = float("-inf")
        self._last_significant: tuple[Any, ...] | None = None
        self._last_version = -1
        self._lock = threading.Lock()  # stats are read from other threads
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    @classmethod
    def from_settings(
        cls,
        settings: Any,
        *,
        telemetry: TelemetryBus,
        outbox: AlertOutbox,
        commands: CommandQueue,
        clock: Callable[[], float],
        state_dir: Path,
    ) -> MqttBridge:
        """The bridge `ramudroid run` uses, from [mqtt] (and robot.name, tray.capacity_kg, robot.state_dir)."""
        m = settings.mqtt
        return cls(
            name=settings.robot.name,
            telemetry=telemetry,
            outbox=outbox,
            commands=commands,
            host=m.host,
            port=m.port,
            username=m.username,
            password=m.password,
            tls=m.tls,
            ca_file=m.ca_file,
            cert_file=m.cert_file,
            key_file=m.key_file,
            keepalive_s=m.keepalive_s,
            prefix=m.topic_prefix,
            telemetry_s=m.telemetry_s,
            command_key=m.command_key,
            command_window_s=m.command_window_s,
            discovery=m.discovery,
            discovery_prefix=m.discovery_prefix,
            ha_commands=m.ha_commands,
            spool_path=state_dir / SPOOL_FILE,
            spool_max=m.spool_max,
            tray_capacity_kg=settings.tray.capacity_kg,
            clock=clock,
        )

    # ----- public API -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def stats(self) -> dict[str, Any]:
        """Counters (STAT_KEYS), rejections by reason, the spool's size and drops, and the connection state."""
        with self._lock:
            out: dict[str, Any] = dict(self._stats)
            out["rejected"] = dict(self._rejected)
        out.update(connected=self._connected, spool_pending=len(self.spool), spool_dropped=self.spool.dropped)
        return out

    def start(self) -> None:
        """Run step() on a daemon thread until close()."""
        if self._thread is not None or self._closed:
            return
        self._thread = threading.Thread(target=self._run, name="mqtt-bridge", daemon=True)
        self._thread.start()

    def step(self, now: float | None = None, block_s: float = 0.0) -> None:
        """One round: (re)connect when due, move network traffic (waiting up to `block_s` for it), take new
        alerts into the spool, publish the state when due, and send what the spool holds."""
        t = self._pace() if now is None else now
        self._network(t, block_s)
        self._take_alerts(t)
        if self._connected:
            self._publish_state(t)
            self._flush()
            if self._client is not None:
                self._client.loop_write()

    def close(self) -> None:
        """Say "offline", disconnect, stop the thread and close the spool; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.connect_timeout_s + 2.0)
            self._thread = None
        client = self._client
        if client is not None:
            try:
                if self._connected:
                    info = client.publish(self.topics.status, tp.OFFLINE, qos=1, retain=True)
                    deadline = time.monotonic() + 1.0
                    while not info.is_published() and time.monotonic() < deadline:
                        if client.loop(timeout=0.05) != MQTTErrorCode.MQTT_ERR_SUCCESS:
                            break
                    client.disconnect()
            except (OSError, ValueError, RuntimeError) as err:
                log.debug("MQTT: while closing: %s", err)
            self._drop_client()
        self.spool.close()

    def __enter__(self) -> MqttBridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- the loop -------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step(block_s=self.tick_s if self._connected else 0.0)
            except Exception:
                # Telemetry and alerts must keep flowing after a bug in one round: count it, log it, go on.
                self._count("loop_errors")
                log.exception("MQTT bridge: unexpected error; continuing")
                self._stop.wait(1.0)
            if not self._connected:
                self._stop.wait(self.tick_s)

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._stats[key] += n

    # ----- connection -----------------------------------------------------------------------------

    def _network(self, t: float, block_s: float) -> None:
        client = self._client
        if client is None:
            if t >= self._next_connect:
                self._connect(t)
            return
        rc = client.loop(timeout=block_s)
        if self._refusal is not None:
            self._lost(t, self._refusal, refused=True)
        elif rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._lost(t, paho.error_string(rc))
        elif not self._connected and t - self._connect_started > self.connect_timeout_s:
            self._lost(t, f"no answer to CONNECT within {self.connect_timeout_s:.0f} s")
        if self._acked:
            acked, self._acked = self._acked, []
            self.spool.remove(acked)
            self._count("spool_acked", len(acked))

    def _new_client(self) -> paho.Client:
        # A persistent session: QoS 1 commands sent while the robot's link was down (an e-stop) still arrive.
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"ramudroid-{self.name}", clean_session=False
        )
        client.will_set(self.topics.status, tp.OFFLINE, qos=1, retain=True)
        if self._username:
            client.username_pw_set(self._username, self._password or None)
        if self._tls:
            client.tls_set(
                ca_certs=str(Path(self._ca_file).expanduser()) if self._ca_file else None,
                certfile=str(Path(self._cert_file).expanduser()) if self._cert_file else None,
                keyfile=str(Path(self._key_file).expanduser()) if self._key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.connect_timeout = self.connect_timeout_s
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    def _connect(self, t: float) -> None:
        self._refusal = None
        try:
            client = self._new_client()  # tls_set reads the certificate files: a bad one is an ssl.SSLError
            client.connect(self.host, self.port, keepalive=self.keepalive_s)
        except (
            OSError,
            ValueError,
        ) as err:  # refused, unreachable, unknown host, TLS handshake (ssl.SSLError)
            self._count("connect_failures")
            self._schedule_retry(t, f"{self.host}:{self.port}: {err}")
            return
        self._client = client
        self._connect_started = t

    def _schedule_retry(self, t: float, why: str, *, refused: bool = False) -> None:
        # Jitter spreads a fleet's reconnections after a broker restart instead of stampeding it.
        delay = self.reconnect_max_s if refused else self._backoff * self._rng.uniform(0.5, 1.0)
        self._backoff = min(self.reconnect_max_s, self._backoff * 2)
        self._next_connect = t + delay
        if why != self._last_error:  # one line per new problem, not one per retry
            log.warning(
                "MQTT broker %s; retrying every %g-%g s", why, self.reconnect_min_s, self.reconnect_max_s
            )
            self._last_error = why

    def _lost(self, t: float, why: str, *, refused: bool = False) -> None:
        if self._connected:
            self._count("disconnects")
            log.warning(
                "MQTT: connection to %s:%d lost (%s); alerts wait in the spool", self.host, self.port, why
            )
        self._connected = False
        self._drop_client()
        self._schedule_retry(t, why, refused=refused)

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        self._connected = False
        self._inflight.clear()  # unacknowledged messages stay in the spool and go again on the next connection
        self._last_sent_id = 0
        if client is not None:
            sock = client.socket()
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()

    def _on_connect(self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            self._count("refused_by_broker")
            self._refusal = (
                f"refused the connection: {reason} (check mqtt.username, mqtt.password and the ACL)"
            )
            return
        self._connected = True
        self._backoff = self.reconnect_min_s
        self._last_error = None
        self._count("connects")
        log.info("MQTT: connected to %s:%d as %s", self.host, self.port, self.name)
        subs = [(self.topics.cmd, 1), (self.topics.cmd_ha, 1), (self.topics.cmd_all, 1)]
        if self.discovery:
            subs.append((f"{self.discovery_prefix}/status", 1))
        client.subscribe(subs)
        client.publish(self.topics.status, tp.ONLINE, qos=1, retain=True)
        if self.discovery:
            self._publish_discovery(client)
        self._last_state_t = float("-inf")  # the retained state goes out at once
        self._last_sent_id = 0

    def _on_disconnect(
        self, _client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._connected = False

    def _on_publish(self, _client: paho.Client, _userdata: Any, mid: int, _reason: Any, _props: Any) -> None:
        spool_id = self._inflight.pop(mid, None)
        if spool_id is not None:
            self._acked.append(spool_id)

    def _publish_discovery(self, client: paho.Client) -> None:
        messages = discovery_messages(self.topics, prefix=self.discovery_prefix, ha_commands=self.ha_commands)
        if not self.ha_commands:
            messages += removal_messages(self.topics, prefix=self.discovery_prefix)
        for topic, payload in messages:
            client.publish(topic, payload, qos=1, retain=True)

    # ----- out: state and alerts ------------------------------------------------------------------

    def _publish_state(self, t: float) -> None:
        tel = self._telemetry.latest()
        client = self._client
        if tel is None or client is None:
            return
        due = t - self._last_state_t >= self.telemetry_s - 1e-6  # tolerate float drift in summed ticks
        version = self._telemetry.version
        if not due and (version == self._last_version or t - self._last_state_t < MIN_CHANGE_GAP_S):
            return
        state = tp.state_payload(tel, self.name, tray_capacity_kg=self.tray_capacity_kg)
        significant = tuple(state[k] for k in tp.SIGNIFICANT)
        self._last_version = version
        if not due and significant == self._last_significant:
            return
        self._last_significant = significant
        self._last_state_t = t
        info = client.publish(self.topics.state, _dumps(state), qos=0, retain=True)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._count("states_skipped")
            return
        self._count("states_published")
        position = tp.position_payload(state)
        if position is not None:
            client.publish(self.topics.position, _dumps(position), qos=0, retain=True)

    def _take_alerts(self, t: float) -> None:
        cursor, alerts = self._outbox.since(self._cursor)
        missed = (cursor - self._cursor) - len(alerts)
        if missed > 0:
            self._count("alerts_missed", missed)
            log.error("MQTT: %d alerts left the outbox before they could be spooled", missed)
        first = cursor - len(alerts)
        self._cursor = cursor
        if not alerts:
            return
        wall_now, clock_now = self._wall(), self._clock()
        payload = b""
        for i, alert in enumerate(alerts):
            wall = wall_now - max(0.0, clock_now - alert.at)
            payload = _dumps(tp.alert_payload(alert, self.name, f"{self.boot}-{first + i}", wall))
            self.spool.put(self.topics.alerts, payload, qos=1)
        self.spool.put(self.topics.last_alert, payload, qos=1, retain=True, replace=True)
        self._count("alerts_spooled", len(alerts))

    def _flush(self) -> None:
        client = self._client
        if client is None:
            return
        room = MAX_INFLIGHT - len(self._inflight)
        if room <= 0 or len(self.spool) <= len(self._inflight):  # nothing unsent: no query on the idle path
            return
        for msg in self.spool.after(self._last_sent_id, room):
            info = client.publish(msg.topic, msg.payload, qos=msg.qos, retain=msg.retain)
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return  # the connection is going; the loop notices and the spool keeps the message
            self._inflight[info.mid] = msg.id
            self._last_sent_id = msg.id
            self._count("spool_sent")

    # ----- in: commands ---------------------------------------------------------------------------

    def _on_message(self, client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        try:
            self._handle(client, msg)
        except Exception:
            # A payload must never take the bridge down; count and log it.
            self._count("handler_errors")
            log.exception("MQTT: error handling a message on %s", msg.topic)

    def _handle(self, client: paho.Client, msg: paho.MQTTMessage) -> None:
        topic, payload = msg.topic, bytes(msg.payload)
        if topic == f"{self.discovery_prefix}/status":
            if payload == b"online" and self.discovery:  # Home Assistant restarted: announce again
                self._publish_discovery(client)
            return
        at, wall = self._clock(), self._wall()
        if msg.retain:
            # A command kept by the broker would act again at every reconnection: commands are never retained.
            verdict = Verdict(Outcome.BAD_COMMAND, detail="retained command ignored")
        elif topic == self.topics.cmd_ha:
            verdict = parse_ha(payload, at, allowed=self.ha_commands)
        elif topic in (self.topics.cmd, self.topics.cmd_all):
            verdict = self._auth.check(payload, wall=wall, at=at)
            if topic == self.topics.cmd_all and verdict.outcome is Outcome.ACCEPTED:
                verdict = Verdict(
                    Outcome.BAD_COMMAND, nonce=verdict.nonce, detail="the fleet-wide topic takes only e-stops"
                )
        else:
            return
        command = verdict.command
        if verdict.ok and command is not None:
            if not self._commands.put(command):
                self._count("commands_dropped")
                verdict = Verdict(Outcome.BAD_COMMAND, nonce=verdict.nonce, detail="command queue full")
            elif command.kind is CommandKind.ESTOP:
                self._count("estops")
                log.warning("MQTT: e-stop from %s", topic)
            else:
                self._count("commands_accepted")
                log.info("MQTT: %s accepted from %s", command.kind.value, topic)
        if not verdict.ok:
            self._count("commands_rejected")
            with self._lock:
                self._rejected[verdict.outcome.value] = self._rejected.get(verdict.outcome.value, 0) + 1
            log.warning("MQTT: command on %s rejected: %s (%s)", topic, verdict.outcome.value, verdict.detail)
        if verdict.nonce is not None or verdict.outcome is Outcome.ESTOP:
            # Only messages that were stops or carried a nonce get an answer: garbage gets no amplification.
            result = {
                "robot": self.name,
                "nonce": verdict.nonce,
                "ok": verdict.ok,
                "outcome": verdict.outcome.value,
                "detail": verdict.detail,
                "wall": round(wall, 3),
            }
            self.spool.put(self.topics.cmd_result, _dumps(result), qos=1)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
