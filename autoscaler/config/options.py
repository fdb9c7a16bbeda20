"""Every option of `plan` and `run` in one table: its flag, its variable, its key in the
service config file (`--config`), its type and its default.

One resolution for all of them, in this order: the command-line flag, then the
environment variable, then the config file, then the default; a repeatable flag
(`--allowed-host`) adds its values to the list the others give. Flags are declared with
`default=None`, so `resolve` can tell a flag given from one left out; a variable with a
bad value is reported by its own name (`AUTOSCALER_WORKERS: expected an integer, got
'abc'`), never by the flag's. The config file is read and checked by `config.file`,
against the keys of this table.

To add an option: give it an `Option` in the table of its group (`COMMON`, the
connection options in `connections.py`, the service options in `service.py`); the flag,
the variable, the file key, the help text and the config file's JSON Schema follow.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from autoscaler.policy.schema import describe

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class OptionError(ValueError):
    """A value given for an option (by a variable or the file) is not of its kind."""


@dataclass(frozen=True, kw_only=True)
class Kind:
    """How an option's text (flag, variable) and YAML value (config file) become a value.

    `text` turns a flag's or variable's text into the value; `data` checks and converts a
    value read from YAML; both raise OptionError with a message saying what to write.
    `schema` is the value's JSON Schema; `repeat` makes the flag repeatable (append).
    """

    name: str
    text: Callable[[str], Any]
    data: Callable[[Any], Any]
    schema: Mapping[str, Any]
    repeat: bool = False
    flag: bool = False  # a flag without a value (store_true)
    typed_flag: bool = False  # the flag's text goes through `text` (numbers)


def _expected(what: str, value: Any) -> OptionError:
    return OptionError(f"expected {what}, got {describe(value)}")


def _text_data(value: Any) -> str:
    if isinstance(value, str):
        return value
    raise _expected("text", value)


def _int_text(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise _expected("an integer", text) from None


def _int_data(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise _expected("an integer", value)


def _float_text(text: str) -> float:
    try:
        number = float(text.strip())
    except ValueError:
        raise _expected("a number", text) from None
    if not math.isfinite(number):
        raise _expected("a finite number", text)
    return number


def _float_data(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _float_text(str(value))
    raise _expected("a number", value)


def _bool_text(text: str) -> bool:
    folded = text.strip().lower()
    if folded in _TRUE or folded in _FALSE:
        return folded in _TRUE
    raise OptionError(f"expected one of 1, true, yes, on, 0, false, no, off; got {text!r}")


def _bool_data(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _expected("true or false", value)


def _words_data(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise _expected("a list of text", value)


def _header_lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line]


def _headers_data(value: Any) -> list[str]:
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return [f"{name}: {text}" for name, text in value.items()]
    raise _expected("a mapping of header names to text, e.g. {X-Scope-OrgID: tenant}", value)


TEXT = Kind(name="text", text=str, data=_text_data, schema={"type": "string"})
INT = Kind(
    name="integer", text=_int_text, data=_int_data, schema={"type": "integer"}, typed_flag=True
)
NUMBER = Kind(
    name="number", text=_float_text, data=_float_data, schema={"type": "number"}, typed_flag=True
)


def at_least(kind: Kind, minimum: float, *, above: bool = False, unit: str = "") -> Kind:
    """`kind` (INT or NUMBER) with a lower bound: `minimum` itself allowed unless `above`.

    A value out of bounds is refused wherever it is given (flag, variable, file) with
    what to write, rather than clamped: `--workers 0` meant something to whoever wrote
    it, and silently running with 1 is not it.
    """

    def check(value: Any) -> Any:
        if value < minimum or (above and value == minimum):
            word = "more than" if above else "at least"
            raise OptionError(f"must be {word} {minimum:g}{unit}, got {value!r}")
        return value

    bound = "exclusiveMinimum" if above else "minimum"
    return Kind(
        name=kind.name,
        text=lambda text: check(kind.text(text)),
        data=lambda value: check(kind.data(value)),
        schema={**kind.schema, bound: minimum},
        typed_flag=True,
    )


def at_most(kind: Kind, maximum: float, *, unit: str = "") -> Kind:
    """`kind` (an `at_least` one) with an upper bound too, refused as a value below it is.

    Beyond such a bound a value overflows what it is used for (a thread's wait, a
    timedelta, an SQLite integer): the service would die on it long after starting.
    """

    def check(value: Any) -> Any:
        if value > maximum:
            shown = int(maximum) if float(maximum).is_integer() else maximum
            raise OptionError(f"must be at most {shown}{unit}, got {value!r}")
        return value

    return replace(
        kind,
        text=lambda text: check(kind.text(text)),
        data=lambda value: check(kind.data(value)),
        schema={**kind.schema, "maximum": maximum},
    )


def flag_type(kind: Kind) -> Callable[[str], Any]:
    """argparse's `type` for a flag of `kind`: its message shown as is (exit 2)."""

    def convert(text: str) -> Any:
        try:
            return kind.text(text)
        except OptionError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


BOOL = Kind(name="boolean", text=_bool_text, data=_bool_data, schema={"type": "boolean"}, flag=True)
WORDS = Kind(  # space- or comma-separated in a variable, a list in the file
    name="list",
    text=lambda text: [w for w in text.replace(",", " ").split() if w],
    data=_words_data,
    schema={"type": "array", "items": {"type": "string"}},
    repeat=True,
)
SPACED = Kind(  # space-separated in a variable (URLs may hold commas)
    name="list",
    text=lambda text: [w for w in text.split() if w],
    data=_words_data,
    schema={"type": "array", "items": {"type": "string"}},
    repeat=True,
)
HEADERS = Kind(
    name="headers",
    text=_header_lines,
    data=_headers_data,
    schema={"type": "object", "additionalProperties": {"type": "string"}},
    repeat=True,
)


def choice(*values: str) -> Kind:
    """One of `values`, case-insensitive."""

    def text(raw: str) -> str:
        folded = raw.strip().lower()
        if folded not in values:
            raise OptionError(f"expected one of {', '.join(values)}; got {raw!r}")
        return folded

    def data(value: Any) -> str:
        if not isinstance(value, str):
            raise _expected(f"one of {', '.join(values)}", value)
        return text(value)

    return Kind(name="choice", text=text, data=data, schema={"enum": list(values)})


@dataclass(frozen=True, kw_only=True)
class Option:
    """One setting of `plan`/`run`: where it can be given, its kind and its default.

    `flags` empty: no command-line flag (variables and the file only, like NOMAD_ADDR).
    `key` empty: not in the config file (a secret's value, which belongs in a file).
    `empty_unset`: an empty variable counts as unset, as NOMAD_* ones do: compose's and
    Kubernetes' `${X:-}` give an empty variable for one not set, and it must not override
    the config file (`AUTOSCALER_DRY_RUN=` read as false scaled live). False only where
    empty is a documented value of its own (`AUTOSCALER_LISTEN=`: no HTTP API).
    `positional`: the flag is the command's positional PATH... (given as `flags[0]`).
    """

    dest: str
    kind: Kind = TEXT
    flags: tuple[str, ...] = ()
    env: str | None = None
    key: tuple[str, ...] = ()
    default: Any = None
    help: str = ""
    metavar: str | None = None
    empty_unset: bool = True
    positional: bool = False

    @property
    def key_name(self) -> str:
        return ".".join(self.key)

    def help_text(self) -> str:
        where = [f"env {self.env}"] if self.env else []
        if self.key:
            where.append(f"config {self.key_name}")
        if self.default not in (None, [], "", False):
            shown = " ".join(self.default) if isinstance(self.default, list) else self.default
            where.append(f"default {shown}")
        text = self.help.replace("%", "%%")
        return f"{text} ({'; '.join(where)})" if where else text


OPTIONS_DEST = "_options"  # where a parser keeps the options it resolves (see `parsed_options`)
SOURCES_DEST = "_option_sources"  # where `resolve` records where each value came from


def add_arguments(parser: argparse.ArgumentParser | Any, options: Iterable[Option]) -> None:
    """Flags for `options` (those that have one) on `parser` or an argument group.

    Every option, flag or not, is also recorded on the parser, so `parsed_options` tells
    the CLI what to resolve for whichever command was parsed.
    """
    options = tuple(options)
    recorded = parser.get_default(OPTIONS_DEST) or ()
    parser.set_defaults(**{OPTIONS_DEST: (*recorded, *options)})
    for option in options:
        if not option.flags:
            continue
        kwargs: dict[str, Any] = {"default": None, "help": option.help_text()}
        if option.metavar:
            kwargs["metavar"] = option.metavar
        if option.positional:
            parser.add_argument(option.dest, nargs="*", **kwargs)
            continue
        if option.kind.flag:
            kwargs["action"] = "store_true"
        elif option.kind.repeat:
            kwargs["action"] = "append"
        elif option.kind.name == "choice":
            kwargs["type"] = str.lower
            kwargs["choices"] = option.kind.schema["enum"]
        elif option.kind.typed_flag:
            kwargs["type"] = flag_type(option.kind)
        parser.add_argument(*option.flags, dest=option.dest, **kwargs)


def parsed_options(args: argparse.Namespace) -> tuple[Option, ...]:
    """The options the parsed command declared (none for commands without any)."""
    return tuple(getattr(args, OPTIONS_DEST, None) or ())


def source_of(args: argparse.Namespace, dest: str) -> str:
    """Where `resolve` took `dest`'s value from: `flag`, `env`, `file` or `default`.

    For the settings one option gives in two forms (a secret's file or its variable, a
    list of URLs or their file), so that the two can be ranked as the options are.
    """
    return str((getattr(args, SOURCES_DEST, None) or {}).get(dest, "default"))


def resolve(
    args: argparse.Namespace,
    options: Sequence[Option],
    file_values: Mapping[tuple[str, ...], Any],
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Fill `args` for `options`: flag, then variable, then config file, then default.

    Returns where each value came from (`flag`, `env`, `file`, `default`), by dest, and
    records it in `args` too (see `source_of`). Raises OptionError naming the variable
    whose text is not of the option's kind.
    """
    environ = os.environ if environ is None else environ
    sources: dict[str, str] = {}
    for option in options:
        given = getattr(args, option.dest, None)
        if given is not None and given != [] and not option.kind.repeat:
            sources[option.dest] = "flag"
            continue
        text = environ.get(option.env) if option.env else None
        if text is not None and not (option.empty_unset and text == ""):
            try:
                value = option.kind.text(text)
            except OptionError as exc:
                raise OptionError(f"{option.env}: {exc}") from None
            sources[option.dest] = "env"
        elif option.key and option.key in file_values:
            value = file_values[option.key]
            sources[option.dest] = "file"
        else:
            value = option.default
            sources[option.dest] = "default"
        if option.kind.repeat and given:
            # A repeatable flag adds to the list from the variable, the file or the
            # default, as it always added to the variable's (argparse's append).
            value = [*value, *given]
            sources[option.dest] = "flag"
        setattr(args, option.dest, list(value) if isinstance(value, list) else value)
    setattr(args, SOURCES_DEST, {**(getattr(args, SOURCES_DEST, None) or {}), **sources})
    return sources


# --- options every command that evaluates shares -------------------------------------------

CONFIG = Option(
    dest="config",
    flags=("--config",),
    env="AUTOSCALER_CONFIG",
    metavar="FILE",
    help="service config file (YAML) for any option below; flags and variables win over it",
)
POLICIES = Option(
    dest="paths",
    kind=Kind(
        name="paths",
        text=lambda text: [text],
        data=_words_data,
        schema={"type": "array", "items": {"type": "string"}},
    ),
    flags=("paths",),
    positional=True,
    env="AUTOSCALER_POLICIES",
    key=("policies",),
    default=["policies"],
    metavar="PATH",
    help="policy files or folders",
)
LOG_LEVEL = Option(
    dest="log_level",
    kind=choice("debug", "info", "warning", "error"),
    flags=("--log-level",),
    env="AUTOSCALER_LOG_LEVEL",
    key=("log", "level"),
    default="info",
    help="log level",
)
LOG_FORMAT = Option(
    dest="log_format",
    kind=choice("text", "json"),
    flags=("--log-format",),
    env="AUTOSCALER_LOG_FORMAT",
    key=("log", "format"),
    default="text",
    help="log format: text, or one JSON object per line",
)
COMMON = (POLICIES, LOG_LEVEL, LOG_FORMAT)

PLAN_STATE = Option(
    dest="state",
    flags=("--state",),
    env="AUTOSCALER_STATE",
    key=("state",),
    metavar="FILE",
    help="state database to read cooldowns and stabilization from (read-only): a "
    "SQLite file or postgresql://USER@HOST:PORT/DB",
)


def _state_text(text: str) -> str:
    if not text:
        raise OptionError(
            "the state database cannot be empty: give a SQLite file (default "
            "autoscaler-state.db) or a postgresql:// URL"
        )
    return text


RUN_STATE = Option(
    dest="state",
    kind=Kind(
        name="text",
        text=_state_text,
        data=lambda value: _state_text(_text_data(value)),
        schema={"type": "string", "minLength": 1},
        typed_flag=True,
    ),
    flags=("--state",),
    env="AUTOSCALER_STATE",
    key=("state",),
    default="autoscaler-state.db",
    metavar="FILE",
    help="state database: a SQLite file or postgresql://USER@HOST:PORT/DB, shared by replicas",
)
STATE_PASSWORD = Option(
    dest="state_password_file",
    flags=("--state-password-file",),
    env="AUTOSCALER_STATE_PASSWORD_FILE",
    key=("state_password_file",),
    metavar="FILE",
    help="file holding the PostgreSQL password (else PGPASSWORD or ~/.pgpass)",
)
