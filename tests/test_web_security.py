"""The dashboard as an attacker meets it: login, cookies, Host and Origin, content types, malformed input, the
driving lease, rate limits, and the e-stop that needs no login but does nothing else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from robot.alerts import AlertOutbox
from robot.commands import CommandQueue, EmergencyStop
from robot.config import from_dict
from robot.core.types import CommandKind
from robot.errors import ConfigError
from robot.passwords import hash_password, parse_hash, verify_password
from robot.store import Store
from robot.telemetry import TelemetryBus
from web.app import create_app

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PASSWORD = "street-sweeper-42"
HASH = hash_password(PASSWORD, n=2**10)  # cheap parameters: the tests check the logic, not scrypt's cost
BASE = "http://127.0.0.1:8080"
ORIGIN = {"Origin": BASE}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Site:
    """An app with a login, a store for the e-stop latch and hand-moved clocks."""

    def __init__(self, **kw: Any) -> None:
        self.clock = Clock()
        self.real = Clock()
        self.queue = CommandQueue()
        self.store = Store(":memory:")
        self.outbox = AlertOutbox(store=self.store)
        kw.setdefault("password_hash", HASH)
        self.app = create_app(
            TelemetryBus(),
            self.queue,
            outbox=self.outbox,
            clock=self.clock,
            real_clock=self.real,
            estop=EmergencyStop(self.queue, self.store, self.clock),
            session_s=600.0,
            **kw,
        )
        self.client = TestClient(self.app, base_url=BASE)

    def fresh(self) -> TestClient:
        """Another browser (its own cookie jar)."""
        return TestClient(self.app, base_url=BASE)

    def login(self, client: TestClient | None = None, password: str = PASSWORD) -> Any:
        c = client or self.client
        return c.post("/api/login", json={"password": password}, headers=ORIGIN)

    @property
    def counters(self) -> dict[str, int]:
        return self.app.state.counters.as_dict()


@pytest.fixture
def site() -> Site:
    return Site()


# ---- passwords and `ramudroid passwd` ----------------------------------------------------------------------


def test_password_hashes_are_salted_scrypt_and_verify() -> None:
    a, b = hash_password(PASSWORD, n=2**10), hash_password(PASSWORD, n=2**10)
    assert a != b and a.startswith("scrypt$1024$8$1$")
    assert verify_password(PASSWORD, a) and not verify_password(PASSWORD + "x", a)
    assert not verify_password(PASSWORD, "plain-text-password")  # never compared as text
    with pytest.raises(ValueError, match="at least 8"):
        hash_password("short")
    with pytest.raises(ValueError, match="out of range"):
        parse_hash("scrypt$1048577$8$1$" + a.split("$", 4)[4])


def test_ramudroid_passwd_prints_a_line_the_config_accepts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import io

    from ramudroid.cli import main

    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert main(["passwd", "--stdin"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith('password_hash = "scrypt$')
    cfg = tmp_path / "r.toml"
    cfg.write_text(f'[web]\nhost = "0.0.0.0"\n{line}\n')
    assert main(["config", "check", str(cfg)]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["passwd", "--stdin"]) == 2


# ---- binding beyond loopback ---------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.4.1", "::", "robot.local"])
def test_listening_beyond_this_machine_without_a_login_is_refused_naming_the_key(host: str) -> None:
    with pytest.raises(ConfigError, match=r"web\.password_hash"):
        from_dict({"web": {"host": host}})
    from_dict({"web": {"host": host, "password_hash": HASH}})
    for loopback in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        from_dict({"web": {"host": loopback}})


def test_a_malformed_password_hash_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"web\.password_hash: .*ramudroid passwd"):
        from_dict({"web": {"password_hash": "hunter2"}})


def test_run_refuses_to_serve_an_open_dashboard_on_the_network(tmp_path: Path) -> None:
    import asyncio
    from dataclasses import replace

    from ramudroid.app import run_async
    from robot.config import Settings
    from robot.errors import DashboardError

    s = Settings()
    s = replace(
        s,
        robot=replace(s.robot, state_dir=str(tmp_path)),
        web=replace(s.web, host="0.0.0.0", estop_port=0),  # built in code: the config check never saw it
    )
    with pytest.raises(DashboardError, match=r"web\.password_hash"):
        asyncio.run(run_async(s, duration_s=0.1))


# ---- login, session cookie, expiry, rate limit -----------------------------------------------------------------


def test_everything_but_stop_and_the_login_needs_the_password(site: Site) -> None:
    for path in ("/api/status", "/api/events", "/api/alerts", "/api/site", "/api/camera.jpg"):
        assert site.client.get(path).status_code == 401, path
    r = site.client.post("/api/command", json={"kind": "set_mode", "mode": "auto"}, headers=ORIGIN)
    assert r.status_code == 401 and "log in" in r.json()["error"]
    assert site.client.get("/healthz").json() == {"ok": True}  # alive, nothing more
    assert site.client.get("/").status_code == 200  # the page (with its login form and STOP)
    assert site.client.post("/api/estop", headers=ORIGIN).status_code == 202
    assert [c.kind for c in site.queue.drain()] == [CommandKind.ESTOP]


def test_login_sets_an_httponly_samesite_strict_expiring_cookie(site: Site) -> None:
    r = site.login()
    assert r.status_code == 200
    cookie = r.headers["set-cookie"]
    assert "ramudroid_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Max-Age=600" in cookie and "Path=/" in cookie
    assert site.client.get("/api/session").json()["logged_in"] is True
    r = site.client.post("/api/command", json={"kind": "set_mode", "mode": "auto"}, headers=ORIGIN)
    assert r.status_code == 202
    site.real.now += 601.0  # the session has expired
    assert site.client.get("/api/alerts").status_code == 401
    site.login()
    assert site.client.post("/api/logout", headers=ORIGIN).status_code == 200
    assert site.client.get("/api/alerts").status_code == 401


def test_wrong_passwords_are_rate_limited_and_alert(site: Site) -> None:
    for _ in range(5):
        assert site.login(password="guess").status_code == 401
    r = site.login()  # even the right one waits now
    assert r.status_code == 429 and "try again in" in r.json()["error"] and "retry-after" in r.headers
    assert any(a.kind == "login_lockout" for a in site.outbox.recent(5))
    assert site.store.alerts_for_sms()  # stored, so it goes out by SMS too
    site.real.now += 301.0
    assert site.login().status_code == 200
    assert site.counters["logins_failed"] == 5 and site.counters["logins_refused"] == 1


def test_a_stolen_cookie_value_must_be_exact(site: Site) -> None:
    site.login()
    stranger = site.fresh()
    stranger.cookies.set("ramudroid_session", "A" * 43)
    assert stranger.get("/api/status").status_code == 401


# ---- Host, Origin, content type ----------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example.com", "evil.example.com:8080", "", "127.0.0.1.evil.com"])
def test_a_host_that_is_not_the_robot_is_refused(site: Site, host: str) -> None:
    r = site.client.get("/", headers={"Host": host})
    assert r.status_code == 421
    assert site.client.post("/api/estop", headers={"Host": host}).status_code == 421
    assert site.queue.drain() == ()


def test_another_sites_page_can_neither_drive_nor_stop_nor_log_in(site: Site) -> None:
    site.login()
    evil = {"Origin": "http://evil.example.com"}
    for path, body in (
        ("/api/command", {"kind": "set_mode", "mode": "manual"}),
        ("/api/command", {"kind": "estop"}),
        ("/api/estop", None),
        ("/api/login", {"password": PASSWORD}),
    ):
        r = site.client.post(path, json=body, headers=evil)
        assert r.status_code == 403, path
    assert site.client.post("/api/estop", headers={"Origin": "null"}).status_code == 403
    assert site.queue.drain() == ()
    same = site.client.post("/api/command", json={"kind": "reset"}, headers=ORIGIN)
    assert same.status_code == 202  # the dashboard's own page is fine; so is a script without Origin
    assert site.client.post("/api/command", json={"kind": "reset"}).status_code == 202


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_commands_must_be_json(site: Site, content_type: str | None) -> None:
    site.login()
    headers = {**ORIGIN, **({"Content-Type": content_type} if content_type else {})}
    r = site.client.post("/api/command", content='{"kind": "reset"}', headers=headers)
    assert r.status_code == 415 and "application/json" in r.json()["error"]
    assert site.queue.drain() == ()


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"kind": ' * 3000 + '"estop"' + "}" * 3000,
        '{"kind": "drive", "left": ' + "[" * 5000 + "]" * 5000 + ', "right": 0}',
        b"\xff\xfe\x00garbage",
        '{"kind": "estop"',
    ],
)
def test_malformed_json_is_a_clear_error_never_a_500(site: Site, body: str | bytes) -> None:
    site.login()
    headers = {**ORIGIN, "Content-Type": "application/json"}
    for path in ("/api/command", "/api/login"):
        r = site.client.post(path, content=body, headers=headers)
        assert r.status_code in (413, 422), (path, r.status_code, r.text[:200])
        assert "error" in r.json() and "Traceback" not in r.text
    assert site.queue.drain() == ()


# ---- the e-stop: no login, nothing but a stop, saved before the answer ----------------------------------------


def test_estop_without_login_latches_on_disk_before_answering_and_does_nothing_else(site: Site) -> None:
    r = site.client.post(
        "/api/estop", content=json.dumps({"kind": "reset", "mode": "auto"}), headers=ORIGIN
    )  # whatever the body says
    assert r.status_code == 202 and r.json()["persisted"] is True
    assert site.store.estop_latched and site.store.estop_source == "web testclient"
    assert [c.kind for c in site.queue.drain()] == [CommandKind.ESTOP]
    r = site.client.post("/api/command", json={"kind": "estop", "mode": "auto", "left": 1}, headers=ORIGIN)
    assert r.status_code == 202 and [c.kind for c in site.queue.drain()] == [CommandKind.ESTOP]


def test_an_estop_whose_latch_cannot_be_saved_still_stops_and_says_so(site: Site) -> None:
    site.store.close()
    r = site.client.post("/api/estop", headers=ORIGIN)
    assert r.status_code == 202 and r.json()["persisted"] is False and "not saved" in r.json()["warning"]
    assert [c.kind for c in site.queue.drain()] == [CommandKind.ESTOP]


def test_estop_is_never_rate_limited(site: Site) -> None:
    limited = Site(rate_per_s=1.0, burst=2.0)
    codes = [limited.client.get("/").status_code for _ in range(10)]
    assert 429 in codes
    assert all(limited.client.post("/api/estop", headers=ORIGIN).status_code == 202 for _ in range(20))


# ---- one driver at a time --------------------------------------------------------------------------------------


def drive(client: TestClient, tag: str, **body: Any) -> Any:
    body = body or {"kind": "drive", "left": 0.3, "right": 0.3}
    return client.post("/api/command", json=body, headers={**ORIGIN, "X-Ramudroid-Client": tag})


def test_one_driver_at_a_time_others_see_who_and_may_only_stop_or_take_over() -> None:
    open_site = Site(password_hash="")  # loopback without a login: browsers are told apart by their tab id
    c = open_site.client
    assert drive(c, "alice", kind="set_mode", mode="manual").status_code == 202
    assert drive(c, "alice").status_code == 202
    r = drive(c, "bob")
    assert r.status_code == 409
    assert "is driving" in r.json()["error"] and r.json()["driver"]["you"] is False
    for body in ({"kind": "set_mode", "mode": "auto"}, {"kind": "reset"}, {"kind": "tray_emptied"}):
        assert drive(c, "bob", **body).status_code == 409, body
    assert drive(c, "bob", kind="estop").status_code == 202  # STOP is always allowed
    open_site.queue.drain()
    assert drive(c, "bob", kind="take_over").status_code == 202
    took = open_site.queue.drain()
    assert [(x.kind, x.left, x.right) for x in took] == [(CommandKind.DRIVE, 0.0, 0.0)]  # braked on hand-over
    assert drive(c, "bob").status_code == 202
    assert drive(c, "alice").status_code == 409  # alice sees bob now
    lease = open_site.app.state.lease.current()
    assert lease is not None and lease.holder == "client:bob"
    open_site.clock.now += 16.0  # bob let go long ago: the lease lapsed
    assert drive(c, "alice").status_code == 202


def test_logged_in_operators_are_told_apart_by_session(site: Site) -> None:
    other = site.fresh()
    site.login()
    site.login(other)
    assert drive(site.client, "x", kind="set_mode", mode="manual").status_code == 202
    r = drive(other, "x")  # the tab id is ignored with a login: the session decides
    assert r.status_code == 409 and r.json()["driver"]["label"].startswith("operator ")
