"""`ramudroid site check FILE`: a summary and exit 0, or one error line and exit 1."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from robot import site_cli as cli


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ramudroid")
    parser.add_argument("--config", default=None)
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_check_prints_the_demo_summary(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["site", "check"]) == 0
    out = capsys.readouterr().out
    assert "route: 3 lane(s)" in out and "m to drive" in out and "m2" in out
    assert "shelter:" in out and "park:" in out and "site OK" in out


def test_check_of_the_bundled_file_by_path(capsys: pytest.CaptureFixture[str]) -> None:
    path = Path(cli.__file__).parent / "navigation" / "sites" / "demo_alley.geojson"
    assert run(["site", "check", str(path)]) == 0
    assert "site 'demo_alley'" in capsys.readouterr().out


def test_check_of_a_bad_file_prints_one_line_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = Path(cli.__file__).parent / "navigation" / "sites" / "demo_alley.geojson"
    data = json.loads(path.read_text(encoding="utf-8"))
    shelter = next(f for f in data["features"] if f["properties"]["role"] == "shelter")
    shelter["geometry"]["coordinates"] = [77.6, 12.98]
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps(data), encoding="utf-8")
    assert run(["site", "check", str(bad)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert "bad.geojson" in lines[0] and "shelter" in lines[0] and "outside the fence" in lines[0]
    assert "Traceback" not in captured.err


def test_check_of_a_missing_file_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["site", "check", str(tmp_path / "nope.geojson")]) == 1
    assert "cannot read it" in capsys.readouterr().err
