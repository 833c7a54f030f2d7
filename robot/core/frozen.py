"""A faster __init__ for the frozen, slotted dataclasses made every control step (snapshot, decision, ...)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

_NO_VALUE: Any = object()  # a default factory's marker: the caller gave no value


def quick_init(cls: type[T]) -> type[T]:
    """Give a frozen dataclass with slots an __init__ that stores each field through its slot's descriptor.

    Same signature, defaults and default factories as the one dataclasses writes, and the instance stays
    frozen; dataclasses' own stores through object.__setattr__, which costs about twice as much per field,
    and some of these are made several times a step. Apply it on top of @dataclass(frozen=True, slots=True).
    """
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"quick_init: {cls.__name__} is not a frozen dataclass with slots")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"quick_init: {cls.__name__} has __post_init__, which this __init__ would skip")
    ns: dict[str, Any] = {"_NO_VALUE": _NO_VALUE}
    args: list[str] = []
    body: list[str] = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init or f.kw_only:
            raise TypeError(f"quick_init: {cls.__name__}.{f.name} is init=False or keyword-only")
        ns[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        value = f.name
        if f.default is not dataclasses.MISSING:
            ns[f"_default_{f.name}"] = f.default
            args.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            ns[f"_factory_{f.name}"] = f.default_factory
            args.append(f"{f.name}=_NO_VALUE")
            value = f"_factory_{f.name}() if {f.name} is _NO_VALUE else {f.name}"
        else:
            args.append(f.name)
        body.append(f"    _set_{f.name}(self, {value})")
    source = f"def __init__(self, {', '.join(args)}):\n" + "\n".join(body or ["    pass"]) + "\n"
    exec(source, ns)  # how dataclasses itself writes __init__: from the fields, never from input
    init = ns["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
