"""Malformed input never crashes and never shows a traceback: config files, state files, and (in
test_web_security.py) deeply nested JSON on the dashboard."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Rig

from ramudroid.cli import main
from robot.config import load
from robot.drivers.scale import CALIBRATION_FILE, load_calibration
from robot.errors import ConfigError
from robot.navigation import NavState
from robot.supervisor import PROGRESS_FILE

GARBAGE = {
    "deeply nested": "[" * 200_000 + "]" * 200_000,
    "a list": "[1, 2, 3]",
    "not utf-8": b"\xff\xfe\x00\x81garbage",
    "wrong types": '{"progress_m": "far", "offset": [], "counts_per_kg": {}}',
    "empty": "",
    "half written": '{"progress_m": 12.',
}


def _write(path: Path, content: str | bytes) -> None:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b'[robot]\nname = "r\xe9"\n', "not UTF-8 text (byte 0xe9"),
        (b"\xff\xfe[\x00r\x00", "not UTF-8 text (byte 0xff at offset 0)"),
        ("x = " + "[" * 100_000 + "]" * 100_000, "config file"),
        ("[robot]\nname = ", "not valid TOML"),
    ],
)
def test_a_malformed_config_file_is_one_clear_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | bytes, fragment: str
) -> None:
    cfg = tmp_path / "robot.toml"
    _write(cfg, content)
    with pytest.raises(ConfigError, match="config file"):
        load(cfg)
    assert main(["config", "check", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("name", list(GARBAGE))
def test_a_damaged_route_progress_file_restarts_the_route_and_the_robot_runs(
    make_rig: Callable[..., Rig], tmp_path: Path, name: str
) -> None:
    from robot.supervisor import Supervisor

    _write(tmp_path / PROGRESS_FILE, GARBAGE[name])
    rig = make_rig()
    sup = Supervisor(
        rig.sup.settings,
        rig.parts,
        rig.link,
        site=rig.sup.site,
        outbox=rig.outbox,
        commands=rig.commands,
        telemetry=rig.telemetry,
        state_dir=tmp_path,
    )
    assert sup.nav == NavState()
    sup.poll_parts(0.0)
    sup.step(0.0)
    sup.close()  # and it writes a good file again
    assert (tmp_path / PROGRESS_FILE).read_text().startswith("{")


@pytest.mark.parametrize("name", list(GARBAGE))
def test_a_damaged_scale_calibration_is_no_calibration(tmp_path: Path, name: str) -> None:
    _write(tmp_path / CALIBRATION_FILE, GARBAGE[name])
    assert load_calibration(tmp_path) is None
