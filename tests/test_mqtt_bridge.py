"""The MQTT bridge against a real Mosquitto (started here on 127.0.0.1): state, alerts, last will, commands,
Home Assistant discovery, and the disk spool through a broker outage and a robot restart."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from robot.alerts import AlertOutbox
from robot.commands import CommandQueue
from robot.core.types import Alert, CommandKind, Mode, Severity
from robot.errors import MqttError
from robot.mqtt.auth import sign
from robot.mqtt.bridge import MqttBridge
from robot.mqtt.spool import DiskSpool
from robot.telemetry import TelemetryBus
from tests.mqtt_broker import MOSQUITTO, Broker
from tests.mqtt_helpers import Observer, pump, telemetry

pytestmark = pytest.mark.skipif(not Path(MOSQUITTO).exists(), reason="needs Debian's mosquitto")

KEY = "0123456789abcdef" * 4


class VClock:
    """Virtual time for the bridge's pacing and the supervisor clock."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class Rig:
    def __init__(self, port: int, tmp: Path, name: str, **kw: Any) -> None:
        self.clock = VClock()
        self.bus = TelemetryBus()
        self.outbox = AlertOutbox()
        self.commands = CommandQueue()
        self.bridge = MqttBridge(
            name=name,
            telemetry=self.bus,
            outbox=self.outbox,
            commands=self.commands,
            host="127.0.0.1",
            port=port,
            spool_path=tmp / f"{name}-spool.db",
            clock=self.clock,
            pace=self.clock,
            command_key=KEY,
            reconnect_min_s=0.5,
            reconnect_max_s=2.0,
            **kw,
        )
        self.t = self.bridge.topics

    def step(self, dt: float = 0.01) -> None:
        self.clock.t += dt
        self.bridge.step(block_s=0.005)

    def connect(self) -> None:
        pump(self.step, lambda: self.bridge.connected, what="bridge connected")

    def alert(self, kind: str = "tray_full", severity: Severity = Severity.WARNING) -> None:
        self.outbox.add(Alert(kind, severity, f"{kind} happened", self.clock.t))


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with Broker(tmp_path_factory.mktemp("mosquitto")) as b:
        yield b


@pytest.fixture
def observer(broker: Broker) -> Iterator[Observer]:
    obs = Observer(broker.port)
    yield obs
    obs.close()


_names = iter(range(10_000))


@pytest.fixture
def rig(broker: Broker, tmp_path: Path) -> Iterator[Rig]:
    r = Rig(broker.port, tmp_path, f"robot{next(_names)}")
    yield r
    r.bridge.close()


def test_online_state_position_and_discovery_are_retained_for_late_readers(
    rig: Rig, broker: Broker, observer: Observer
) -> None:
    rig.bus.publish(telemetry(wall=time.time(), state="cleaning"))
    rig.connect()
    pump(rig.step, lambda: rig.bridge.stats["states_published"] >= 1)
    observer.wait_for(lambda: observer.on(rig.t.state), what="state")
    late = Observer(
        broker.port, [f"ramudroid/{rig.bridge.name}/#", f"homeassistant/+/{rig.bridge.name}/+/config"]
    )
    try:
        late.wait_for(lambda: late.on(rig.t.position) and late.on(rig.t.status), what="retained messages")
        assert late.on(rig.t.status) == [b"online"]
        state = late.json_on(rig.t.state)[-1]
        assert state["state"] == "cleaning" and state["battery_pct"] == 80 and state["tray_pct"] == 25
        assert state["robot"] == rig.bridge.name and state["latitude"] == 12.9716
        assert late.json_on(rig.t.position)[-1] == {
            "latitude": 12.9716,
            "longitude": 77.5946,
            "gps_accuracy": 4.5,
        }
        late.wait_for(
            lambda: len([t for t, *_ in late.messages if t.endswith("/config")]) >= 5, what="discovery"
        )
        configs = {t: json.loads(p) for t, p, *_ in late.messages if t.endswith("/config") and p}
        assert f"homeassistant/device_tracker/{rig.bridge.name}/position/config" in configs
        assert f"homeassistant/button/{rig.bridge.name}/pause/config" not in configs  # ha_commands is off
    finally:
        late.close()


def test_state_goes_out_every_telemetry_period_and_at_once_on_a_change(rig: Rig, observer: Observer) -> None:
    rig.bus.publish(telemetry(wall=time.time()))
    rig.connect()
    published = lambda: rig.bridge.stats["states_published"]  # noqa: E731
    pump(rig.step, lambda: published() == 1)
    for _ in range(9):  # 0.9 s of virtual time, same snapshot: nothing new
        rig.step(0.1)
    assert published() == 1
    rig.step(0.1)  # 1.0 s: the periodic publish
    assert published() == 2
    rig.bus.publish(telemetry(wall=time.time(), tray_kg=0.6))  # a new snapshot, nothing significant
    rig.step(0.3)
    assert published() == 2
    rig.bus.publish(telemetry(wall=time.time(), state="obstacle_stop", reason="obstacle 0.4 m"))
    rig.step(0.01)  # a change of state goes out at once ...
    assert published() == 3
    rig.bus.publish(telemetry(wall=time.time(), state="cleaning"))
    rig.step(0.01)  # ... but at most 5 a second, so a flapping state cannot flood the broker
    assert published() == 3
    rig.step(0.2)
    assert published() == 4
    observer.wait_for(lambda: len(observer.on(rig.t.state)) == 4, what="4 states")
    assert [s["state"] for s in observer.json_on(rig.t.state)] == [
        "cleaning",
        "cleaning",
        "obstacle_stop",
        "cleaning",
    ]


def test_alerts_go_out_at_qos_1_with_unique_ids_and_the_last_one_retained(
    rig: Rig, broker: Broker, observer: Observer
) -> None:
    rig.connect()
    for kind in ("tray_full", "rain", "low_battery"):
        rig.alert(kind)
    pump(rig.step, lambda: len(observer.on(rig.t.alerts)) == 3, what="3 alerts")
    alerts = observer.json_on(rig.t.alerts)
    assert [a["kind"] for a in alerts] == ["tray_full", "rain", "low_battery"]
    assert len({a["id"] for a in alerts}) == 3 and all(a["robot"] == rig.bridge.name for a in alerts)
    assert abs(alerts[0]["wall"] - time.time()) < 60
    pump(rig.step, lambda: len(rig.bridge.spool) == 0, what="spool acknowledged")
    late = Observer(broker.port, [rig.t.last_alert])
    try:
        late.wait_for(lambda: late.on(rig.t.last_alert), what="retained last alert")
        assert late.json_on(rig.t.last_alert)[-1]["kind"] == "low_battery"
    finally:
        late.close()


def test_the_broker_says_offline_for_a_robot_that_vanishes_and_for_one_that_shuts_down(
    broker: Broker, tmp_path: Path, observer: Observer
) -> None:
    vanishing, leaving = Rig(broker.port, tmp_path, "vanishing"), Rig(broker.port, tmp_path, "leaving")
    try:
        vanishing.connect()
        leaving.connect()
        observer.wait_for(lambda: observer.on(vanishing.t.status) == [b"online"], what="online")
        vanishing.bridge._drop_client()  # the socket dies without a DISCONNECT: a crash or a cut link
        observer.wait_for(lambda: observer.on(vanishing.t.status)[-1:] == [b"offline"], what="last will")
        leaving.bridge.close()
        observer.wait_for(lambda: observer.on(leaving.t.status)[-1:] == [b"offline"], what="offline on close")
    finally:
        vanishing.bridge.close()
        leaving.bridge.close()


def _results(observer: Observer, rig: Rig) -> list[dict[str, Any]]:
    return observer.json_on(rig.t.cmd_result)


def test_commands_follow_the_dashboards_rules_and_bad_ones_are_counted_never_fatal(
    rig: Rig, observer: Observer
) -> None:
    rig.connect()
    name = rig.bridge.name

    def send(topic: str, payload: bytes, retain: bool = False) -> None:
        before = sum(rig.bridge.stats[k] for k in ("estops", "commands_accepted", "commands_rejected"))
        observer.publish(topic, payload, retain=retain)
        pump(
            rig.step,
            lambda: (
                sum(rig.bridge.stats[k] for k in ("estops", "commands_accepted", "commands_rejected"))
                > before
            ),
            what=f"{payload[:40]!r} handled",
        )

    send(rig.t.cmd, b'{"kind":"estop"}')
    send(
        rig.t.cmd,
        sign(KEY, name, {"kind": "set_mode", "mode": "paused"}, wall=time.time(), nonce="pause00001"),
    )
    send(rig.t.cmd, b'{"kind":"set_mode","mode":"auto"}')  # unsigned
    send(rig.t.cmd, sign("f" * 64, name, {"kind": "reset"}, wall=time.time()))  # wrong key
    replayed = sign(KEY, name, {"kind": "reset"}, wall=time.time(), nonce="reset00001")
    send(rig.t.cmd, replayed)
    send(rig.t.cmd, replayed)
    send(rig.t.cmd, sign(KEY, name, {"kind": "reset"}, wall=time.time() - 3600))  # recorded an hour ago
    send(rig.t.cmd, b"\x00\xff" * 100)
    send(rig.t.cmd, b"{" * 5000)
    send(rig.t.cmd_all, b'{"kind":"estop"}')
    send(rig.t.cmd_all, sign(KEY, name, {"kind": "set_mode", "mode": "auto"}, wall=time.time()))
    send(rig.t.cmd_ha, b"STOP")
    send(rig.t.cmd_ha, b"AUTO")  # ha_commands is off

    got = rig.commands.drain()
    assert [c.kind for c in got] == [
        CommandKind.ESTOP,
        CommandKind.SET_MODE,
        CommandKind.RESET,
        CommandKind.ESTOP,
        CommandKind.ESTOP,
    ]
    assert got[1].mode is Mode.PAUSED and got[1].source == "mqtt" and got[4].source == "mqtt-ha"
    stats = rig.bridge.stats
    assert (stats["estops"], stats["commands_accepted"], stats["commands_rejected"]) == (3, 2, 8)
    assert stats["rejected"] == {
        "bad_envelope": 1,
        "bad_signature": 1,
        "replay": 1,
        "stale": 1,
        "not_json": 1,
        "too_large": 1,
        "bad_command": 1,  # a signed non-stop on the fleet-wide topic
        "no_key": 1,
    }
    assert stats["handler_errors"] == 0 and rig.bridge.connected
    pump(rig.step, lambda: any(r["nonce"] == "reset00001" and not r["ok"] for r in _results(observer, rig)))
    by_nonce = {(r["nonce"], r["outcome"]) for r in _results(observer, rig)}
    assert {("pause00001", "accepted"), ("reset00001", "accepted"), ("reset00001", "replay")} <= by_nonce
    # Garbage gets no answer: the robot does not amplify a flood.
    assert all(r["nonce"] is not None or r["outcome"] == "estop" for r in _results(observer, rig))


def test_a_stop_sent_while_the_robot_was_away_arrives_but_a_retained_command_never_acts(
    rig: Rig, observer: Observer
) -> None:
    rig.connect()
    rig.bridge._drop_client()  # the robot's link is down ...
    observer.publish(
        rig.t.cmd, b'{"kind":"estop"}', retain=True
    )  # ... when someone presses stop (and retains it)
    try:
        pump(rig.step, lambda: rig.bridge.stats["commands_rejected"] == 1, what="reconnected and handled")
        # The persistent session delivers the live message once; the broker's retained copy is refused, so a
        # retained command cannot act again at every reconnection.
        assert [c.kind for c in rig.commands.drain()] == [CommandKind.ESTOP]
        assert rig.bridge.stats["estops"] == 1 and rig.bridge.stats["rejected"] == {"bad_command": 1}
    finally:
        observer.publish(rig.t.cmd, b"", retain=True)  # clear the retained message


def test_home_assistant_pause_and_auto_work_when_the_robot_allows_them(
    broker: Broker, tmp_path: Path, observer: Observer
) -> None:
    r = Rig(broker.port, tmp_path, "ha-robot", ha_commands=True)
    try:
        r.connect()
        pump(r.step, lambda: observer.on("homeassistant/button/ha-robot/auto/config"), what="auto button")
        pause = json.loads(observer.on("homeassistant/button/ha-robot/pause/config")[-1])
        observer.publish(pause["command_topic"], pause["payload_press"].encode())
        auto = json.loads(observer.on("homeassistant/button/ha-robot/auto/config")[-1])
        observer.publish(auto["command_topic"], auto["payload_press"].encode())
        pump(r.step, lambda: r.bridge.stats["commands_accepted"] == 2, what="two HA commands")
        assert [c.mode for c in r.commands.drain()] == [Mode.PAUSED, Mode.AUTO]
        # Home Assistant restarting asks for discovery again.
        before = len(observer.on("homeassistant/button/ha-robot/stop/config"))
        observer.publish("homeassistant/status", b"online")
        pump(r.step, lambda: len(observer.on("homeassistant/button/ha-robot/stop/config")) > before)
    finally:
        r.bridge.close()


def test_alerts_wait_on_disk_through_an_outage_and_a_robot_restart_then_flush(tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker")
    broker.start()
    collector = Observer(broker.port, ["ramudroid/+/alerts"], client_id="collector", clean=False)
    first = Rig(broker.port, tmp_path, "outage")
    try:
        first.connect()
        first.alert("before")
        pump(first.step, lambda: len(collector.on(first.t.alerts)) == 1, what="first alert")
        broker.stop()  # the broker goes away (a restart: it keeps the collector's session on disk)
        pump(first.step, lambda: not first.bridge.connected, what="loss noticed")
        for i in range(5):
            first.alert(f"during{i}")
            first.step(1.0)
        assert len(first.bridge.spool) == 6  # 5 alerts + the retained last one, on disk
        first.bridge.close()  # ... and the robot restarts before the broker is back
        second = Rig(broker.port, tmp_path, "outage")
        assert len(second.bridge.spool) == 6
        second.alert("after-restart")
        broker.start()
        collector.wait_for(lambda: collector.subscriptions == 2, what="collector back")
        pump(second.step, lambda: len(collector.on(second.t.alerts)) >= 7, timeout=20, what="all alerts")
        kinds = [a["kind"] for a in collector.json_on(second.t.alerts)]
        assert kinds == ["before", *(f"during{i}" for i in range(5)), "after-restart"]
        pump(second.step, lambda: len(second.bridge.spool) == 0, what="spool emptied")
        assert second.bridge.stats["connect_failures"] == 0 or second.bridge.stats["connects"] == 1
        second.bridge.close()
    finally:
        collector.close()
        broker.stop()


def test_a_silent_broker_never_blocks_the_caller_and_is_given_up_on(tmp_path: Path) -> None:
    # A listener that accepts TCP but never answers CONNECT: a hung broker or a black-holing firewall.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        r = Rig(server.getsockname()[1], tmp_path, "silent", connect_timeout_s=5.0)
        r.bus.publish(telemetry(wall=time.time()))
        r.alert("while-silent")
        worst = 0.0
        for _ in range(100):  # 10 s of virtual time
            start = time.monotonic()
            r.step(0.1)
            worst = max(worst, time.monotonic() - start)
        assert not r.bridge.connected
        assert r.bridge.stats["connect_failures"] == 0  # TCP connects; CONNACK never comes ...
        assert len(r.bridge.spool) == 2  # ... and the alert waits on disk
        assert worst < 0.5, f"one round took {worst:.3f} s"  # margin: a loaded 2-core machine, not a budget
        r.bridge.close()


def test_the_spool_is_bounded_and_survives_an_unusable_file(tmp_path: Path) -> None:
    spool = DiskSpool(tmp_path / "s.db", max_messages=100)
    for i in range(150):
        spool.put("t", str(i).encode())
    assert len(spool) == 100 and spool.dropped == 50
    assert [m.payload for m in spool.after(0, 3)] == [b"50", b"51", b"52"]  # the oldest went first
    spool.remove([m.id for m in spool.after(0, 10)])
    assert len(spool) == 90
    spool.close()
    assert len(DiskSpool(tmp_path / "s.db", max_messages=100)) == 90  # on disk
    (tmp_path / "dir.db").mkdir()
    fallback = DiskSpool(tmp_path / "dir.db")
    assert not fallback.on_disk
    fallback.put("t", b"x")
    assert len(fallback) == 1


def test_a_bridge_thread_runs_beside_a_busy_caller_and_closes_promptly(
    broker: Broker, tmp_path: Path
) -> None:
    bus, outbox, commands = TelemetryBus(), AlertOutbox(), CommandQueue()
    got = threading.Event()
    commands.on_put = got.set
    bridge = MqttBridge(
        name="threaded", telemetry=bus, outbox=outbox, commands=commands, host="127.0.0.1", port=broker.port
    )
    obs = Observer(broker.port, ["ramudroid/threaded/state"])
    try:
        bus.publish(telemetry(wall=time.time()))
        bridge.start()
        obs.wait_for(lambda: obs.on("ramudroid/threaded/state"), what="state from the thread")
        obs.publish("ramudroid/threaded/cmd", b'{"kind":"estop"}')
        assert got.wait(5)
        start = time.monotonic()
        bridge.close()
        assert time.monotonic() - start < 3.0
    finally:
        obs.close()
        bridge.close()


def test_misconfiguration_is_one_clear_error(tmp_path: Path) -> None:
    kw: dict[str, Any] = {"telemetry": TelemetryBus(), "outbox": AlertOutbox(), "commands": CommandQueue()}
    with pytest.raises(MqttError, match="topic level"):
        MqttBridge(name="a/b", host="x", **kw)
    with pytest.raises(MqttError, match=r"mqtt\.ca_file"):
        MqttBridge(name="r", host="x", tls=True, ca_file=str(tmp_path / "missing.pem"), **kw)


def test_state_payload_tolerates_missing_and_non_finite_readings() -> None:
    from robot.mqtt.topics import position_payload, state_payload

    t = replace(telemetry(wall=1.0), fix=None, battery_soc=None, tray_kg=float("nan"), panel_w=float("inf"))
    s = state_payload(t, "r", tray_capacity_kg=2.0)
    assert (
        s["latitude"] is None and s["battery_pct"] is None and s["tray_kg"] is None and s["panel_w"] is None
    )
    assert position_payload(s) is None
    json.dumps(s, allow_nan=False)
