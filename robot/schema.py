"""File checking with pydantic: strict typed keys with ranges and choices, one clear line for the first mistake.

Shared by the configuration (robot/config.py), the site file (robot/site_file.py) and the simulator's scenarios
(sim/scenario.py), so that every file's mistakes read the same way: `key = value: what is wrong`.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Strict, ValidationError, create_model
from pydantic_core import PydanticCustomError

Path = tuple[str | int, ...]


def _in_range(lo: float | None, hi: float | None, choices: tuple[Any, ...], value: Any) -> Any:
    if choices and value not in choices:
        raise PydanticCustomError("choice", "not one of the choices", {"choices": choices})
    # Written so that NaN (which TOML allows) is out of every range.
    if (lo is not None and not value >= lo) or (hi is not None and not value <= hi):
        raise PydanticCustomError("range", "out of range", {"lo": lo, "hi": hi})
    return value


def checked(typ: Any, lo: float | None = None, hi: float | None = None, choices: tuple[Any, ...] = ()) -> Any:
    """The pydantic type of one key: strict (no "2" for 2, no 1 for true), and its range or choices."""
    if typing.get_origin(typ) is tuple:
        item: Any = checked(typing.get_args(typ)[0])
        return Annotated[tuple[item, ...], Strict(False)]  # a TOML array is a list
    if lo is None and hi is None and not choices:
        return Annotated[typ, Strict()]
    return Annotated[typ, Strict(), AfterValidator(functools.partial(_in_range, lo, hi, choices))]


def number(lo: float, hi: float, *, required: bool = False) -> tuple[Any, Any]:
    """A field for `table`: a number (a whole one is read as a float) between lo and hi."""
    return checked(float, lo, hi), ... if required else None


def whole(lo: int, hi: int, *, required: bool = False) -> tuple[Any, Any]:
    """A field for `table`: a whole number between lo and hi."""
    return checked(int, lo, hi), ... if required else None


def string(choices: tuple[str, ...] = (), *, required: bool = False) -> tuple[Any, Any]:
    """A field for `table`: a string, one of `choices` when given."""
    return checked(str, choices=choices), ... if required else None


def anything(*, required: bool = False) -> tuple[Any, Any]:
    """A field for `table` whose value the caller checks itself (a time of several forms, a free table)."""
    return Any, ... if required else None


def tables(model: type[BaseModel]) -> tuple[Any, Any]:
    """A field for `table`: a list of tables (TOML [[name]] blocks or an inline array of tables)."""
    return typing.cast(Any, list)[model], None


def table(model_name: str, /, **fields: tuple[Any, Any]) -> type[BaseModel]:
    """A model of one table of a file: these keys and no others. Absent keys stay absent: read a checked table
    with `model_dump(exclude_unset=True)` and apply the defaults where the values are used."""
    model: type[BaseModel] = create_model(
        model_name, __config__=ConfigDict(extra="forbid", strict=True), **fields
    )  # type: ignore[call-overload]
    return model


def dotted(path: Path) -> str:
    """("obstacle", 1, "radius_m") -> "obstacle[1].radius_m"."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


_EXPECTED = {
    "float_type": "expected a number",
    "int_type": "expected a whole number",
    "bool_type": "expected true or false",
    "string_type": "expected a quoted string",
}


def _bare(ann: Any) -> Any:
    """The type under Annotated[...] and Optional[...]."""
    while True:
        origin = typing.get_origin(ann)
        if origin is Annotated:
            ann = typing.get_args(ann)[0]
        elif origin is typing.Union:
            ann = next(a for a in typing.get_args(ann) if a is not type(None))
        else:
            return ann


def _is_model(ann: Any) -> bool:
    return isinstance(ann, type) and issubclass(ann, BaseModel)


def _resolve(model: type[BaseModel], loc: Path) -> tuple[type[BaseModel], Any]:
    """(the model holding the last key of loc, the type at loc or None when the key is unknown)."""
    owner: type[BaseModel] = model
    ann: Any = Any
    for i, step in enumerate(loc):
        if isinstance(step, int):
            args = typing.get_args(_bare(ann))
            ann = _bare(args[0]) if args else Any
        elif step in owner.model_fields:
            ann = _bare(owner.model_fields[step].annotation)
        else:
            return owner, None
        if _is_model(ann) and i < len(loc) - 1:
            owner = ann
    return owner, ann


def first_mistake(
    err: ValidationError, data: Any, model: type[BaseModel], *, json: bool = False
) -> tuple[Path, str]:
    """(where, what) for the first mistake in the file's own order (pydantic lists them in the model's).
    `what` follows the key: " = 5: must be between 0 and 1", ": unknown key; known keys here: a, b".
    A JSON file's tables are objects."""

    def order(e: Any) -> list[int]:
        keys, at = [], data
        for step in e["loc"]:
            if isinstance(at, Mapping) and step in at:
                keys.append(list(at).index(step))
                at = at[step]
            elif isinstance(step, int):
                keys.append(step)
                at = at[step] if isinstance(at, list) and step < len(at) else None
        return keys

    e = min(err.errors(), key=order)
    loc: Path = tuple(e["loc"])
    value, kind = e["input"], e["type"]
    if kind == "missing":
        return loc[:-1], f": missing required key {loc[-1]!r}"
    owner, typ = _resolve(model, loc)
    if kind == "extra_forbidden":
        return loc, f": unknown key; known keys here: {', '.join(sorted(owner.model_fields))}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        if json:
            name = "an object"
        else:
            name = "a table" if loc and isinstance(loc[-1], int) else f"a [{dotted(loc)}] table"
        return loc, f" = {value!r}: expected {name}"
    if kind in ("tuple_type", "list_type"):
        args = typing.get_args(typ)
        inner = _bare(args[0]) if args else Any
        what = ("objects" if json else "tables") if _is_model(inner) else getattr(inner, "__name__", "values")
        return loc, f" = {value!r}: expected a list of {what}"
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # shown as the number it was read as
    if kind == "choice":
        return loc, f" = {value!r}: must be one of {', '.join(repr(c) for c in e['ctx']['choices'])}"
    if kind == "range":
        return loc, f" = {value!r}: must be between {e['ctx']['lo']} and {e['ctx']['hi']}"
    return loc, f" = {value!r}: {_EXPECTED.get(kind, e['msg'])}"
