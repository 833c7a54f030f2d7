"""The broker ACL documented in docs/mqtt.md, run as written in a real Mosquitto with per-robot passwords: robots,
the fleet and Home Assistant can do their jobs through it; a logged-in stranger can neither command nor pose."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from robot.alerts import AlertOutbox
from robot.commands import CommandQueue
from robot.core.types import CommandKind, Mode
from robot.mqtt.auth import derive_key, sign
from robot.mqtt.bridge import MqttBridge
from robot.telemetry import TelemetryBus
from tests.mqtt_broker import MOSQUITTO, Broker
from tests.mqtt_helpers import Observer, telemetry

ROOT = Path(__file__).resolve().parent.parent
PASSWD = "/usr/bin/mosquitto_passwd"
MASTER = "acl-test-master-" + "z" * 40
USERS = {"r1": "pw-r1", "r2": "pw-r2", "fleet": "pw-fleet", "homeassistant": "pw-ha", "intruder": "pw-x"}

pytestmark = pytest.mark.skipif(
    not (Path(MOSQUITTO).exists() and Path(PASSWD).exists()), reason="needs Debian's mosquitto"
)


def documented_acl() -> str:
    text = (ROOT / "docs" / "mqtt.md").read_text()
    block = text.split("<!-- acl -->", 1)[1].split("```", 2)[1]
    return block.strip("\n") + "\n"


def observer(port: int, user: str, subs: list[str]) -> Observer:
    return Observer(port, subs, username=user, password=USERS[user])


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    pw = tmp_path / "passwd"
    for i, (user, password) in enumerate(USERS.items()):
        subprocess.run([PASSWD, *(["-c"] if i == 0 else []), "-b", str(pw), user, password], check=True)
    acl = tmp_path / "acl"
    acl.write_text(documented_acl())
    b = Broker(tmp_path / "b", anonymous=False, extra=f"password_file {pw}\nacl_file {acl}\n")
    b.start()
    yield b
    b.stop()


def bridge(
    broker: Broker, tmp: Path, name: str, password: str, **kw: object
) -> tuple[MqttBridge, CommandQueue]:
    bus, q = TelemetryBus(), CommandQueue()
    bus.publish(telemetry(wall=time.time()))
    b = MqttBridge(
        name=name,
        telemetry=bus,
        outbox=AlertOutbox(),
        commands=q,
        host="127.0.0.1",
        port=broker.port,
        username=name,
        password=password,
        command_key=derive_key(MASTER, name),
        spool_path=tmp / f"{name}.db",
        ha_commands=True,
        **kw,  # type: ignore[arg-type]
    )
    b.start()
    return b, q


def test_the_documented_acl_lets_everyone_do_their_job_and_nobody_more(
    broker: Broker, tmp_path: Path
) -> None:
    ha = observer(broker.port, "homeassistant", ["homeassistant/#", "ramudroid/+/state"])
    fleet = observer(broker.port, "fleet", ["ramudroid/+/state", "ramudroid/+/cmd/result"])
    stranger = observer(broker.port, "intruder", ["ramudroid/#"])
    r1, q1 = bridge(broker, tmp_path, "r1", USERS["r1"])
    wrong, _ = bridge(broker, tmp_path, "r2", "not-the-password")
    try:
        ha.wait_for(
            lambda: ha.on("homeassistant/button/r1/auto/config") and ha.on("ramudroid/r1/state"), what="HA"
        )
        fleet.wait_for(lambda: fleet.on("ramudroid/r1/state"), what="fleet sees r1")

        ha.publish("ramudroid/r1/cmd/ha", b"PAUSE")
        fleet.publish(
            "ramudroid/r1/cmd", sign(derive_key(MASTER, "r1"), "r1", {"kind": "reset"}, wall=time.time())
        )
        fleet.publish("ramudroid/_all/cmd", b'{"kind":"estop"}')
        got: list = []
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            got += q1.drain()
            time.sleep(0.02)
        assert [(c.kind, c.mode) for c in got] == [
            (CommandKind.SET_MODE, Mode.PAUSED),
            (CommandKind.RESET, None),
            (CommandKind.ESTOP, None),
        ]

        # A logged-in stranger: its stop, its posing as r1, and its reading all go nowhere.
        stranger.publish("ramudroid/r1/cmd", b'{"kind":"estop"}')
        stranger.publish("ramudroid/r1/state", b'{"state":"cleaning","robot":"r1"}')
        # r1's own account cannot pose as r2 either.
        r1_client = observer(broker.port, "r1", [])
        r1_client.publish("ramudroid/r2/state", b'{"state":"estop","robot":"r2"}')
        r1_client.close()
        time.sleep(1.0)
        assert q1.drain() == ()
        # Every account may read the fleet-wide stop (patterns apply to all users; harmless), nothing else.
        assert {t for t, *_ in stranger.messages} <= {"ramudroid/_all/cmd"}
        assert fleet.on("ramudroid/r2/state") == []
        assert all(b'"robot":"r1"' in p and b'"wall"' in p for p in fleet.on("ramudroid/r1/state"))

        assert not wrong.connected and wrong.stats["refused_by_broker"] >= 1
    finally:
        for b in (r1, wrong):
            b.close()
        for o in (ha, fleet, stranger):
            o.close()
