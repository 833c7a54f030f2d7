"""The layers run one way (docs/architecture.md): every module's imports, read from its syntax tree, against the rules.

robot/ never imports the simulator, the dashboard or the composition root; the decision core, the protocol codec and
navigation are pure (stdlib plus named project modules); the dashboard never touches hardware.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ramudroid", "robot", "arduino_bridge", "sim", "web")


@dataclass(frozen=True)
class Forbidden:
    """Modules under `importer` must not import anything under `targets`."""

    importer: str
    targets: tuple[str, ...]
    why: str


@dataclass(frozen=True)
class Pure:
    """Modules under `importer` import only the standard library and the modules under `allowed`."""

    importer: str
    allowed: tuple[str, ...]
    why: str


FORBIDDEN = (
    Forbidden(
        "robot", ("sim", "web", "ramudroid"), "robot/ sits below the composition root, the simulator and web"
    ),
    Forbidden(
        "arduino_bridge", ("sim", "web", "ramudroid"), "the Arduino link sits below the composition root"
    ),
    Forbidden(
        "web",
        ("robot.drivers", "robot.hardware", "arduino_bridge", "sim", "ramudroid"),
        "the dashboard reads a snapshot and sends commands; it never touches hardware",
    ),
    Forbidden(
        "sim", ("web", "ramudroid"), "the simulator stands in for hardware, below the composition root"
    ),
)

PURE = (
    Pure("robot.core", ("robot.core",), "the decision core: no I/O, no clock"),
    Pure(
        "robot.navigation",
        ("robot.navigation", "robot.core", "robot.errors", "robot.hardware.interfaces"),
        "navigation: geometry and planning only",
    ),
    # cobs: the COBS framing library (issue 12, item 3).
    Pure(
        "arduino_bridge.codec",
        ("robot.core", "robot.errors", "cobs"),
        "the protocol codec: bytes in, bytes out",
    ),
)


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def module_name(path: Path, root: Path = ROOT) -> str:
    """robot/core/decide.py -> robot.core.decide; a package's __init__.py -> the package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(module: str, source: str, *, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """(line, imported module) for every import in the source, at any depth (functions, TYPE_CHECKING blocks),
    relative imports resolved, and importlib.import_module("...") with a constant name."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base)
                if node.module:
                    yield node.lineno, f"{prefix}.{node.module}"
                else:  # from . import x: x may be a module
                    for alias in node.names:
                        yield node.lineno, f"{prefix}.{alias.name}"
            elif node.module:
                yield node.lineno, node.module
                for alias in node.names:  # from robot import app
                    yield node.lineno, f"{node.module}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def _is_stdlib(name: str) -> bool:
    return name.split(".")[0] in sys.stdlib_module_names or name == "__future__"


def violations(module: str, source: str, *, is_package: bool = False) -> list[str]:
    """Every rule this module's imports break, one line each."""
    found: list[str] = []
    for line, target in imports_of(module, source, is_package=is_package):
        for rule in FORBIDDEN:
            if _under(module, rule.importer) and any(_under(target, t) for t in rule.targets):
                found.append(f"{module}:{line} imports {target}: {rule.why}")
        for pure in PURE:
            if _under(module, pure.importer) and not (
                _is_stdlib(target) or any(_under(target, a) for a in pure.allowed)
            ):
                found.append(f"{module}:{line} imports {target}: {pure.why}")
    return found


def project_modules() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_every_module_keeps_to_the_layers() -> None:
    found = [
        v
        for path in project_modules()
        for v in violations(
            module_name(path), path.read_text(encoding="utf-8"), is_package=path.name == "__init__.py"
        )
    ]
    assert found == []


def test_the_check_reads_the_whole_project() -> None:
    names = {module_name(p) for p in project_modules()}
    for expected in ("robot.core.decide", "arduino_bridge.codec", "robot.navigation.navigator", "web.app"):
        assert expected in names
    assert "ramudroid.app" in names and "robot.app" not in names  # the composition root moved out of robot/
    assert len(names) > 80


@pytest.mark.parametrize(
    ("module", "source", "fragment"),
    [
        ("robot.supervisor", "from sim.world import World\n", "imports sim.world"),
        ("robot.drivers.gps", "import web.app\n", "imports web.app"),
        (
            "robot.hardware.factory",
            "def f():\n    from ramudroid.app import Robot\n",
            "imports ramudroid.app",
        ),
        ("robot.config", "import importlib\nimportlib.import_module('sim.cli')\n", "imports sim.cli"),
        ("robot.core.decide", "import numpy as np\n", "imports numpy: the decision core"),
        ("robot.core.decide", "from robot.store import Store\n", "imports robot.store: the decision core"),
        ("robot.core.rules", "from ..drivers import gps\n", "imports robot.drivers"),
        ("robot.navigation.geometry", "from robot.drivers.gps import Gps\n", "imports robot.drivers.gps"),
        # Reading and checking the site file (pydantic) lives in robot.site_file, above navigation.
        ("robot.navigation.site", "from pydantic import BaseModel\n", "imports pydantic: navigation"),
        ("robot.navigation.site", "from robot.site_file import load_site\n", "imports robot.site_file"),
        ("robot.navigation.site", "from robot.schema import table\n", "imports robot.schema"),
        ("arduino_bridge.codec", "import serial\n", "imports serial: the protocol codec"),
        ("web.app", "from robot.hardware.factory import build_parts\n", "imports robot.hardware.factory"),
        ("web.routes.camera", "from robot.drivers import camera\n", "imports robot.drivers"),
        ("web.app", "from sim import world\n", "imports sim"),
        ("sim.world", "from web.app import create_app\n", "imports web.app"),
    ],
)
def test_a_forbidden_import_is_caught(module: str, source: str, fragment: str) -> None:
    found = violations(module, source)
    assert found and any(fragment in v for v in found), found


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("robot.core.decide", "import math\nfrom robot.core.types import Inputs\nfrom . import rules\n"),
        ("robot.navigation.site", "import math\nfrom robot.errors import SiteError\n"),
        (
            "robot.site_file",
            "from pydantic import ValidationError\nfrom robot.navigation.site import build_site\n",
        ),
        ("arduino_bridge.codec", "import struct\nfrom cobs import cobs\n"),
        ("ramudroid.app", "from sim.world import World\nfrom web.app import create_app\n"),
        ("web.app", "from robot.telemetry import TelemetryBus\nimport fastapi\n"),
    ],
)
def test_an_allowed_import_passes(module: str, source: str) -> None:
    assert violations(module, source) == []


def test_relative_imports_resolve_from_the_package() -> None:
    src = "from . import rules\nfrom .. import errors\nfrom ..drivers.gps import Gps\n"
    assert [t for _, t in imports_of("robot.core.decide", src)] == [
        "robot.core.rules",
        "robot.errors",
        "robot.drivers.gps",
    ]
    assert [t for _, t in imports_of("robot.core", "from . import rules\n", is_package=True)] == [
        "robot.core.rules"
    ]
