"""Who may command the robot over MQTT: the e-stop from anyone, the rest only signed, fresh and once."""

from __future__ import annotations

import json

import pytest

from robot.core.types import CommandKind, Mode
from robot.mqtt.auth import CommandAuth, Outcome, derive_key, parse_fields, parse_ha, sign
from robot.mqtt.discovery import discovery_messages
from robot.mqtt.topics import Topics, robot_of, valid_name

KEY = "k" * 40
NOW = 1_700_000_000.0


def auth(**kw: float) -> CommandAuth:
    return CommandAuth(KEY, "r1", window_s=30.0, **kw)  # type: ignore[arg-type]


def check(a: CommandAuth, payload: bytes, wall: float = NOW):
    return a.check(payload, wall=wall, at=5.0)


def test_a_bare_estop_is_accepted_from_anyone_and_is_only_a_stop() -> None:
    for payload in (b'{"kind":"estop"}', b'{"kind":"estop","mode":"auto","left":1,"right":1}'):
        v = check(CommandAuth("", "r1"), payload)
        assert v.outcome is Outcome.ESTOP and v.ok
        assert v.command is not None and v.command.kind is CommandKind.ESTOP
        assert (v.command.mode, v.command.left, v.command.right, v.command.at) == (None, 0.0, 0.0, 5.0)


def test_a_signed_command_is_accepted_once_with_the_dashboards_fields() -> None:
    a = auth()
    payload = sign(KEY, "r1", {"kind": "set_mode", "mode": "paused"}, wall=NOW, nonce="abcdef0123")
    v = check(a, payload)
    assert v.outcome is Outcome.ACCEPTED and v.nonce == "abcdef0123"
    assert v.command is not None and v.command.kind is CommandKind.SET_MODE and v.command.mode is Mode.PAUSED
    assert v.command.source == "mqtt"
    assert check(a, payload).outcome is Outcome.REPLAY
    drive = check(a, sign(KEY, "r1", {"kind": "drive", "left": 0.5, "right": -0.25}, wall=NOW))
    assert drive.command is not None and (drive.command.left, drive.command.right) == (0.5, -0.25)


@pytest.mark.parametrize(
    ("payload", "outcome"),
    [
        (b'{"kind":"set_mode","mode":"auto"}', Outcome.BAD_ENVELOPE),  # unsigned
        (b'{"kind":"reset"}', Outcome.BAD_ENVELOPE),
        (b"\xff\xfe garbage", Outcome.NOT_JSON),
        (b"STOP", Outcome.NOT_JSON),
        (b"[1, 2]", Outcome.BAD_ENVELOPE),
        (b'{"body": 3, "sig": "00"}', Outcome.BAD_ENVELOPE),
        (b'{"body": "{}", "sig": "00", "x": 1}', Outcome.BAD_ENVELOPE),
        (b'{"body": "not json", "sig": "00"}', Outcome.BAD_ENVELOPE),
        (b'{"kind":"estop","pad":"' + b"x" * 3000 + b'"}', Outcome.TOO_LARGE),
    ],
)
def test_anything_else_unsigned_or_malformed_is_rejected(payload: bytes, outcome: Outcome) -> None:
    v = check(auth(), payload)
    assert v.outcome is outcome and not v.ok and v.command is None


def test_a_wrong_key_a_tampered_body_or_another_robots_command_is_refused() -> None:
    a = auth()
    assert check(a, sign("x" * 40, "r1", {"kind": "reset"}, wall=NOW)).outcome is Outcome.BAD_SIGNATURE
    env = json.loads(sign(KEY, "r1", {"kind": "set_mode", "mode": "paused"}, wall=NOW))
    env["body"] = env["body"].replace("paused", "manual")
    assert check(a, json.dumps(env).encode()).outcome is Outcome.BAD_SIGNATURE
    assert check(a, sign(KEY, "r2", {"kind": "reset"}, wall=NOW)).outcome is Outcome.WRONG_ROBOT
    # Per-robot keys derived from one master: r2's key does not sign for r1.
    master = "m" * 40
    r1 = CommandAuth(derive_key(master, "r1"), "r1")
    assert derive_key(master, "r1") != derive_key(master, "r2")
    assert (
        check(r1, sign(derive_key(master, "r2"), "r1", {"kind": "reset"}, wall=NOW)).outcome
        is Outcome.BAD_SIGNATURE
    )
    assert check(r1, sign(derive_key(master, "r1"), "r1", {"kind": "reset"}, wall=NOW)).ok


def test_without_a_key_only_the_estop_is_taken_even_a_signed_one() -> None:
    a = CommandAuth("", "r1")
    assert check(a, sign("", "r1", {"kind": "reset"}, wall=NOW)).outcome is Outcome.NO_KEY
    assert check(a, sign("", "r1", {"kind": "estop"}, wall=NOW)).outcome is Outcome.ESTOP


def test_old_or_future_commands_are_refused_and_nonces_are_forgotten_after_the_window() -> None:
    a = auth()
    assert check(a, sign(KEY, "r1", {"kind": "reset"}, wall=NOW - 31)).outcome is Outcome.STALE
    assert check(a, sign(KEY, "r1", {"kind": "reset"}, wall=NOW + 31)).outcome is Outcome.STALE
    assert check(a, sign(KEY, "r1", {"kind": "reset"}, wall=NOW - 29)).ok
    p = sign(KEY, "r1", {"kind": "reset"}, wall=NOW, nonce="n0000000001")
    assert check(a, p).ok
    assert check(a, p, wall=NOW + 20).outcome is Outcome.REPLAY  # still inside the window
    assert check(a, p, wall=NOW + 40).outcome is Outcome.STALE  # the window itself refuses it now
    assert "n0000000001" not in a._seen  # pruned: memory stays bounded by the window


def test_the_nonce_memory_is_bounded() -> None:
    a = auth(max_nonces=5)
    for i in range(20):
        assert check(a, sign(KEY, "r1", {"kind": "reset"}, wall=NOW, nonce=f"nonce{i:05d}")).ok
    assert len(a._seen) == 5


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        ({"kind": "fly"}, "unknown kind"),
        ({"kind": "set_mode", "mode": "turbo"}, "mode"),
        ({"kind": "set_mode"}, "mode"),
        ({"kind": "drive", "left": 2, "right": 0}, "[-1, 1]"),
        ({"kind": "drive", "left": True, "right": 0}, "[-1, 1]"),
        ({"kind": "drive", "left": "0.5", "right": 0}, "[-1, 1]"),
        ({"kind": "drive", "left": 0.1}, "[-1, 1]"),
        ({"kind": "reset", "mode": "auto"}, "unexpected field"),
    ],
)
def test_signed_commands_follow_the_dashboards_strict_rules(fields: dict, why: str) -> None:
    assert why in str(parse_fields(fields, 0.0, "mqtt"))
    v = check(auth(), sign(KEY, "r1", fields, wall=NOW))
    assert v.outcome is Outcome.BAD_COMMAND and why in v.detail


def test_home_assistant_stop_always_stops_and_pause_auto_need_the_robots_consent() -> None:
    stop = parse_ha(b"STOP", 1.0, allowed=False)
    assert (
        stop.outcome is Outcome.ESTOP and stop.command is not None and stop.command.kind is CommandKind.ESTOP
    )
    assert parse_ha(b"PAUSE", 1.0, allowed=False).outcome is Outcome.NO_KEY
    auto = parse_ha(b"AUTO", 1.0, allowed=True)
    assert auto.command is not None and auto.command.mode is Mode.AUTO and auto.command.source == "mqtt-ha"
    assert parse_ha(b"MANUAL", 1.0, allowed=True).outcome is Outcome.BAD_COMMAND
    assert parse_ha(b"\x00" * 5000, 1.0, allowed=True).outcome is Outcome.BAD_COMMAND


def test_topic_names_and_discovery_layout() -> None:
    assert (
        valid_name("ward-7_robot2")
        and not valid_name("_all")
        and not valid_name("a/b")
        and not valid_name("a+")
    )
    t = Topics("ramudroid", "r1")
    assert robot_of("ramudroid", t.state) == ("r1", "state")
    assert robot_of("ramudroid", "ramudroid/r1") is None and robot_of("ramudroid", "other/r1/state") is None
    msgs = dict(discovery_messages(t))
    assert set(msgs) == {
        "homeassistant/sensor/r1/battery/config",
        "homeassistant/sensor/r1/tray/config",
        "homeassistant/sensor/r1/state/config",
        "homeassistant/device_tracker/r1/position/config",
        "homeassistant/button/r1/stop/config",
    }
    for payload in msgs.values():
        c = json.loads(payload)
        assert c["availability_topic"] == t.status and c["device"]["identifiers"] == ["ramudroid_r1"]
        assert c["unique_id"].startswith("ramudroid_r1_")
    tracker = json.loads(msgs["homeassistant/device_tracker/r1/position/config"])
    assert tracker["json_attributes_topic"] == t.position and tracker["source_type"] == "gps"
    stop = json.loads(msgs["homeassistant/button/r1/stop/config"])
    assert stop["command_topic"] == t.cmd_ha and parse_ha(stop["payload_press"].encode(), 0, allowed=False).ok
    with_ha = dict(discovery_messages(t, ha_commands=True))
    for obj in ("pause", "auto"):
        btn = json.loads(with_ha[f"homeassistant/button/r1/{obj}/config"])
        assert parse_ha(btn["payload_press"].encode(), 0, allowed=True).ok
