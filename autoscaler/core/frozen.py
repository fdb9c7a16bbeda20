"""`fast_init`: the same constructor as a frozen dataclass's, at less than half its cost.

A frozen dataclass sets each field with `object.__setattr__` (frozen classes refuse plain
assignment), about a tenth of a microsecond per field. Every evaluation builds a dozen of
them (observation, check result, recommendation, memory, decision, evaluation...), and a
replay (`simulate`, `backtest`) makes millions of evaluations: a fifth of a backtest's
time went there. `fast_init` swaps in an `__init__` with the very same signature that
stores the fields in the instance's `__dict__` directly (with `__slots__`, through each
slot's descriptor: a third cheaper than `object.__setattr__`). Everything else the dataclass
generated (eq, hash, repr, immutability, pickling) is untouched, and so are the values
an instance holds, so nothing that reads them can tell the difference.

Only for what it can reproduce exactly: frozen dataclasses without `__post_init__`,
`InitVar`, `init=False` or `default_factory` fields (it raises
`TypeError` at import otherwise). The dataclass's own `__init__` stays reachable as
`__init__.dataclass_init`, which the tests compare it with.

`built(cls)` is that constructor as a plain function (object made, then the same fields
set the same way), for the few places every evaluation passes: a class called with
keywords gathers them into a dict that `__init__` then takes apart, which a function call
does not, so `built(Decision)(...)` costs 0.6 µs where `Decision(...)` costs 1.0 µs.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")


def fast_init(cls: type[T]) -> type[T]:
    """Give the frozen dataclass `cls` a cheaper `__init__` of the same signature."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen:
        raise TypeError(f"{cls.__name__}: fast_init is for frozen dataclasses")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__}: fast_init cannot reproduce __post_init__")
    slotted = "__slots__" in vars(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    namespace: dict[str, Any] = {}
    positional: list[str] = []
    keyword: list[str] = []
    for f in fields:
        if not f.init or f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: fast_init cannot reproduce this field")
        param = f.name
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{f.name}"] = f.default
            param += f"=_default_{f.name}"
        (keyword if f.kw_only else positional).append(param)
    arguments = ", ".join([*positional, *(["*", *keyword] if keyword else [])])
    if slotted:  # each slot's own descriptor, which `object.__setattr__` ends up calling
        for f in fields:
            namespace[f"_set_{f.name}"] = getattr(cls, f.name).__set__
        body = "".join(f"    _set_{f.name}(self, {f.name})\n" for f in fields)
    else:
        body = "    _fast_init_dict = self.__dict__\n" + "".join(
            f"    _fast_init_dict[{f.name!r}] = {f.name}\n" for f in fields
        )
    source = (
        f"def __init__({', '.join(['self', *([arguments] if arguments else [])])}):\n"
        f"{body or '    pass'}\n"
        # The same as a function that makes the instance too (see `built`).
        f"def _build({arguments}):\n    self = __fast_init_new__(__fast_init_cls__)\n{body}"
        "    return self\n"
    )
    # Dunder names, which no field can shadow (a field `_cls` would have).
    namespace["__fast_init_new__"], namespace["__fast_init_cls__"] = object.__new__, cls
    exec(source, namespace)  # noqa: S102 - generated from the field names, as dataclasses does
    init, build = namespace["__init__"], namespace["_build"]
    if _shape(init) != _shape(cls.__init__):  # e.g. an InitVar, which `fields` leaves out
        raise TypeError(f"{cls.__name__}: fast_init would change the constructor's signature")
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    init.dataclass_init = cls.__init__
    build.__qualname__ = f"built({cls.__qualname__})"
    init.build = build
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


def built(cls: Callable[P, T]) -> Callable[P, T]:
    """A function with the signature of the `fast_init` class `cls` that returns what
    `cls(...)` does (see the module docstring); typed as the class's constructor."""
    build: Callable[P, T] | None = getattr(vars(cls).get("__init__"), "build", None)
    if build is None:  # a subclass inherits its parent's, which would build the parent
        raise TypeError(f"built({getattr(cls, '__qualname__', cls)}): not a fast_init class")
    return build


def _shape(function: Any) -> list[tuple[str, Any, Any]]:
    """A signature without annotations: each parameter's name, kind and default."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]
