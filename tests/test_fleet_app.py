"""The fleet page's server: what it believes from the broker, and what it lets a browser send."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ramudroid.cli import main
from robot.core.types import CommandKind, Mode
from robot.errors import MqttError
from robot.mqtt.auth import CommandAuth, Outcome, derive_key
from web.fleet import FleetView, check_password_hash, create_fleet_app, hash_password, verify_password

MASTER = "m" * 48
PASSWORD = "correct horse battery"
HASH = hash_password(PASSWORD)
NOW = 1_700_000_000.0


def state(**over: Any) -> bytes:
    base = {"robot": "r1", "wall": NOW, "state": "cleaning", "mode": "auto", "reason": "on route",
            "battery_pct": 80, "tray_pct": 25, "latitude": 12.97, "longitude": 77.59}  # fmt: skip
    return json.dumps({**base, **over}).encode()


def view() -> FleetView:
    return FleetView("ramudroid", stale_s=10.0, wall=lambda: NOW + 1.0)


def test_the_view_keeps_each_robots_state_status_alerts_and_results() -> None:
    v = view()
    assert v.handle("ramudroid/r1/status", b"online")
    assert v.handle("ramudroid/r1/state", state())
    alert = json.dumps({"robot": "r1", "id": "b-1", "kind": "tray_full", "severity": "warning",
                        "message": "tray full", "wall": NOW}).encode()  # fmt: skip
    assert v.handle("ramudroid/r1/alerts", alert) and v.handle(
        "ramudroid/r1/alert", alert
    )  # the retained copy
    assert v.handle("ramudroid/r1/cmd/result", b'{"nonce":"abc","ok":true,"outcome":"accepted","detail":""}')
    assert v.handle("ramudroid/r2/status", b"offline")
    snap = v.snapshot()
    r1, r2 = snap["robots"]
    assert r1["name"] == "r1" and not r1["stale"] and r1["state"]["battery_pct"] == 80
    assert [a["kind"] for a in r1["alerts"]] == ["tray_full"] and snap["counters"]["duplicates"] == 1
    assert r1["result"]["outcome"] == "accepted"
    assert r2["status"] == "offline" and r2["stale"] and r2["state"] is None
    assert [a["robot"] for a in snap["alerts"]] == ["r1"]


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("ramudroid/r1/state", b"not json"),
        ("ramudroid/r1/state", b"[1,2]"),
        ("ramudroid/r1/state", b'{"battery_pct": 50}'),  # no state
        ("ramudroid/r1/state", b"x" * 10000),
        ("ramudroid/r1/status", b"maybe"),
        ("ramudroid/r1/alerts", b'{"kind": "x"}'),  # no id
        ("ramudroid/r1/cmd", b'{"kind":"estop"}'),  # not something a robot publishes
        ("ramudroid/_all/state", state()),
        ("ramudroid/a+b/state", state()),
        ("other/r1/state", state()),
    ],
)
def test_the_view_rejects_and_counts_what_a_robot_would_not_send(topic: str, payload: bytes) -> None:
    v = view()
    assert not v.handle(topic, payload)
    assert v.counters["rejected"] == 1 and all(r["state"] is None for r in v.snapshot()["robots"])


def test_the_view_drops_wrongly_typed_fields_and_caps_the_number_of_robots() -> None:
    v = FleetView(max_robots=2, wall=lambda: NOW)
    assert v.handle("ramudroid/r1/state", state(battery_pct="full", reason="x" * 500, latitude=float("nan")))
    s = v.snapshot()["robots"][0]["state"]
    assert "battery_pct" not in s and len(s["reason"]) == 200 and "latitude" not in s
    assert v.handle("ramudroid/r2/state", state())
    assert not v.handle("ramudroid/r3/state", state())


class Sent:
    def __init__(self, ok: bool = True) -> None:
        self.ok = ok
        self.messages: list[tuple[str, bytes]] = []

    def __call__(self, messages: list[tuple[str, bytes]]) -> list[bool]:
        self.messages += messages
        return [self.ok] * len(messages)


def client(sent: Sent, **kw: Any) -> TestClient:
    v = view()
    v.handle("ramudroid/r1/state", state())
    v.handle("ramudroid/r2/state", state(robot="r2"))
    app = create_fleet_app(v, sent, **{"password_hash": HASH, "master_key": MASTER, **kw})
    return TestClient(app, base_url="http://fleet.local")


def test_stop_all_and_stop_one_need_no_login_and_send_only_a_stop() -> None:
    sent = Sent()
    c = client(sent)
    r = c.post("/api/estop", json={"kind": "set_mode", "mode": "auto"})  # whatever the body says
    assert r.status_code == 200 and r.json()["sent"] == ["_all", "r1", "r2"]
    assert [t for t, _ in sent.messages] == ["ramudroid/_all/cmd", "ramudroid/r1/cmd", "ramudroid/r2/cmd"]
    assert {p for _, p in sent.messages} == {b'{"kind":"estop"}'}
    assert c.post("/api/robots/r2/estop").json()["sent"] == ["r2"]
    assert c.post("/api/robots/a+b/estop").status_code == 404


def test_a_stop_the_broker_did_not_take_is_reported_as_not_sent() -> None:
    r = client(Sent(ok=False)).post("/api/estop")
    assert r.status_code == 503 and "did NOT go out" in r.json()["error"]


def test_commands_need_a_login_and_go_out_signed_with_the_robots_own_key() -> None:
    sent = Sent()
    c = client(sent)
    body = {"kind": "set_mode", "mode": "paused"}
    assert c.post("/api/robots/r1/command", json=body).status_code == 401
    assert c.post("/api/login", json={"password": "wrong"}).status_code == 401
    r = c.post("/api/login", json={"password": PASSWORD})
    assert r.status_code == 200 and "httponly" in r.headers["set-cookie"].lower()
    assert "samesite=strict" in r.headers["set-cookie"].lower()
    assert c.get("/api/fleet").json()["logged_in"]
    r = c.post("/api/robots/r1/command", json=body)
    assert r.status_code == 202
    topic, payload = sent.messages[-1]
    assert topic == "ramudroid/r1/cmd"
    v = CommandAuth(derive_key(MASTER, "r1"), "r1").check(payload, wall=time.time(), at=0.0)
    assert v.outcome is Outcome.ACCEPTED and v.nonce == r.json()["nonce"]
    assert v.command is not None and v.command.kind is CommandKind.SET_MODE and v.command.mode is Mode.PAUSED
    # Another robot's key does not verify it: keys are per robot.
    assert CommandAuth(derive_key(MASTER, "r2"), "r1").check(payload, wall=time.time(), at=0).outcome is (
        Outcome.BAD_SIGNATURE
    )
    for bad in (
        {"kind": "drive", "left": 1, "right": 1},
        {"kind": "set_mode", "mode": "manual"},
        {"kind": "x"},
    ):
        assert c.post("/api/robots/r1/command", json=bad).status_code == 422
    assert c.post("/api/robots/r1/command", content=b"{" * 2000).status_code == 422
    assert c.post("/api/logout").status_code == 200
    assert c.post("/api/robots/r1/command", json=body).status_code == 401


def test_cross_site_posts_and_password_guessing_are_refused() -> None:
    c = client(Sent())
    evil = {"Origin": "http://evil.example"}
    assert c.post("/api/login", json={"password": PASSWORD}, headers=evil).status_code == 403
    for _ in range(5):
        assert c.post("/api/login", json={"password": "guess"}).status_code == 401
    assert c.post("/api/login", json={"password": PASSWORD}).status_code == 429


def test_without_a_password_hash_or_master_key_the_page_only_stops() -> None:
    sent = Sent()
    c = client(sent, password_hash="")
    assert c.get("/api/fleet").json()["control"] is False
    assert c.post("/api/login", json={"password": PASSWORD}).status_code == 403
    assert c.post("/api/robots/r1/command", json={"kind": "reset"}).status_code == 403
    assert c.post("/api/estop").status_code == 200
    assert client(Sent(), master_key="").get("/api/fleet").json()["control"] is False


def test_the_page_is_served_with_its_config_and_a_strict_policy() -> None:
    r = client(Sent()).get("/")
    assert r.status_code == 200 and '"control": true' in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert client(Sent()).get("/static/fleet.js").status_code == 200
    assert client(Sent()).get("/static/../fleet.py").status_code == 404


def test_password_hashes() -> None:
    assert verify_password(PASSWORD, HASH) and not verify_password("nope", HASH)
    assert not verify_password(PASSWORD, "garbage")
    with pytest.raises(MqttError, match="fleet passwd"):
        check_password_hash("plaintext-password")


def test_cli_prints_a_hash_and_a_robots_command_key(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["fleet", "passwd", "--stdin"]) == 0
    line = capsys.readouterr().out
    assert verify_password(PASSWORD, line.split('"')[1])
    cfg = tmp_path / "fleet.toml"
    cfg.write_text(f'[fleet]\nmaster_key = "{MASTER}"\n')
    assert main(["-c", str(cfg), "mqtt", "key", "r7"]) == 0
    assert derive_key(MASTER, "r7") in capsys.readouterr().out
    assert main(["mqtt", "key", "r7"]) == 2  # no master key: one clear line
    assert "fleet.master_key is empty" in capsys.readouterr().err


def test_with_the_broker_unreachable_the_real_link_reports_the_stop_as_not_sent() -> None:
    from tests.mqtt_broker import free_port
    from web.fleet import FleetLink

    v = view()
    link = FleetLink(v, host="127.0.0.1", port=free_port())  # nothing listens there
    link.start()
    try:
        c = TestClient(create_fleet_app(v, link.publish), base_url="http://fleet.local")
        r = c.post("/api/estop")
        assert r.status_code == 503 and r.json()["failed"] == ["_all"]
        assert c.get("/api/fleet").json()["broker"] is False
    finally:
        link.close()


def test_ramudroid_fleet_serves_the_page_and_stops_on_sigterm(tmp_path: Any) -> None:
    import json as _json
    import os
    import signal
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    from tests.mqtt_broker import free_port

    port = free_port()
    cfg = tmp_path / "fleet.toml"
    cfg.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {free_port()}\n[fleet]\nport = {port}\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "ramudroid.cli", "-c", str(cfg), "fleet"],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(f"ramudroid fleet ready on http://127.0.0.1:{port}/"), line
        assert "control off" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/fleet", timeout=5) as r:
            data = _json.load(r)
        assert data["robots"] == [] and data["broker"] is False and data["control"] is False
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
