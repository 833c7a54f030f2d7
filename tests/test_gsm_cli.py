"""`ramudroid sms check|send` against the fake SIM800 on a pty."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest

from robot.gsm.cli import register
from sim.devices.modem import FakeSim800


@pytest.fixture
def fake() -> Iterator[FakeSim800]:
    with FakeSim800() as f:
        yield f


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ramudroid")
    parser.add_argument("--config")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_check_reports_registration_and_signal(fake: FakeSim800, capsys: pytest.CaptureFixture[str]) -> None:
    assert fake.port is not None
    assert _run(["sms", "check", "--port", fake.port]) == 0
    assert "registered, signal 18/31 (-77 dBm)" in capsys.readouterr().out
    fake.set_registered(False)
    assert _run(["sms", "check", "--port", fake.port]) == 2
    assert "not registered, signal unknown" in capsys.readouterr().out


def test_send_normalises_the_number_and_sends(fake: FakeSim800, capsys: pytest.CaptureFixture[str]) -> None:
    assert fake.port is not None
    assert _run(["sms", "send", "098765 43210", "hello from the robot", "--port", fake.port]) == 0
    assert fake.outbox == [("+919876543210", "hello from the robot")]
    assert capsys.readouterr().out == "sent to +919876543210\n"


def test_failures_are_one_clear_line(
    tmp_path: Path, fake: FakeSim800, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(["sms", "check"]) == 1
    assert "hardware.modem = 'none'" in capsys.readouterr().err
    cfg = tmp_path / "robot.toml"
    cfg.write_text('[hardware]\nmodem = "serial"\nmodem_port = "/dev/no-such-modem"\n')
    assert _run(["--config", str(cfg), "sms", "check"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/dev/no-such-modem" in err and "Traceback" not in err
    fake.set_registered(False)
    assert fake.port is not None
    assert _run(["sms", "send", "+919876543210", "x", "--port", fake.port]) == 1
    assert "no network service" in capsys.readouterr().err
