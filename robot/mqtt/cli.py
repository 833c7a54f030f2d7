"""`ramudroid mqtt key NAME` derives a robot's command key; `ramudroid mqtt send NAME COMMAND` signs and sends."""

from __future__ import annotations

import argparse
import json
import secrets
import time
from typing import Any

from robot.config import load
from robot.errors import ConfigError, MqttError

COMMANDS: dict[str, dict[str, Any]] = {
    "stop": {"kind": "estop"},
    "pause": {"kind": "set_mode", "mode": "paused"},
    "auto": {"kind": "set_mode", "mode": "auto"},
    "reset": {"kind": "reset"},
    "emptied": {"kind": "tray_emptied"},
}


def _master(args: argparse.Namespace) -> str:
    master = load(args.config).fleet.master_key
    if not master:
        raise ConfigError(
            'fleet.master_key is empty: put a long random secret there first, e.g. master_key = "'
            + secrets.token_hex(32)
            + '"'
        )
    return master


def _cmd_key(args: argparse.Namespace) -> int:
    from robot.mqtt.auth import derive_key
    from robot.mqtt.topics import valid_name

    if not valid_name(args.name):
        raise MqttError(f"robot name {args.name!r}: use letters, digits, '_' and '-'")
    print(f'command_key = "{derive_key(_master(args), args.name)}"   # paste under [mqtt] of {args.name}')
    return 0


def _cmd_send(args: argparse.Namespace) -> int:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from robot.mqtt.auth import derive_key, sign
    from robot.mqtt.topics import Topics, valid_name

    settings = load(args.config)
    m = settings.mqtt
    if not valid_name(args.name):
        raise MqttError(f"robot name {args.name!r}: use letters, digits, '_' and '-'")
    fields = COMMANDS[args.command]
    if fields["kind"] == "estop":
        payload = json.dumps(fields).encode()  # a stop needs no key
    else:
        payload = sign(derive_key(_master(args), args.name), args.name, fields, wall=time.time())
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"ramudroid-cli-{secrets.token_hex(4)}")
    if m.username:
        client.username_pw_set(m.username, m.password or None)
    if m.tls:
        client.tls_set(ca_certs=m.ca_file or None, certfile=m.cert_file or None, keyfile=m.key_file or None)
    try:
        client.connect(m.host, m.port, keepalive=10)
        client.loop_start()
        info = client.publish(Topics(m.topic_prefix, args.name).cmd, payload, qos=1)
        info.wait_for_publish(10)
    except (OSError, RuntimeError, ValueError) as err:
        raise MqttError(f"MQTT broker {m.host}:{m.port}: {err}; nothing sent") from err
    finally:
        client.disconnect()
        client.loop_stop()
    print(f"{args.command} sent to {args.name} (answer on {Topics(m.topic_prefix, args.name).cmd_result})")
    return 0


def register(sub: Any) -> None:
    """Add `mqtt key` and `mqtt send` to the ramudroid CLI."""
    mqtt = sub.add_parser("mqtt", help="MQTT: derive a robot's command key, send a signed command")
    actions = mqtt.add_subparsers(dest="mqtt_command", metavar="ACTION", required=True)
    key = actions.add_parser(
        "key", help="print the mqtt.command_key line for robot NAME (from fleet.master_key)"
    )
    key.add_argument("name")
    key.set_defaults(func=_cmd_key)
    send = actions.add_parser("send", help="send a command to robot NAME through the broker in [mqtt]")
    send.add_argument("name")
    send.add_argument("command", choices=sorted(COMMANDS))
    send.set_defaults(func=_cmd_send)
