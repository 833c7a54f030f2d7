"""Helpers for the MQTT tests: an observing client, a telemetry snapshot, and pumping bridges until a condition."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from robot.core.types import ALL_BRAKED
from robot.hardware.interfaces import GpsFix
from robot.telemetry import Telemetry


def telemetry(wall: float, state: str = "cleaning", **over: Any) -> Telemetry:
    base: dict[str, Any] = {
        "at": 0.0,
        "wall": wall,
        "state": state,
        "mode": "auto",
        "reason": "on route",
        "goal": "route",
        "power_source": "panel",
        "motors": ALL_BRAKED,
        "tray_kg": 0.5,
        "battery_v": 12.1,
        "battery_soc": 0.8,
        "raining": False,
        "panel_w": 40.0,
        "fix": GpsFix(None, 12.9716, 77.5946, 3, 0.5, 90.0, 0.9, 9),
        "link_ok": True,
    }
    base.update(over)
    return Telemetry(**base)


class Observer:
    """A plain MQTT client that records every message on `subscriptions` (its own network thread)."""

    def __init__(
        self,
        port: int,
        subscriptions: Iterable[str] = ("#",),
        client_id: str = "",
        clean: bool = True,
        username: str = "",
        password: str = "",
    ) -> None:
        self.messages: list[tuple[str, bytes, bool, float]] = []
        self._lock = threading.Lock()
        self._subs = list(subscriptions)
        self.connected = threading.Event()
        self.subscriptions = 0  # SUBACKs received: one per (re)connection
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean if client_id else True
        )
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.reconnect_delay_set(0.1, 0.5)
        if username:
            self.client.username_pw_set(username, password)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        assert self.connected.wait(10), "observer could not connect to mosquitto"

    def _on_connect(self, client: paho.Client, *_: Any) -> None:
        if self._subs:
            client.subscribe([(s, 1) for s in self._subs])
        else:
            self.connected.set()

    def _on_subscribe(self, *_: Any) -> None:
        # Ready only at the SUBACK, so nothing published right after is missed.
        self.subscriptions += 1
        self.connected.set()

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain), time.time()))

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _, _ in self.messages if t == topic]

    def json_on(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(p) for p in self.on(topic) if p]

    def wait_for(self, pred: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return
            time.sleep(0.01)
        raise AssertionError(f"timed out waiting for {what or pred}")

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def pump(step: Callable[[], None], pred: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Call `step` until `pred` holds (real time bounded by `timeout`, a generous margin for a loaded machine)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        step()
        if pred():
            return
        time.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what or pred}")
