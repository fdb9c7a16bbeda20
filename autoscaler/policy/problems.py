"""pydantic validation errors -> (field path, message a policy author can act on).

pydantic's locations include the tags of discriminated unions (`checks.0.threshold.steps`)
and its messages speak Python ("Input should be a valid integer"). This module strips the
tags, so paths match the YAML (and its line table), and rewrites each message to say what
is wrong and what to write instead.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from typing import Any, get_args

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from autoscaler.policy.schema import STRATEGIES, TARGET_TYPES, PolicyModel, describe, tag_models
from autoscaler.policy.yaml_lines import Path

_KINDS = {
    "int_type": "an integer",
    "float_type": "a number",
    "string_type": "text",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_COMPARISONS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}
_UNIONS = {
    "strategy": ("strategy", STRATEGIES),
    "type": ("target type", TARGET_TYPES),
}


def field_name(path: Path) -> str:
    """`("checks", 1, "target")` -> `checks[1].target`; the empty path -> `(policy)`."""
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out or "(policy)"


def problem_from_error(
    error: ErrorDetails, plain: Callable[[Path], bool] = lambda _path: False
) -> tuple[Path, str]:
    """The YAML path of one pydantic error on a policy, and a message saying what to write.

    `plain(path)` says whether the value at `path` was written without quotes (YAML then
    chose its type from its look): text there that looks like a number was not quoted,
    and the fix is another way to write it, not to take quotes away.
    """
    path, parent = _resolve(error["loc"])
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    value = error.get("input")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        key = str(ctx.get("discriminator", "")).strip("'")
        what, allowed = _UNIONS.get(key, (key, ()))
        choices = ", ".join(allowed)
        if kind == "union_tag_not_found":
            return (*path, key), f"missing {what}: use one of {choices}"
        tag = ctx.get("tag")
        guess = did_you_mean(str(tag), allowed)
        return (*path, key), f"unknown {what} {tag!r}{guess}: use one of {choices}"
    if kind == "missing":
        return path, f"missing: `{path[-1]}` is required{_context(parent)}"
    if kind == "extra_forbidden":
        return path, _unknown_key(str(path[-1]), parent)
    written_plain = kind in _WANTED and plain(path)
    return path, _message(kind, ctx, value, path, str(error["msg"]), plain=written_plain)


def _message(
    kind: str, ctx: dict[str, Any], value: Any, path: Path, default: str, *, plain: bool
) -> str:
    last = path[-1] if path else ""
    if kind == "policy":
        return default
    if kind in _KINDS:
        hint = ""
        if isinstance(value, str) and kind in _WANTED:
            if not _quoted(kind, value):
                hint = _WANTED[kind]
            else:
                hint = _yaml_11_text(kind, value) if plain else ": write it without quotes"
        elif kind == "int_type" and isinstance(value, float):
            hint = ": use a whole number"
        return f"expected {_KINDS[kind]}, got {describe(value)}{hint}"
    if kind in _COMPARISONS:
        key, sign = _COMPARISONS[kind]
        why = ""
        if last == "tolerance" and kind == "less_than":
            why = ": at 1 or more the value would have to fall below 0 to scale in"
        return f"must be {sign} {ctx.get(key)}, got {describe(value)}{why}"
    if kind == "string_pattern_mismatch" and last == "change" and _FRACTION.match(str(value)):
        return (
            f"{value!r} is not a whole number of instances: write +N or -N with a whole N "
            '(e.g. "+1"), or a percentage of the current count (+N% or -N%)'
        )
    if kind == "string_pattern_mismatch" and last == "change":
        return f'{value!r} is not a change: write +N, -N, +N% or -N% in quotes, e.g. "+2"'
    if kind == "string_pattern_mismatch":
        return (
            f"{value!r} is not a valid name: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    if kind == "too_short":
        item = {"checks": "check", "steps": "step"}.get(str(last), "item")
        return f"needs at least one {item}"
    if kind == "string_too_short" and last == "region":
        # Left empty, it would name no region when policies are compared (one per target)
        # yet mean the default region where the target is scaled.
        return "must not be empty: leave region out to use the default region"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        guess = did_you_mean(value, allowed) if isinstance(value, str) else ""
        return f"{describe(value)} is not allowed{guess}: use {ctx.get('expected')}"
    if kind == "finite_number":
        return "must be a finite number"
    return default


_FRACTION = re.compile(r"[+-]\d+\.\d+\Z")  # a count change that is no whole number
_WANTED = {
    "int_type": ": write a whole number, e.g. 3",
    "float_type": ": write a number, e.g. 0.25",
    "bool_type": ": write true or false",
}


def _quoted(kind: str, text: str) -> bool:
    """Whether `text` is a value of the wanted kind written in quotes ('3', "true"), rather
    than a word that is not one at all (`three`): only then is "without quotes" the fix."""
    text = text.strip()
    if kind == "bool_type":
        return text.lower() in ("true", "false")
    try:
        number = float(text)
    except ValueError:
        return False
    return kind == "float_type" or number.is_integer()


def _yaml_11_text(kind: str, text: str) -> str:
    """What to write for `text`, a number or boolean written without quotes that YAML 1.1
    reads as text (`1e-3`: an exponent needs a dot and a sign; `08`: not octal, so not a
    number; `tRue`): the value in a form YAML 1.1 reads as one."""
    text = text.strip()
    if kind == "bool_type":
        return f": write {text.lower()} (YAML 1.1 reads {text} as text)"
    number = float(text)
    if not math.isfinite(number):  # `inf`, `nan`, `1e999`: no value to suggest
        return _WANTED[kind]
    decimal = str(int(number)) if number.is_integer() else repr(number)
    forms = [] if "e" in decimal else [decimal]  # repr's `1e-20` is text to YAML 1.1 too
    scientific = re.fullmatch(r"([-+]?)([0-9.]+)[eE]([-+]?)([0-9]+)", text)
    if kind == "float_type" and scientific is not None:
        sign, mantissa, exponent_sign, exponent = scientific.groups()
        mantissa += "" if "." in mantissa else ".0"
        forms.append(f"{sign}{mantissa}e{exponent_sign or '+'}{exponent}")
    if not forms:
        return _WANTED[kind]
    return f": write {' or '.join(forms)} (YAML 1.1 reads {text} as text)"


def _context(parent: type[BaseModel] | None) -> str:
    for key, members in tag_models().items():
        for tag, member in members.items():
            if member is parent:
                return f" for {'strategy' if key == 'strategy' else 'target type'} {tag}"
    return ""


def _unknown_key(key: str, parent: type[BaseModel] | None) -> str:
    if parent is None:
        return f"unknown key '{key}'"
    allowed = list(parent.model_fields)
    for union in tag_models().values():
        if parent in union.values():
            owners = [tag for tag, m in union.items() if key in m.model_fields]
            if owners:
                return (
                    f"'{key}' is not used{_context(parent)} (only by {', '.join(owners)}); "
                    f"allowed keys: {', '.join(allowed)}"
                )
    guess = did_you_mean(key, allowed)
    return f"unknown key '{key}'{guess}; allowed keys: {', '.join(allowed)}"


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    """` (did you mean 'target-value'?)` for a near miss among `choices`, else ``.

    Case and `_` for `-` are forgiven first (`Target_Value`), then difflib's closeness.
    """
    folded = word.strip().lower().replace("_", "-").replace(" ", "-")
    exact = [c for c in choices if c.lower() == folded]
    close = exact or difflib.get_close_matches(folded, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _resolve(loc: tuple[int | str, ...]) -> tuple[Path, type[BaseModel] | None]:
    """pydantic's `loc` without union tags, and the model that holds the last key."""
    path: list[int | str] = []
    candidates: list[type[BaseModel]] = [PolicyModel]
    parent: type[BaseModel] | None = None
    for key in loc:
        if isinstance(key, int):
            path.append(key)
            continue
        if len(candidates) > 1:  # pydantic puts the tag of the chosen union member here
            chosen = _member(candidates, key)
            candidates = [chosen] if chosen is not None else []
            continue
        parent = candidates[0] if candidates else None
        path.append(key)
        field = parent.model_fields.get(key) if parent is not None else None
        candidates = _models_in(field.annotation) if field is not None else []
    return tuple(path), parent


def _member(candidates: list[type[BaseModel]], tag: str) -> type[BaseModel] | None:
    for members in tag_models().values():
        if tag in members and members[tag] in candidates:
            return members[tag]
    return None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in get_args(annotation):
        found += [m for m in _models_in(arg) if m not in found]
    return found
