"""The README's two commands. The first, run as written in a clean copy of the repository, creates a venv,
installs the controller into it and runs the simulated robot with its dashboard; the second is .ci/run.

What the run below proves: the line's shell, `python3 -m venv`, pip building and installing this project from a
clean copy (not editable: the firmware sources, the demo site and the dashboard's files must be in the wheel),
the `ramudroid` console script, and `ramudroid run` serving the dashboard from that install, then stopping
cleanly. What it does not: fetching the dependencies from PyPI. To stay offline and fast, `sudo` and `apt-get`
are stand-ins that log (.ci/run installs python3-venv for real), the new venv sees this test venv's packages
through a .pth file, and pip runs without an index, so a missing dependency fails instead of being downloaded.
Two flags are appended to the line: --port (a free port) and --duration.
"""

from __future__ import annotations

import os
import re
import shutil
import site
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
pytestmark = pytest.mark.timeout(300)


def readme_commands() -> list[str]:
    """The commands in the README's "Run it" section, one per line of its sh blocks."""
    text = README.read_text()
    start = text.index("## Run it")
    section = text[start : text.index("\n## ", start)]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_gives_exactly_two_commands_install_and_run_then_test() -> None:
    install_and_run, test = readme_commands()
    assert "python3 -m venv .venv" in install_and_run and ".venv/bin/pip install '.[sim]'" in install_and_run
    assert install_and_run.endswith(" && .venv/bin/ramudroid run")
    assert test == "bash .ci/run"
    assert "http://127.0.0.1:8080/" in README.read_text()


def clean_copy(dest: Path) -> None:
    """The repository as a fresh clone would have it (tracked and new files; nothing ignored: no .venv)."""
    git = shutil.which("git")
    if git is not None and (ROOT / ".git").exists():
        listed = subprocess.run(
            [git, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        for name in filter(None, listed.decode().split("\0")):
            src = ROOT / name
            if src.is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest / name)
    else:
        junk = (
            ".git",
            ".venv",
            "__pycache__",
            "build",
            "*.egg-info",
            ".ruff_cache",
            ".hypothesis",
            ".mypy_cache",
        )
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(*junk), dirs_exist_ok=True)


PYTHON3 = """#!/bin/sh
# python3 for the README line: `python3 -m venv DIR` makes the venv, then lets it see the test venv's packages.
if [ "$1" = -m ] && [ "$2" = venv ]; then
    "$REAL_PYTHON" "$@" || exit $?
    for dir; do :; done
    for sp in "$dir"/lib/python3*/site-packages; do
        printf 'import sys; sys.path.insert(0, "%s")\\n' "$TEST_SITE" >"$sp/_test_venv_packages.pth"
    done
    exit 0
fi
exec "$REAL_PYTHON" "$@"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_readme_first_line_installs_and_runs_the_simulated_robot_with_its_dashboard(tmp_path: Path) -> None:
    line = readme_commands()[0]
    copy = tmp_path / "ramudroid"
    clean_copy(copy)
    assert not (copy / ".venv").exists() and (copy / "pyproject.toml").is_file()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in {
        "sudo": '#!/bin/sh\nexec "$@"\n',
        "apt-get": f'#!/bin/sh\necho "$*" >>"{tmp_path}/apt-get.log"\n',
        "python3": PYTHON3,
    }.items():
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(
        PATH=f"{bin_dir}:{env['PATH']}",
        REAL_PYTHON=sys.executable,  # same Python as the packages the new venv will see
        TEST_SITE=site.getsitepackages()[0],
        PIP_NO_INDEX="1",
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_BUILD_ISOLATION="0",  # pip's inverted switch: build with the packages it sees (no download)
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PYTHONUNBUFFERED="1",
    )
    port = free_port()
    started = time.monotonic()
    proc = subprocess.Popen(
        ["bash", "-c", f"{line} --port {port} --duration 4"],
        cwd=copy,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    output: list[str] = []
    try:
        for out in proc.stdout:
            output.append(out)
            if out.startswith("ramudroid ready"):
                break
        else:
            raise AssertionError(f"exited with {proc.wait()} before it was ready:\n" + "".join(output[-40:]))
        assert out.strip() == f"ramudroid ready (simulator) dashboard on http://127.0.0.1:{port}/"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as page:
            assert page.status == 200 and "<html" in page.read().decode().lower()
        output += proc.stdout.readlines()
        assert proc.wait(timeout=60) == 0, "".join(output[-40:])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (tmp_path / "apt-get.log").read_text() == "install -y python3-venv\n"
    where = subprocess.run(
        [str(copy / ".venv/bin/python"), "-c", "import robot, arduino_bridge.firmware_build as f; "
         "print(robot.__file__); print(f.SKETCH_DIR)"],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.split()  # fmt: skip
    installed = copy / ".venv" / "lib"
    assert Path(where[0]).is_relative_to(installed), where  # the installed copy, not the source tree
    assert (Path(where[1]) / "ramudroid_motor.ino").is_file() and (Path(where[1]) / "pins.h").is_file()
    print(f"README line: venv, install, run and stop in {time.monotonic() - started:.1f} s")


def _table_rows(heading: str) -> list[list[str]]:
    """The cells of every row of the first table after `heading` in the README."""
    text = README.read_text()
    start = text.index(heading)
    rows = []
    for line in text[start:].splitlines():
        if line.startswith("|---"):
            continue
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows[1:]


def test_readme_arduino_wiring_is_pins_h_in_words() -> None:
    pins_h = (ROOT / "arduino_bridge/firmware/ramudroid_motor/pins.h").read_text()
    triples = [tuple(map(int, t)) for t in re.findall(r"\{(\d+), (\d+), (\d+)\}", pins_h)]
    channels = ("drive left", "drive right", "brush left", "brush right", "brush comb")
    want = {pin: f"{ch} {kind}" for ch, pins in zip(channels, triples, strict=True)
            for pin, kind in zip(pins, ("IN1", "IN2", "EN"), strict=True)}  # fmt: skip
    rows = _table_rows("| Arduino pin |")
    got = {}
    for pin, _, role in rows:
        if role:
            number = re.search(r"D(\d+)", pin)
            assert number is not None, pin
            got[int(number.group(1))] = role
    assert got == want


def test_readme_pi_wiring_names_each_pin_with_its_config_key_and_default() -> None:
    from robot.config import Settings

    hw = Settings().hardware
    rows = _table_rows("| Pi header pin |")
    for key in (
        "rain_pin",
        "relay_pin",
        "distance_trigger_pin",
        "distance_echo_pin",
        "scale_dout_pin",
        "scale_sck_pin",
    ):
        gpio = getattr(hw, key)
        assert any(f"GPIO {gpio}" == row[1] and f"`{key}`" in row[3] for row in rows), key
    assert any("GPIO 14" in row[1] and "GPS RX" in row[2] for row in rows)
    assert any("GPIO 12" in row[1] and "SIM800 RXD" in row[2] for row in rows)
