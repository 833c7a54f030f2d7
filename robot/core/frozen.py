"""A faster __init__ for the frozen, slotted dataclasses made every control step (snapshot, decision, ...)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")

_NO_VALUE: Any = object()  # a default factory's marker: the caller gave no value


def quick_init(cls: type[T]) -> type[T]:
    """Give a frozen dataclass with slots an __init__ that stores each field through its slot's descriptor
    (from eight fields on: as an unfrozen twin of the same slots, then turned back into the class).

    Same signature, defaults and default factories as the one dataclasses writes, and the instance stays
    frozen; dataclasses' own stores through object.__setattr__, which costs about twice as much per field,
    and some of these are made several times a step. Apply it on top of @dataclass(frozen=True, slots=True).
    """
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"quick_init: {cls.__name__} is not a frozen dataclass with slots")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"quick_init: {cls.__name__} has __post_init__, which this __init__ would skip")
    # Two __class__ assignments pay off from about eight fields (timeit: NavState's 35 in 40 % of the time).
    twin = _unfrozen_twin(cls) if len(dataclasses.fields(cls)) >= 8 else None  # type: ignore[arg-type]
    ns: dict[str, Any] = {
        "_NO_VALUE": _NO_VALUE,
        "_cls": cls,
        "_twin": twin,
        "_set_class": object.__setattr__,
    }
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
        if twin is None:
            body.append(f"    _set_{f.name}(self, {value})")
        else:
            body.append(f"    self.{f.name} = {value}")
    if twin is not None and body:
        # Stored as the unfrozen twin (a plain slot store, which the interpreter specialises), then made this
        # class again: the same slots, so the same object, frozen from here on.
        body = ["    _set_class(self, '__class__', _twin)", *body, "    self.__class__ = _cls"]
    source = f"def __init__(self, {', '.join(args)}):\n" + "\n".join(body or ["    pass"]) + "\n"
    exec(source, ns)  # how dataclasses itself writes __init__: from the fields, never from input
    init = ns["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


def _unfrozen_twin(cls: type) -> type | None:
    """A class with cls's very slots and no __setattr__ of its own, that an instance of cls may be turned into
    and back (__class__ assignment checks the layouts match); None when that does not work for cls."""
    if cls.__bases__ != (object,):
        return None
    twin = type(f"_{cls.__name__}Unfrozen", (object,), {"__slots__": tuple(cls.__slots__)})  # type: ignore[attr-defined]
    try:
        probe: Any = object.__new__(cls)
        object.__setattr__(probe, "__class__", twin)
        probe.__class__ = cls
    except TypeError:
        return None
    return twin
