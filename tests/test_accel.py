"""`ramudroid accel`: compiled step modules are used only when fresh, never stale, switch off, and decide alike.

The finder's rules are checked on fake builds (a manifest and empty files: loading one would crash, so a test
that passes never loaded it). The last tests use a real build: RAMUDROID_ACCEL_TEST_DIR (bash .ci/run builds
it before pytest; reused while the sources are unchanged), else a fresh build in the default cache; without
either they skip and say how to make one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ramudroid import accel

ROOT = Path(__file__).resolve().parent.parent


def fake_build(cache: Path, root: Path, *, tamper: str | None = None) -> Path:
    """A build directory whose manifest matches the sources under root (one hash wrong with `tamper`), its
    extension modules empty files."""
    sources = accel.source_hashes(root)
    if tamper is not None:
        sources[tamper] = "0" * 64
    suffix = ".cpython-fake.so"
    files = {name: name.replace(".", "/") + suffix for name in accel.ACCEL_MODULES}
    files[f"{accel.GROUP}__mypyc"] = f"{accel.GROUP}__mypyc{suffix}"
    build_dir = cache / "fake"
    for rel in files.values():
        (build_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (build_dir / rel).write_bytes(b"")
    manifest = {
        "format": accel.MANIFEST_FORMAT,
        "python": accel.python_tag(),
        "mypy": "test",
        "modules": list(accel.ACCEL_MODULES),
        "files": files,
        "sources": sources,
        "built_at": "test",
        "build_s": 0.0,
    }
    (build_dir / accel.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return build_dir


def source_copy(dest: Path) -> Path:
    """The files a build depends on, copied: a tree whose sources a test may change."""
    for rel in accel.source_hashes(ROOT):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / rel, dest / rel)
    return dest


def env_with(**over: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAMUDROID_ACCEL", "RAMUDROID_ACCEL_DIR")}
    env.update({k: v for k, v in over.items() if v is not None})
    return env


def ramudroid(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The console script's path (python -m ramudroid), as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "ramudroid", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cache"
    monkeypatch.setenv("RAMUDROID_ACCEL_DIR", str(path))
    monkeypatch.delenv("RAMUDROID_ACCEL", raising=False)
    return path


def test_the_closure_holds_the_compiled_modules_their_packages_and_what_they_import() -> None:
    closure = accel.source_closure(ROOT)
    assert set(accel.ACCEL_MODULES) <= set(closure)
    # The packages (imported first) and pure modules the compiled code calls into (its types come from them).
    for name in ("robot", "robot.core", "sim", "robot.config", "robot.errors", "sim.scenario"):
        assert name in closure
    assert "web" not in closure and "ramudroid.cli" not in closure


def test_status_says_not_built_when_the_cache_holds_no_build(cache: Path) -> None:
    st = accel.status(ROOT)
    assert st.state == "not built"
    assert "run `ramudroid accel build`" in accel.status_text(st)


def test_a_build_matching_every_source_is_fresh_and_status_lists_its_modules(cache: Path) -> None:
    build_dir = fake_build(cache, ROOT)
    st = accel.status(ROOT)
    assert st.state == "fresh" and st.build_dir == build_dir
    text = accel.status_text(st)
    assert text.startswith("compiled modules: fresh")
    assert f"{len(accel.ACCEL_MODULES)} modules: robot.core.boot, robot.core.decide" in text


def test_changing_any_source_a_build_depends_on_makes_it_stale(cache: Path, tmp_path: Path) -> None:
    copy = source_copy(tmp_path / "src")
    fake_build(cache, copy)
    assert accel.status(copy).state == "fresh"
    # Not a compiled module: a pure one the compiled code imports (its types and constants are compiled in).
    with (copy / "robot/errors.py").open("a", encoding="utf-8") as f:
        f.write("# changed\n")
    st = accel.status(copy)
    assert st.state == "stale"
    assert st.reason == "robot/errors.py changed since the build"
    assert accel.status_text(st).startswith(
        "compiled modules: stale (robot/errors.py changed since the build)"
    )


def test_a_manifest_for_other_sources_or_missing_files_is_stale(cache: Path) -> None:
    fake_build(cache, ROOT, tamper="robot/core/decide.py")
    assert accel.status(ROOT).reason == "robot/core/decide.py changed since the build"
    shutil.rmtree(cache)
    build_dir = fake_build(cache, ROOT)
    (build_dir / "robot/core/decide.cpython-fake.so").unlink()
    assert accel.status(ROOT).state == "stale"


def test_the_console_script_refuses_a_stale_build_in_one_line_and_runs_pure(cache: Path) -> None:
    fake_build(cache, ROOT, tamper="robot/navigation/geometry.py")
    done = ramudroid("sim", "list", env=env_with(RAMUDROID_ACCEL_DIR=str(cache)))
    assert done.returncode == 0, done.stderr
    assert "sunny_day" in done.stdout
    assert done.stderr.splitlines() == [
        "ramudroid: compiled modules are stale (robot/navigation/geometry.py changed since the build): "
        "run `ramudroid accel build`"
    ]


def test_ramudroid_accel_0_never_loads_a_build(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_build(cache, ROOT)  # fresh, but its modules are empty files: loading one would fail the command
    monkeypatch.setenv("RAMUDROID_ACCEL", "0")
    assert accel.status(ROOT).state == "off"
    done = ramudroid("sim", "list", env=env_with(RAMUDROID_ACCEL_DIR=str(cache), RAMUDROID_ACCEL="0"))
    assert done.returncode == 0 and done.stderr == "", done.stderr
    done = ramudroid("accel", "status", env=env_with(RAMUDROID_ACCEL_DIR=str(cache), RAMUDROID_ACCEL="0"))
    assert done.returncode == 1
    assert done.stdout.startswith("compiled modules: off (RAMUDROID_ACCEL=0")


def test_a_build_that_cannot_be_loaded_is_left_alone_in_one_line(cache: Path) -> None:
    fake_build(cache, ROOT)  # fresh by its hashes, but its shared library is an empty file
    done = ramudroid("sim", "list", env=env_with(RAMUDROID_ACCEL_DIR=str(cache)))
    assert done.returncode == 0, done.stderr
    assert "sunny_day" in done.stdout
    [line] = done.stderr.splitlines()
    assert line.startswith("ramudroid: compiled modules cannot be loaded (")
    assert line.endswith("): run `ramudroid accel build --force`")


def test_a_cache_path_that_cannot_be_read_is_left_alone_in_one_line(tmp_path: Path) -> None:
    unusable = tmp_path / ("a" * 300)  # one name longer than the file system allows: ENAMETOOLONG
    done = ramudroid("sim", "list", env=env_with(RAMUDROID_ACCEL_DIR=str(unusable)))
    assert done.returncode == 0, done.stderr
    assert "sunny_day" in done.stdout
    [line] = done.stderr.splitlines()
    assert line.startswith("ramudroid: compiled modules not used: their cache cannot be read (")
    assert line.endswith("): check RAMUDROID_ACCEL_DIR")


def test_the_finder_is_not_installed_once_a_compiled_module_was_imported_pure(cache: Path) -> None:
    fake_build(cache, ROOT)
    assert "robot.core.types" in sys.modules  # this process imported the pure modules (conftest)
    assert accel.activate(quiet=True, root=ROOT) is False
    assert accel.active_finder() is None


# ---- a real build ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_build() -> Path:
    """The cache root holding a fresh build for these sources (see the module's docstring)."""
    given = os.environ.get("RAMUDROID_ACCEL_TEST_DIR")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("RAMUDROID_ACCEL", raising=False)  # conftest switches it off for the other tests' commands
        if given:
            mp.setenv("RAMUDROID_ACCEL_DIR", given)
            accel.build()  # reused when .ci/run made it; about 90 s on 2 cores when not
            return Path(given)
        mp.delenv("RAMUDROID_ACCEL_DIR", raising=False)
        if accel.status(ROOT).state == "fresh":
            return accel.cache_root()
    pytest.skip(
        "no fresh compiled build: run `ramudroid accel build`, or set RAMUDROID_ACCEL_TEST_DIR (bash .ci/run does)"
    )


PROBE = """
import concurrent.futures, sys
from ramudroid import accel

def worker_compiled(name):
    import importlib
    return accel.is_compiled(importlib.import_module(name))

if __name__ == "__main__":
    on = accel.activate()
    import robot.core.decide, sim.run
    with concurrent.futures.ProcessPoolExecutor(1) as pool:  # as `sim batch` makes its workers
        worker = pool.submit(worker_compiled, "robot.navigation.navigator").result()
    print(on, accel.is_compiled(robot.core.decide), accel.is_compiled(sim.run), worker)
"""


def test_a_fresh_build_is_loaded_by_the_process_and_by_batch_workers(
    real_build: Path, tmp_path: Path
) -> None:
    script = tmp_path / "probe.py"
    script.write_text(PROBE, encoding="utf-8")
    env = env_with(RAMUDROID_ACCEL_DIR=str(real_build))
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True", "True", "True"]
    assert done.stderr == ""


@pytest.mark.parametrize(
    ("scenario", "hours"), [("crowded_alley", 0.2), ("link_faults", 0.3), ("sunny_day", 0.2)]
)
def test_compiled_and_pure_make_the_same_report_and_trace(
    real_build: Path, tmp_path: Path, scenario: str, hours: float
) -> None:
    """report.json but wall_s, and the decision trace, byte for byte."""
    out: dict[str, tuple[dict[str, object], bytes]] = {}
    for variant, switch in (("compiled", None), ("pure", "0")):
        env = env_with(RAMUDROID_ACCEL_DIR=str(real_build), RAMUDROID_ACCEL=switch)
        d = tmp_path / variant
        done = ramudroid(
            "sim", "run", scenario, "--hours", str(hours), "--no-plots", "--out", str(d), "--log", str(d / "trace"),
            env=env,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "stale" not in done.stderr
        assert ("step modules: compiled" in done.stdout) == (variant == "compiled"), done.stdout
        report = json.loads((d / "report.json").read_text(encoding="utf-8"))
        report.pop("wall_s")
        out[variant] = (report, (d / "trace").read_bytes())
    assert out["compiled"][0] == out["pure"][0]
    assert out["compiled"][1] == out["pure"][1]
    assert out["pure"][0]["simulated_s"] == pytest.approx(hours * 3600)
