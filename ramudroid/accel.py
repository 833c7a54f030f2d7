"""Compiled hot path, opt in: `ramudroid accel build` compiles the pure step modules with mypyc into a cache
directory; the `ramudroid` command then loads them only while every source file they were built from is unchanged.

The group is all or nothing: either every module of ACCEL_MODULES comes from one build whose recorded source
hashes (the modules and every project module they import, transitively) all match the files on disk, or none
does and the pure modules run, with one line on stderr saying why. Nothing is written into the source tree: the
build works on a copy, and the compiled modules are served from the cache by a `sys.meta_path` finder that the
console script installs before any robot or simulator module is imported. RAMUDROID_ACCEL=0 turns it off;
RAMUDROID_ACCEL_DIR names the cache (default $XDG_CACHE_HOME/ramudroid/accel). Decisions are the same either way
(docs/performance.md); the compiled modules need no runtime library beyond Python's.

This module imports only the standard library: it runs before the rest of the project is imported, at every start
of `ramudroid`, so what only a build needs is imported there.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import sysconfig
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

# The step's hot path, compiled as one mypyc group: the decision core, navigation, the link exchange, the
# supervisor, and the simulator's world, recorder and loop. Packages' __init__ files stay pure.
ACCEL_MODULES = (
    "robot.core.boot",
    "robot.core.decide",
    "robot.core.frozen",
    "robot.core.rules",
    "robot.core.side",
    "robot.core.sun",
    "robot.core.types",
    "robot.navigation.geometry",
    "robot.navigation.navigator",
    "robot.navigation.obstacles",
    "robot.navigation.site",
    "robot.supervisor",
    "arduino_bridge.codec",
    "arduino_bridge.session",
    "arduino_bridge.direct",
    "arduino_bridge.sim_arduino",
    "sim.world",
    "sim.solar",
    "sim.report",
    "sim.run",
)
GROUP = "ramudroid_accel"  # mypyc's shared library: the top-level module GROUP + "__mypyc"
PROJECT_PACKAGES = ("robot", "arduino_bridge", "sim", "ramudroid", "web")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
OFF_VALUES = ("0", "off", "no", "false")
BUILD_COMMAND = "ramudroid accel build"
# mypyc type-checks what it compiles; libraries without type information (cobs, pvlib, ...) are Any to it, as in
# pyproject.toml's [tool.mypy] overrides.
MYPY_CONFIG = "[mypy]\npython_version = 3.11\nignore_missing_imports = True\n"


class AccelError(Exception):
    """A build that cannot run or failed; the message names the missing part and the fix."""


def cache_root() -> Path:
    """Where builds live: RAMUDROID_ACCEL_DIR, else $XDG_CACHE_HOME/ramudroid/accel (~/.cache by default)."""
    given = os.environ.get("RAMUDROID_ACCEL_DIR")
    if given:
        return Path(given).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "ramudroid" / "accel"


def switched_off() -> bool:
    """RAMUDROID_ACCEL=0 (or off/no/false): never load compiled modules."""
    return os.environ.get("RAMUDROID_ACCEL", "").strip().lower() in OFF_VALUES


def source_root() -> Path:
    """The directory holding the project's packages (the checkout, or site-packages), found without importing."""
    spec = importlib.util.find_spec("robot")
    if spec is None or not spec.submodule_search_locations:
        raise AccelError("the robot package is not installed")
    return Path(next(iter(spec.submodule_search_locations))).resolve().parent


def _module_file(root: Path, name: str) -> Path | None:
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, name: str) -> set[str]:
    """The project modules a file imports anywhere (also under TYPE_CHECKING or inside functions)."""
    import ast

    tree = ast.parse(path.read_bytes(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # kept if a submodule
    return {m for m in found if m.split(".")[0] in PROJECT_PACKAGES}


def source_closure(root: Path, modules: Sequence[str] = ACCEL_MODULES) -> dict[str, Path]:
    """Every project module the compiled code depends on: the modules, their packages' __init__ files, and what
    they import, transitively. Module name -> file."""
    out: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name in out:
            continue
        path = _module_file(root, name)
        if path is None:
            if name in modules:
                raise AccelError(f"{name}: no source file under {root}")
            continue  # a name imported from a module, not a module of its own
        out[name] = path
        parts = name.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        todo.extend(_imports(path, name))
    return out


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_hashes(root: Path, modules: Sequence[str] = ACCEL_MODULES) -> dict[str, str]:
    """Relative path -> sha256 of every file in the closure."""
    closure = source_closure(root, modules)
    return {p.relative_to(root).as_posix(): _sha256(p) for p in sorted(closure.values())}


def python_tag() -> str:
    """The interpreter a build is for: its full version string and extension suffix."""
    return f"{sys.version} {sysconfig.get_config_var('EXT_SUFFIX')}"


def build_key(sources: dict[str, str], mypy_version: str, modules: Sequence[str] = ACCEL_MODULES) -> str:
    """The build directory's name: a hash of the sources, the module list, Python and mypy."""
    blob = json.dumps(
        {
            "python": python_tag(),
            "mypy": mypy_version,
            "config": MYPY_CONFIG,
            "modules": list(modules),
            "sources": sources,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


# ---- finding a build ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    """What `ramudroid accel status` reports and what activate() acts on."""

    state: str  # "fresh", "stale", "not built", "off"
    reason: str
    build_dir: Path | None = None
    manifest: dict[str, object] | None = None


def _manifests(root: Path) -> list[tuple[Path, dict[str, object]]]:
    """Every complete build under root (a build directory is renamed into place only once finished)."""
    found: list[tuple[Path, dict[str, object]]] = []
    if not root.is_dir():
        return found
    for child in sorted(root.iterdir()):
        path = child / MANIFEST
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("format") == MANIFEST_FORMAT:
            found.append((child, data))
    return found


def _changed(root: Path, sources: dict[str, str]) -> list[str]:
    """The recorded files whose content differs now (or that are gone)."""
    changed = []
    for rel, digest in sources.items():
        try:
            now = _sha256(root / rel)
        except OSError:
            now = ""
        if now != digest:
            changed.append(rel)
    return changed


def _missing_files(build_dir: Path, files: dict[str, str]) -> list[str]:
    return [rel for rel in files.values() if not (build_dir / rel).is_file()]


def status(root: Path | None = None) -> Status:
    """Whether a fresh build for this interpreter and these sources exists under the cache."""
    if switched_off():
        return Status("off", "RAMUDROID_ACCEL=0: the pure modules run")
    cache = cache_root()
    try:
        src = source_root() if root is None else root
    except AccelError as err:
        return Status("not built", str(err))
    builds = [(d, m) for d, m in _manifests(cache) if m.get("python") == python_tag()]
    if not builds:
        return Status("not built", f"no build for this Python under {cache}")
    stale_reason = ""
    for build_dir, manifest in builds:
        sources = manifest.get("sources")
        files = manifest.get("files")
        if manifest.get("modules") != list(ACCEL_MODULES) or not isinstance(sources, dict):
            stale_reason = stale_reason or "the list of compiled modules changed"
            continue
        changed = _changed(src, sources)
        if changed:
            more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
            stale_reason = stale_reason or f"{changed[0]}{more} changed since the build"
            continue
        if not isinstance(files, dict) or _missing_files(build_dir, files):
            stale_reason = stale_reason or f"{build_dir} is incomplete"
            continue
        return Status("fresh", "every source matches the build", build_dir, manifest)
    return Status("stale", stale_reason)


class CompiledFinder(importlib.abc.MetaPathFinder):
    """Serves exactly the build's modules (and mypyc's shared library) from the build directory."""

    def __init__(self, build_dir: Path, files: dict[str, str]) -> None:
        self.build_dir = build_dir
        self.files = dict(files)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        rel = self.files.get(fullname)
        if rel is None:
            return None
        origin = str(self.build_dir / rel)
        loader = importlib.machinery.ExtensionFileLoader(fullname, origin)
        return importlib.util.spec_from_file_location(fullname, origin, loader=loader)


def active_finder() -> CompiledFinder | None:
    """The installed finder, if any."""
    return next((f for f in sys.meta_path if isinstance(f, CompiledFinder)), None)


def activate(*, quiet: bool = False, root: Path | None = None) -> bool:
    """Install the finder when a fresh build exists (True); otherwise leave the pure modules and, if a build was
    made but is stale, or cannot be used now, say so in one line on stderr. Call before importing the project."""
    if active_finder() is not None:
        return True
    try:
        st = status(root)
    except OSError as err:  # e.g. RAMUDROID_ACCEL_DIR names no usable path: the robot must still start
        if not quiet:
            print(
                f"ramudroid: compiled modules not used: their cache cannot be read ({err}): "
                "check RAMUDROID_ACCEL_DIR",
                file=sys.stderr,
            )
        return False
    if st.state == "stale":
        if not quiet:
            print(
                f"ramudroid: compiled modules are stale ({st.reason}): run `{BUILD_COMMAND}`", file=sys.stderr
            )
        return False
    if st.state != "fresh" or st.build_dir is None or st.manifest is None:
        return False
    files = st.manifest["files"]
    assert isinstance(files, dict)
    loaded = sorted(name for name in files if name in sys.modules)
    if loaded:
        if not quiet:
            print(
                f"ramudroid: compiled modules not used: {loaded[0]} was imported before the finder",
                file=sys.stderr,
            )
        return False
    finder = CompiledFinder(st.build_dir, files)
    sys.meta_path.insert(0, finder)
    try:  # mypyc's shared library: loading it runs none of the modules; a broken build fails here, not later
        importlib.import_module(f"{GROUP}__mypyc")
    except ImportError as err:
        sys.meta_path.remove(finder)
        sys.modules.pop(f"{GROUP}__mypyc", None)
        if not quiet:
            print(
                f"ramudroid: compiled modules cannot be loaded ({err}): run `{BUILD_COMMAND} --force`",
                file=sys.stderr,
            )
        return False
    return True


def is_compiled(module: ModuleType) -> bool:
    """Whether a module was loaded from a compiled extension."""
    spec = getattr(module, "__spec__", None)
    return spec is not None and isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)


def console_main() -> int:
    """The `ramudroid` console script (and `python -m ramudroid`): compiled modules if fresh, then the CLI."""
    activate()
    from ramudroid.cli import main

    return main()


# ---- building -----------------------------------------------------------------------------------------------

_BUILD_SCRIPT = """
import os, sys
from setuptools import setup
from mypyc.build import mypycify
paths, group, c_dir, lib_dir, tmp_dir = sys.argv[1].split(","), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
exts = mypycify(paths, multi_file=True, group_name=group, target_dir=c_dir)
setup(name=group, ext_modules=exts, script_args=["build_ext", "--build-lib", lib_dir, "--build-temp", tmp_dir])
"""


def mypy_version() -> str:
    """The installed mypy's version (mypyc comes with it)."""
    try:
        from mypy.version import __version__
    except ImportError as err:
        raise AccelError("mypy is not installed: `pip install mypy` (mypyc comes with it)") from err
    return str(__version__)


def check_toolchain() -> None:
    """A C compiler and Python's headers, or an error naming the Debian packages."""
    import shutil

    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None and shutil.which("cc") is None:
        raise AccelError(f"no C compiler ({cc}): install gcc (Debian / Raspberry Pi OS: apt install gcc)")
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    if not include.is_file():
        raise AccelError(
            f"{include} not found: install Python's headers (Debian / Raspberry Pi OS: apt install python3-dev)"
        )


@dataclass(frozen=True)
class BuildResult:
    """A finished (or reused) build."""

    build_dir: Path
    reused: bool
    seconds: float


def build(
    *, force: bool = False, log: Path | None = None, announce: Callable[[str], None] | None = None
) -> BuildResult:
    """Compile ACCEL_MODULES from a copy of their sources into cache_root()/<key>; reuse it when present."""
    import shutil
    import subprocess
    import tempfile

    mypy = mypy_version()
    check_toolchain()
    src = source_root()
    closure = source_closure(src)
    sources = {p.relative_to(src).as_posix(): _sha256(p) for p in sorted(closure.values())}
    key = build_key(sources, mypy)
    cache = cache_root()
    final = cache / key
    if (final / MANIFEST).is_file() and not force:
        return BuildResult(final, True, 0.0)
    if announce is not None:
        announce(f"compiling {len(ACCEL_MODULES)} modules with mypyc into {final} (a minute or two)")
    cache.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=".building-", dir=cache))
    try:
        copy = work / "src"
        for rel in sources:
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src / rel, copy / rel)
        (copy / "mypy.ini").write_text(MYPY_CONFIG, encoding="utf-8")
        if _changed(copy, sources):
            raise AccelError("a source file changed while it was copied: run the build again")
        paths = [str(closure[name].relative_to(src)) for name in ACCEL_MODULES]
        lib = work / "lib"
        log_path = log if log is not None else work / "build.log"
        with log_path.open("w", encoding="utf-8") as out:
            proc = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    _BUILD_SCRIPT,
                    ",".join(paths),
                    GROUP,
                    str(work / "c"),
                    str(lib),
                    str(work / "t"),
                ],
                cwd=copy,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "MYPY_CACHE_DIR": str(work / "mypy-cache")},
                check=False,
            )
        if proc.returncode != 0:
            tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
            if log is None:
                kept = cache / "last-failed-build.log"
                shutil.copyfile(log_path, kept)
                log_path = kept
            raise AccelError(f"mypyc failed (exit {proc.returncode}); log: {log_path}\n" + "\n".join(tail))
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        files = {name: name.replace(".", "/") + suffix for name in ACCEL_MODULES}
        files[f"{GROUP}__mypyc"] = f"{GROUP}__mypyc{suffix}"
        missing = _missing_files(lib, files)
        if missing:
            raise AccelError(f"mypyc made no {missing[0]}; log: {log_path}")
        seconds = time.perf_counter() - started
        manifest = {
            "format": MANIFEST_FORMAT,
            "python": python_tag(),
            "mypy": mypy,
            "modules": list(ACCEL_MODULES),
            "files": files,
            "sources": sources,
            "source_root": str(src),
            "built_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "build_s": round(seconds, 1),
        }
        (lib / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        lib.rename(final)  # complete, then in place: a half-made build is never seen
        _prune(cache, keep=final)
        (cache / "last-failed-build.log").unlink(missing_ok=True)
        return BuildResult(final, False, seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _prune(cache: Path, keep: Path) -> None:
    """Remove the other builds for this Python: they are stale once this one exists."""
    import shutil

    for build_dir, manifest in _manifests(cache):
        if build_dir != keep and manifest.get("python") == python_tag():
            shutil.rmtree(build_dir, ignore_errors=True)


# ---- the CLI ------------------------------------------------------------------------------------------------


def status_text(st: Status) -> str:
    """The lines of `ramudroid accel status`."""
    if st.state != "fresh" or st.build_dir is None or st.manifest is None:
        fix = f": run `{BUILD_COMMAND}`" if st.state in ("stale", "not built") else ""
        return f"compiled modules: {st.state} ({st.reason}){fix}\nthe pure modules run (same decisions)"
    m = st.manifest
    modules = m.get("modules")
    names = ", ".join(modules) if isinstance(modules, list) else "?"
    sources = m.get("sources")
    n_src = len(sources) if isinstance(sources, dict) else 0
    return "\n".join(
        (
            f"compiled modules: fresh, used by `ramudroid` ({st.build_dir})",
            f"built {m.get('built_at')} in {m.get('build_s')} s with mypy {m.get('mypy')} "
            f"for Python {sys.version.split()[0]}",
            f"{len(modules) if isinstance(modules, list) else 0} modules: {names}",
            f"checked against {n_src} source files (the modules and what they import)",
        )
    )
