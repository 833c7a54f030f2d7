"""`ramudroid firmware flash` without a board: the avrdude command line it builds, and the probe / skip / upload /
verify logic against the simulated Arduino on a pseudo-terminal. (The probe against the real firmware in simavr
is in test_bridge_avr.py.) avrdude itself never runs here: there is no bootloader to talk to."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from arduino_bridge import flash as flash_mod
from arduino_bridge.codec import ErrorCode, Frame
from arduino_bridge.fake_device import FakeArduino
from arduino_bridge.firmware_build import source_build_id
from arduino_bridge.flash import BoardInfo, avrdude_command, flash, port_users, probe, resolve_port
from arduino_bridge.sim_arduino import SimArduino
from ramudroid.cli import main
from robot.errors import FlashError

pytestmark = pytest.mark.timeout(60)
HAVE_AVR_GCC = shutil.which("avr-g++") is not None
OTHER_BUILD = 0x0BADF00D


@pytest.fixture
def board(tmp_path: Path) -> Iterator[FakeArduino]:
    with FakeArduino(link_dir=tmp_path, name="ramudroid-arduino") as fake:
        yield fake


class AvrdudeStandIn:
    """Records the avrdude command; 'uploads' by re-flashing the fake board with what the HEX was built from."""

    def __init__(self, board: FakeArduino | None, code: int = 0, reflash_with: int | None = None) -> None:
        self.board = board
        self.code = code
        self.reflash_with = reflash_with
        self.commands: list[list[str]] = []

    def __call__(self, cmd: Sequence[str]) -> int:
        self.commands.append(list(cmd))
        hex_file = Path(cmd[-1].removeprefix("flash:w:").removesuffix(":i"))
        assert hex_file.read_text().startswith(":10000000")  # an Intel HEX image from the build
        if self.board is not None and self.code == 0:
            self.board.reflash(self.reflash_with)
        return self.code


def test_avrdude_command_writes_the_hex_through_the_uno_bootloader() -> None:
    assert avrdude_command(Path("/tmp/b/ramudroid_motor.hex"), "/dev/ramudroid-arduino") == [
        "avrdude", "-c", "arduino", "-p", "m328p", "-P", "/dev/ramudroid-arduino", "-b", "115200", "-D",
        "-U", "flash:w:/tmp/b/ramudroid_motor.hex:i",
    ]  # fmt: skip
    assert avrdude_command("f.hex", "/dev/ttyUSB0", baud=57600)[8] == "57600"  # an old Nano bootloader


def test_probe_reads_protocol_firmware_and_build_of_the_board(board: FakeArduino) -> None:
    info = probe(board.path)
    assert info == BoardInfo(board.path, 1, (1, 1, 0), source_build_id())
    assert info.runs(source_build_id()) and not info.runs(OTHER_BUILD)
    assert "firmware 1.1.0, build" in info.describe()


class OldSimArduino(SimArduino):
    """Firmware 1.0.0: no GET_INFO yet, so it answers ERROR TYPE."""

    def _handle(self, item: Frame | Exception) -> bytes:  # type: ignore[override]
        if isinstance(item, Frame) and item.type == 0x05:
            return self._reject(ErrorCode.TYPE, item.seq)
        return super()._handle(item)  # type: ignore[arg-type]


def test_probe_of_firmware_older_than_info_has_no_build_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("arduino_bridge.fake_device.SimArduino", OldSimArduino)
    with FakeArduino(link_dir=tmp_path) as old:
        info = probe(old.path)
    assert info is not None and info.build_id is None and not info.runs(source_build_id())
    assert "without a build id" in info.describe()


def test_probe_of_another_protocol_version(tmp_path: Path) -> None:
    with FakeArduino(link_dir=tmp_path, protocol_version=2) as other:
        info = probe(other.path)
    assert info is not None and info.protocol == 2 and not info.runs(source_build_id())
    assert "protocol 2" in info.describe()


def test_probe_of_a_silent_port_is_none(board: FakeArduino) -> None:
    board.hang()  # a blank board, or another sketch that never answers
    assert probe(board.path, timeout_s=0.6) is None


def test_flash_skips_a_board_that_already_runs_this_build(
    board: FakeArduino, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_build(_out: Path) -> None:
        raise AssertionError("nothing to build when the board runs this build")

    monkeypatch.setattr(flash_mod, "build_firmware", no_build)
    said: list[str] = []
    avrdude = AvrdudeStandIn(board)
    result = flash(board.path, tmp_path / "build", say=said.append, run=avrdude)
    assert result.action == "skipped" and avrdude.commands == []
    assert "nothing to do" in said[-1]


@pytest.mark.skipif(not HAVE_AVR_GCC, reason="needs gcc-avr and arduino-core-avr")
def test_flash_builds_uploads_and_verifies_when_the_board_runs_another_build(tmp_path: Path) -> None:
    with FakeArduino(link_dir=tmp_path, build_id=OTHER_BUILD) as old:
        said: list[str] = []
        avrdude = AvrdudeStandIn(old)
        result = flash(old.path, tmp_path / "build", say=said.append, run=avrdude)
    assert result.action == "flashed"
    assert result.before is not None and result.before.build_id == OTHER_BUILD
    assert result.after is not None and result.after.build_id == source_build_id()
    hex_file = tmp_path / "build" / "ramudroid_motor.hex"
    assert avrdude.commands == [
        avrdude_command(hex_file, old.path, avrdude=shutil.which("avrdude") or "avrdude")
    ]
    assert said[-1] == f"flashed and verified: the board runs build {source_build_id():08x}"


def fake_build(out: Path) -> object:
    """What build_firmware returns, without compiling: a tiny HEX of this build."""
    from arduino_bridge.firmware_build import BuildResult

    out.mkdir(parents=True, exist_ok=True)
    hex_file = out / "ramudroid_motor.hex"
    hex_file.write_text(":100000000C945D000C9494000C9494000C94940057\n:00000001FF\n")
    return BuildResult(out / "ramudroid_motor.elf", hex_file, 16, 0, source_build_id())


@pytest.mark.parametrize(
    ("start", "avrdude", "message"),
    [
        ("same", AvrdudeStandIn(None, code=1), r"avrdude failed \(exit 1\).*--baud 57600"),
        ("other", "keeps-old", r"flashed, but the board now says .* not build"),
        ("silent", "stays-silent", r"flashed, but the board now says no answer"),
    ],
)
def test_flash_fails_clearly_when_the_upload_or_the_new_firmware_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: str, avrdude: object, message: str
) -> None:
    monkeypatch.setattr(flash_mod, "build_firmware", fake_build)
    with FakeArduino(link_dir=tmp_path, build_id=None if start == "same" else OTHER_BUILD) as b:
        if start == "silent":
            b.hang()
        runner = avrdude if isinstance(avrdude, AvrdudeStandIn) else AvrdudeStandIn(None)
        monkeypatch.setattr(flash_mod, "PROBE_S", 0.6)
        with pytest.raises(FlashError, match=message):
            flash(b.path, tmp_path / "build", force=True, say=lambda _: None, run=runner)
        assert len(runner.commands) == 1  # --force uploads even the same build


def test_flash_refuses_a_port_that_another_process_holds_open(board: FakeArduino, tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; f = open(sys.argv[1], 'rb', buffering=0); print(1, flush=True); time.sleep(60)", board.path],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"1"
        assert [(pid, name[:6]) for pid, name in port_users(board.path)] == [(holder.pid, "python")]
        with pytest.raises(FlashError, match=rf"is open in python.*\(pid {holder.pid}\); stop it first"):
            flash(board.path, tmp_path, say=lambda _: None, run=AvrdudeStandIn(board))
    finally:
        holder.kill()
        holder.wait()


def test_resolve_port_names_one_board_or_says_what_to_do(tmp_path: Path) -> None:
    assert resolve_port("socket://127.0.0.1:5000") == "socket://127.0.0.1:5000"
    with pytest.raises(FlashError, match="no such device; is the board plugged in"):
        resolve_port(str(tmp_path / "ramudroid-arduino"))
    with pytest.raises(FlashError, match="matches nothing"):
        resolve_port(str(tmp_path / "ttyACM*"))
    for n in (0, 1):
        (tmp_path / f"ttyACM{n}").touch()
    with pytest.raises(FlashError, match=r"matches .*ttyACM0, .*ttyACM1; name one board with --port"):
        resolve_port(str(tmp_path / "ttyACM*"))
    (tmp_path / "ttyACM1").unlink()
    assert resolve_port(str(tmp_path / "ttyACM*")) == str(tmp_path / "ttyACM0")


def test_firmware_flash_command_uses_the_configured_port(
    board: FakeArduino, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "robot.toml"
    cfg.write_text(f'[hardware]\narduino = "serial"\narduino_port = "{board.path}"\n')
    assert main(["-c", str(cfg), "firmware", "flash"]) == 0
    out = capsys.readouterr().out
    assert f"arduino on {board.path}: protocol 1, firmware 1.1.0, build {source_build_id():08x}" in out
    assert "nothing to do (--force flashes anyway)" in out
    assert main(["-c", str(cfg), "firmware", "flash", "--port", str(tmp_path / "nope")]) == 1
    assert "no such device" in capsys.readouterr().err


def test_build_id_follows_the_sources(tmp_path: Path) -> None:
    from arduino_bridge.firmware_build import SKETCH_DIR

    copy = tmp_path / "ramudroid_motor"
    shutil.copytree(SKETCH_DIR, copy)
    assert source_build_id(copy) == source_build_id()
    pins = copy / "pins.h"
    pins.write_text(pins.read_text().replace("{2, 4, 5}", "{2, 4, 3}"))
    assert source_build_id(copy) != source_build_id()
