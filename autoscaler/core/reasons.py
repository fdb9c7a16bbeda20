"""Reasons whose text is made the first time someone reads it.

`decide` explains every step that shaped its number, and `run` logs and records every
decision; but a replay (`simulate`, `backtest`) makes hundreds of thousands of them and
reads the reasons of only a few (its actions and changes), and formatting numbers into
text and scrubbing it was a sixth of each evaluation. So the core gathers a reason either
as its text or as a *recipe*: a call without arguments that returns the text
(`functools.partial(render, ...)` over values that never change: numbers, names,
durations). `Decision.reasons` and `StrategyResult.reason` hold the recipes until first
read, then render them once and keep the text (`rendered_on_read`): whoever reads them
(logs, plan, API, state, `changes`, plots) gets the very same `str` as before, and the
dataclass's equality, hash, repr, `replace` and pickling all read through it.

Finishing touches that must apply to every text (the engine scrubs secrets from what
leaves it) are attached to the pending reasons with `Pending.then` and applied when they
are rendered, in the order attached, exactly as they would have been applied to the text.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, cast

# A reason as the core gathers it: its text, or a call that makes it.
Part = str | Callable[[], str]

# `later(render, *args)`: the reason `render(*args)` will give, made when first read (a
# `functools.partial`). Typed as the text it stands for, since that is what reading it
# from a decision or a strategy's result gives; within the core it is only ever stored,
# gathered into a decision's reasons or read back through `text`.
later = cast("Callable[..., str]", functools.partial)


def text(part: Part) -> str:
    """The text of one reason."""
    return part if isinstance(part, str) else part()


# The type of what `later` makes.
LATER = functools.partial


class Pending:
    """A decision's reasons not yet rendered: their parts, and what to apply to each text."""

    __slots__ = ("finishers", "parts")

    def __init__(self, parts: Sequence[Part]) -> None:
        self.parts = tuple(parts)  # what the caller's list holds now
        self.finishers: tuple[Callable[[str], str], ...] = ()

    def then(self, finish: Callable[[str], str]) -> None:
        """Apply `finish` to every reason's text when rendered (after those given before)."""
        self.finishers = (*self.finishers, finish)

    def render(self) -> tuple[str, ...]:
        texts = [part if isinstance(part, str) else part() for part in self.parts]
        for finish in self.finishers:
            texts = [finish(t) for t in texts]
        return tuple(texts)


def reasons(parts: Sequence[Part]) -> tuple[str, ...]:
    """The value to store as a `Decision`'s reasons: the texts when every part is one, else
    the parts pending (typed as what reading the field gives: see `rendered_on_read`)."""
    for part in parts:
        if type(part) is not str:
            later_on: tuple[str, ...] = Pending(parts)  # type: ignore[assignment]
            return later_on
    return tuple(parts)  # type: ignore[arg-type]


def pending(value: object) -> Pending | None:
    """`value` (a field as stored, see `rendered_on_read`) when it is still pending."""
    return value if type(value) is Pending else None


class _RenderedOnRead:
    """A slot whose value, when stored pending, is rendered the first time it is read."""

    __slots__ = ("_get", "_pending", "_render", "_set")

    def __init__(self, slot: Any, render: Callable[[Any], Any], pending: type) -> None:
        self._get, self._set = slot.__get__, slot.__set__
        self._render, self._pending = render, pending

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = self._get(obj, owner)
        if type(value) is self._pending:
            value = self._render(value)
            self._set(obj, value)
        return value

    def __set__(self, obj: object, value: Any) -> None:
        self._set(obj, value)

    def stored(self, obj: object) -> Any:
        """The value as stored: rendered or still pending."""
        return self._get(obj, type(obj))


def rendered_on_read(cls: type, name: str, render: Callable[[Any], Any], pending: type) -> Any:
    """Make the slot `name` of the slotted dataclass `cls` render a pending value when read.

    A stored value of type `pending` goes through `render` at the first read and is
    replaced by the result; any other value is read as it is. Install it after
    `fast_init` (whose constructor then stores through the slot itself, at no cost).
    Returns the descriptor (its `stored` reads the value without rendering it).
    """
    slot = vars(cls)[name]
    descriptor = _RenderedOnRead(slot, render, pending)
    setattr(cls, name, descriptor)
    return descriptor
