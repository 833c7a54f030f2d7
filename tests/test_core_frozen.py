"""quick_init: the faster __init__ of the per-step frozen dataclasses behaves as dataclasses' own."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from robot.core.frozen import quick_init
from robot.core.types import Decision, Guidance, Snapshot
from robot.navigation.navigator import NavState
from robot.telemetry import Telemetry


@dataclasses.dataclass(frozen=True, slots=True)
class Plain:
    a: int
    b: float = 1.5
    c: dict[str, int] = dataclasses.field(default_factory=dict)


@quick_init
@dataclasses.dataclass(frozen=True, slots=True)
class Quick:
    a: int
    b: float = 1.5
    c: dict[str, int] = dataclasses.field(default_factory=dict)


def test_same_signature_values_and_equality_as_the_dataclass_init() -> None:
    assert [p.name for p in inspect.signature(Quick).parameters.values()] == ["a", "b", "c"]
    q, p = Quick(1), Plain(1)
    assert (q.a, q.b, q.c) == (p.a, p.b, p.c)
    assert Quick(2, c={"x": 1}) == Quick(a=2, b=1.5, c={"x": 1})
    assert Quick(1).c is not Quick(1).c  # a fresh dict from the factory each time
    assert dataclasses.replace(Quick(1), b=3.0) == Quick(1, 3.0)


def test_still_frozen_and_rejects_what_the_dataclass_rejects() -> None:
    q = Quick(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        q.a = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        Quick()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Quick(1, d=2)  # type: ignore[call-arg]


def test_refuses_classes_it_would_get_wrong() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(slots=True)
    class NotFrozen:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class PostInit:
        a: int

        def __post_init__(self) -> None:
            pass

    for cls in (NoSlots, NotFrozen, PostInit):
        with pytest.raises(TypeError):
            quick_init(cls)


@pytest.mark.parametrize("cls", [Snapshot, Guidance, Decision, NavState, Telemetry])
def test_hot_types_keep_their_defaults(cls: type) -> None:
    required = {
        f.name: None
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    obj = cls(**required)
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            assert getattr(obj, f.name) == f.default
        elif f.default_factory is not dataclasses.MISSING:
            assert getattr(obj, f.name) == f.default_factory()


@quick_init
@dataclasses.dataclass(frozen=True, slots=True)
class Wide:
    a: int
    b: int = 2
    c: int = 3
    d: int = 4
    e: int = 5
    f: int = 6
    g: int = 7
    h: list[int] = dataclasses.field(default_factory=list, hash=False)


@pytest.mark.parametrize("cls", [Wide, Snapshot, Guidance, Decision, NavState, Telemetry])
def test_wide_classes_built_through_their_twin_are_the_class_and_frozen(cls: type) -> None:
    required = {
        f.name: None
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    obj = cls(**required)
    assert type(obj) is cls
    name = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, name, 1)
    assert obj == dataclasses.replace(obj)


def test_a_wide_class_takes_the_same_arguments_as_the_dataclass_init() -> None:
    w = Wide(1, 9, h=[1])
    assert [getattr(w, f.name) for f in dataclasses.fields(Wide)] == [1, 9, 3, 4, 5, 6, 7, [1]]
    assert Wide(1).h is not Wide(1).h
    with pytest.raises(TypeError):
        Wide()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Wide(1, z=2)  # type: ignore[call-arg]
