"""Home Assistant MQTT discovery: the retained config messages that make a robot appear with no HA setup."""

from __future__ import annotations

import json
from typing import Any

from robot import __version__
from robot.mqtt.topics import Topics


def _device(name: str) -> dict[str, Any]:
    return {
        "identifiers": [f"ramudroid_{name}"],
        "name": name,
        "manufacturer": "Ramudroid",
        "model": "Solar street-cleaning robot",
        "sw_version": __version__,
    }


def discovery_messages(
    topics: Topics, *, prefix: str = "homeassistant", ha_commands: bool = False
) -> list[tuple[str, bytes]]:
    """(topic, payload) for every entity, each at <prefix>/<component>/<robot>/<object>/config.

    The pause and auto buttons are announced only when the robot takes them (mqtt.ha_commands): a button that
    is always refused would be worse than none. Stop is always there.
    """
    name = topics.name
    common = {
        "availability_topic": topics.status,
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": _device(name),
    }

    def entity(component: str, obj: str, **fields: Any) -> tuple[str, bytes]:
        config = {"unique_id": f"ramudroid_{name}_{obj}", **common, **fields}
        return f"{prefix}/{component}/{name}/{obj}/config", json.dumps(config, separators=(",", ":")).encode()

    out = [
        entity(
            "sensor",
            "battery",
            name="Battery",
            state_topic=topics.state,
            value_template="{{ value_json.battery_pct }}",
            device_class="battery",
            unit_of_measurement="%",
            state_class="measurement",
        ),
        entity(
            "sensor",
            "tray",
            name="Tray",
            state_topic=topics.state,
            value_template="{{ value_json.tray_kg }}",
            device_class="weight",
            unit_of_measurement="kg",
            state_class="measurement",
            icon="mdi:delete-variant",
        ),
        entity(
            "sensor",
            "state",
            name="State",
            state_topic=topics.state,
            value_template="{{ value_json.state }}",
            json_attributes_topic=topics.state,
            json_attributes_template=(
                "{{ {'mode': value_json.mode, 'reason': value_json.reason, 'goal': value_json.goal} | tojson }}"
            ),
            icon="mdi:robot-vacuum",
        ),
        entity(
            "device_tracker",
            "position",
            name="Position",
            json_attributes_topic=topics.position,
            source_type="gps",
            icon="mdi:map-marker",
        ),
        entity(
            "button",
            "stop",
            name="Emergency stop",
            command_topic=topics.cmd_ha,
            payload_press="STOP",
            icon="mdi:stop-circle",
        ),
    ]
    if ha_commands:
        out += [
            entity(
                "button",
                "pause",
                name="Pause",
                command_topic=topics.cmd_ha,
                payload_press="PAUSE",
                icon="mdi:pause",
            ),
            entity(
                "button",
                "auto",
                name="Auto",
                command_topic=topics.cmd_ha,
                payload_press="AUTO",
                icon="mdi:play",
            ),
        ]
    return out


def removal_messages(topics: Topics, *, prefix: str = "homeassistant") -> list[tuple[str, bytes]]:
    """Empty retained configs for the pause/auto buttons, so turning ha_commands off removes them from HA."""
    return [(f"{prefix}/button/{topics.name}/{obj}/config", b"") for obj in ("pause", "auto")]
