"""The core builds CoreState and Situation positionally: every value must stand at its field's place."""

from __future__ import annotations

import ast
from pathlib import Path

from robot.core import decide
from robot.core.decide import CoreState, Situation

# Where the value's expression is not simply the field's name.
RENAMED = {
    "CoreState": {"state": "rule.state", "load_w": "load_next"},
    "Situation": {"mode": "mode.value", "inside_fence": "inside"},
}


def _positional_builds() -> dict[str, list[str]]:
    """The expressions of each `_make(Cls, (...))` in decide.py, by class name."""
    tree = ast.parse(Path(decide.__file__).read_text(encoding="utf-8"))
    found: dict[str, list[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_make":
            cls, values = node.args
            assert isinstance(cls, ast.Name) and isinstance(values, ast.Tuple)
            found[cls.id] = [ast.unparse(v) for v in values.elts]
    return found


def test_every_positional_value_stands_at_its_fields_place() -> None:
    builds = _positional_builds()
    assert set(builds) == {"CoreState", "Situation"}
    for cls in (CoreState, Situation):
        renamed = RENAMED[cls.__name__]
        expected = [renamed.get(f, f) for f in cls._fields]
        assert builds[cls.__name__] == expected, cls.__name__


def test_positional_build_equals_the_keyword_one() -> None:
    values = tuple(range(len(CoreState._fields)))
    made = decide._make(CoreState, values)
    assert type(made) is CoreState
    assert made == CoreState(**dict(zip(CoreState._fields, values, strict=True)))
