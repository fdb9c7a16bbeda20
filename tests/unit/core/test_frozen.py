"""`fast_init` builds exactly what the frozen dataclass's own constructor builds."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from dataclasses import InitVar, dataclass, field
from typing import Any

import pytest

from autoscaler.core import cooldown, model, run, strategies
from autoscaler.core.frozen import _shape, built, fast_init
from autoscaler.engine import evaluation

SPED_UP = [
    cls
    for module in (model, strategies, run, cooldown, evaluation)
    for cls in vars(module).values()
    if inspect.isclass(cls) and hasattr(cls.__init__, "dataclass_init")
]


def test_the_classes_every_evaluation_builds_are_sped_up() -> None:
    names = {cls.__name__ for cls in SPED_UP}
    assert {"Decision", "CheckResult", "Observation", "Memory", "Evaluation"} <= names


@pytest.mark.parametrize("cls", SPED_UP, ids=lambda cls: cls.__name__)
def test_a_sped_up_constructor_has_the_same_signature_and_sets_the_same_fields(
    cls: type[Any],
) -> None:
    original = cls.__init__.dataclass_init
    shape = [(p.name, p.kind, p.default) for p in inspect.signature(original).parameters.values()]
    assert [
        (p.name, p.kind, p.default) for p in inspect.signature(cls.__init__).parameters.values()
    ] == shape
    fields = dataclasses.fields(cls)
    # Only the required fields, then every field: defaults and given values both come through.
    for given in (
        {f.name for f in fields if f.default is dataclasses.MISSING},
        {f.name for f in fields},
    ):
        values = {name: object() for name in given}
        fast = cls(**values)
        slow = object.__new__(cls)
        original(slow, **values)
        assert [getattr(fast, f.name) for f in fields] == [getattr(slow, f.name) for f in fields]
        assert fast == slow and repr(fast) == repr(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.__setattr__(fields[0].name, 1)


@pytest.mark.parametrize("cls", SPED_UP, ids=lambda cls: cls.__name__)
def test_built_makes_what_the_constructor_makes(cls: type[Any]) -> None:
    build = built(cls)
    # Names, kinds (keyword-only ones stay so) and defaults: the constructor's, bar `self`.
    assert _shape(build) == _shape(cls.__init__)[1:]
    fields = dataclasses.fields(cls)
    for given in (
        {f.name for f in fields if f.default is dataclasses.MISSING},
        {f.name for f in fields},
    ):
        values = {name: object() for name in given}
        made, constructed = build(**values), cls(**values)
        assert type(made) is cls
        assert [getattr(made, f.name) for f in fields] == [
            getattr(constructed, f.name) for f in fields
        ]
        assert made == constructed and repr(made) == repr(constructed)
        assert hasattr(made, "__dict__") == hasattr(constructed, "__dict__")
        if hasattr(made, "__dict__"):
            assert vars(made) == vars(constructed)
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.__setattr__(fields[0].name, 1)
    with pytest.raises(TypeError):
        build(**{f.name: 1 for f in fields}, unknown=1)


def test_built_keeps_positional_fields_positional() -> None:
    @fast_init
    @dataclass(frozen=True)
    class Pair:
        x: int
        y: str = "y"

    assert built(Pair)(1) == Pair(1) and built(Pair)(1, "z") == Pair(1, "z")
    assert built(Pair)(x=2, y="w") == Pair(2, "w")


def test_a_sped_up_instance_pickles_as_before() -> None:
    status = model.TargetStatus(count=3, ready=False, not_ready_reason="refresh")
    assert pickle.loads(pickle.dumps(status)) == status
    assert hash(status) == hash(
        model.TargetStatus(count=3, ready=False, not_ready_reason="refresh")
    )


def test_what_fast_init_cannot_reproduce_is_refused_at_import() -> None:
    @dataclass
    class Mutable:
        x: int

    @dataclass(frozen=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            pass

    @dataclass(frozen=True)
    class Factory:
        x: list[int] = field(default_factory=list)

    @dataclass(frozen=True)
    class Hidden:
        x: int
        y: int = field(default=0, init=False)

    @dataclass(frozen=True)
    class WithInitVar:
        x: int
        scale: InitVar[int] = 1

    for cls in (Mutable, Checked, Factory, Hidden, WithInitVar):
        with pytest.raises(TypeError):
            fast_init(cls)


def test_a_class_with_slots_keeps_them() -> None:
    @fast_init
    @dataclass(frozen=True, kw_only=True, slots=True)
    class Slotted:
        x: int
        y: str = "y"

    made = Slotted(x=1)
    assert (made.x, made.y) == (1, "y")
    assert not hasattr(made, "__dict__")
    assert made == Slotted(x=1, y="y")
    assert hash(made) == hash(Slotted(x=1))
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.__setattr__("x", 2)


def test_built_refuses_a_class_that_only_inherits_a_fast_init_constructor() -> None:
    # It would have built the parent: `type(built(Child)(a=1))` was `Parent`.
    @fast_init
    @dataclasses.dataclass(frozen=True)
    class Parent:
        a: int

    @dataclasses.dataclass(frozen=True)
    class Child(Parent):
        pass

    with pytest.raises(TypeError, match="not a fast_init class"):
        built(Child)


def test_built_takes_fields_named_like_its_own_helpers() -> None:
    # A field `_cls` shadowed the class the function makes (TypeError: object.__new__(X)).
    @fast_init
    @dataclasses.dataclass(frozen=True)
    class Odd:
        _cls: int
        _new: int = 2

    made = built(Odd)(_cls=5)
    assert made == Odd(_cls=5) and type(made) is Odd
