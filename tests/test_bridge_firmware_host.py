"""The firmware's C++ protocol core, compiled for the host: the shared vectors, then libFuzzer for a bounded
time."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arduino_bridge.firmware_build import build_host_tool

HERE = Path(__file__).parent
VECTORS = json.loads((HERE / "vectors" / "protocol.json").read_text())
FUZZ_SECONDS = 20


class Runner:
    """The vector_runner program, one command line in, one answer line out."""

    def __init__(self, exe: Path) -> None:
        self.proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(self, line: str) -> str:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed (apt install g++)")
    exe = build_host_tool(
        [HERE / "firmware" / "vector_runner.cpp"],
        tmp_path_factory.mktemp("fw") / "runner",
        flags=("-O1", f"-DRD_BUILD_ID={VECTORS['build_id']}UL"),  # the id the device vectors expect
    )
    r = Runner(exe)
    yield r
    r.close()


def h(data: str) -> str:
    return data or "-"


@pytest.mark.parametrize("case", VECTORS["crc16_ccitt_false"], ids=lambda c: c["data"][:12] or "empty")
def test_cpp_crc16_matches_vectors(runner: Runner, case: dict[str, Any]) -> None:
    assert int(runner.ask(f"C {h(case['data'])}")) == case["crc"]


@pytest.mark.parametrize("case", VECTORS["cobs"], ids=lambda c: c["raw"][:12])
def test_cpp_cobs_matches_vectors(runner: Runner, case: dict[str, str]) -> None:
    assert runner.ask(f"E {case['raw']}") == case["encoded"]
    assert runner.ask(f"D {case['encoded']}") == case["raw"]


def test_cpp_cobs_rejects_a_code_past_the_end(runner: Runner) -> None:
    assert runner.ask("D 090102") == "ERR"


@pytest.mark.parametrize("scenario", VECTORS["device"], ids=lambda s: s["name"])
def test_cpp_device_follows_the_device_vectors(runner: Runner, scenario: dict[str, Any]) -> None:
    assert runner.ask("N") == "OK"
    for i, step in enumerate(scenario["steps"]):
        got = runner.ask(f"F {step['at_ms']} {h(step['rx'])}").split()
        c = step["counters"]
        want = [
            "R",
            h(step["tx"]),
            *(str(v) for p in step["pins"] for v in p),
            str(int(step["session"])),
            str(int(step["tripped"])),
            str(c["crc_errors"]),
            str(c["bad_frames"]),
            str(c["overflows"]),
        ]
        assert got == want, f"{scenario['name']} step {i}"


@pytest.mark.parametrize("case", VECTORS["streams"], ids=lambda c: c["name"])
def test_cpp_stream_outcomes_match_vectors(runner: Runner, case: dict[str, Any]) -> None:
    from arduino_bridge.codec import ErrorReport, FrameReader, decode_message

    runner.ask("N")
    reply = runner.ask(f"F 0 {case['wire']}").split()[1]
    outcomes = []
    for frame in FrameReader().feed(bytes.fromhex(reply) if reply != "-" else b""):
        msg = decode_message(frame)  # type: ignore[arg-type]
        frame_level = isinstance(msg, ErrorReport) and msg.code in (1, 2, 3)
        outcomes.append({1: "crc", 2: "frame", 3: "overflow"}[msg.code] if frame_level else "ok")  # type: ignore[union-attr]
    assert outcomes == case["outcomes"]


def test_libfuzzer_finds_no_crash_and_no_motion_from_garbage(tmp_path: Path) -> None:
    if shutil.which("clang++") is None:
        pytest.skip("clang++ is not installed (apt install clang libclang-rt-14-dev)")
    exe = build_host_tool(
        [HERE / "firmware" / "fuzz_protocol.cpp"],
        tmp_path / "fuzz",
        compiler="clang++",
        flags=("-g", "-O1", "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=undefined"),
    )
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    # Seed with every valid frame, after a byte that selects "session open", so mutations start near real
    # traffic.
    for i, f in enumerate(VECTORS["frames"]):
        (corpus / f"frame{i}").write_bytes(b"\x01" + bytes.fromhex(f["wire"]))
    for i, s in enumerate(VECTORS["device"]):
        (corpus / f"device{i}").write_bytes(b"\x00" + b"".join(bytes.fromhex(st["rx"]) for st in s["steps"]))
    proc = subprocess.run(
        [str(exe), f"-max_total_time={FUZZ_SECONDS}", "-max_len=512", "-print_final_stats=1", str(corpus)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=FUZZ_SECONDS + 60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [line for line in proc.stderr.splitlines() if line.startswith("stat::number_of_executed_units")]
    assert runs and int(runs[0].split(":")[-1]) > 10_000
