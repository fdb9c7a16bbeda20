"""The service config file (`--config autoscaler.yaml`): YAML for any option of `plan` and
`run`, checked against the option table with the policies' `FILE:LINE: FIELD: message`.

The file holds settings, never secrets: a token, a password or a webhook URL is named by
a `*_file` key (`prometheus.token_file`, `nomad.token_file`, `api.token_file`,
`notify.urls_file`) and read from that file, whose content no message ever shows. Keys
are those of the options (`options.Option.key`), grouped in sections such as
`prometheus:` and `api:`; an unknown key is an error with a "did you mean".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoscaler.config.options import Option, OptionError
from autoscaler.errors import Problem
from autoscaler.policy.problems import did_you_mean, field_name
from autoscaler.policy.yaml_lines import Document, YamlSyntaxError, load_documents

# Keys where users put a secret itself; the message says where it goes instead.
_SECRETS = {
    "token": "token_file",
    "password": "password_file",
    "urls": "urls_file",
    "url": "urls_file",
}


@dataclass(frozen=True)
class ConfigFile:
    """The values a config file sets, by option key, or the problems that reject it."""

    path: str | None = None
    values: dict[tuple[str, ...], Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def load_config(path: str | None, options: Iterable[Option]) -> ConfigFile:
    """Read and check the config file at `path` (None: no file, no values); never raises.

    Every key must be one of `options`' keys, every value of its option's kind. A file
    with any problem sets nothing.
    """
    if not path:
        return ConfigFile()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        return ConfigFile(path, {}, [Problem(path, 1, "(file)", f"cannot read the file: {reason}")])
    return parse_config(text, path, options)


def parse_config(text: str, path: str, options: Iterable[Option]) -> ConfigFile:
    """`load_config` on the file's text."""
    try:
        docs, issues = load_documents(text)
    except YamlSyntaxError as exc:
        return ConfigFile(
            path, {}, [Problem(path, i.line, "(yaml)", i.message) for i in exc.issues]
        )
    problems = [Problem(path, i.line, field_name(i.path), i.message) for i in issues]
    if len(docs) > 1:
        problems.append(Problem(path, docs[1].line_of(()), "(file)", "one YAML document only"))
    if not docs:
        return ConfigFile(path, {}, problems)  # an empty file sets nothing
    doc = docs[0]
    if not isinstance(doc.data, dict):
        message = "the config file is a mapping of settings, e.g. `prometheus: {url: ...}`"
        return ConfigFile(path, {}, [*problems, Problem(path, 1, "(file)", message)])
    by_key = {o.key: o for o in options if o.key}
    values: dict[tuple[str, ...], Any] = {}
    _walk(doc, doc.data, (), by_key=by_key, values=values, problems=problems, path=path)
    problems.sort(key=lambda p: p.line)
    return ConfigFile(path, {} if problems else values, problems)


def _walk(
    doc: Document,
    data: Mapping[str, Any],
    prefix: tuple[str, ...],
    *,
    by_key: Mapping[tuple[str, ...], Option],
    values: dict[tuple[str, ...], Any],
    problems: list[Problem],
    path: str,
) -> None:
    sections = {key[len(prefix)] for key in by_key if key[: len(prefix)] == prefix}
    for name, value in data.items():
        key = (*prefix, name)
        where = (path, doc.line_of(key), field_name(key))
        option = by_key.get(key)
        if option is not None:
            try:
                values[key] = option.kind.data(value)
            except OptionError as exc:
                problems.append(Problem(*where, str(exc)))
            continue
        if name in sections:  # a section such as `prometheus:`
            if isinstance(value, dict):
                _walk(doc, value, key, by_key=by_key, values=values, problems=problems, path=path)
            else:
                problems.append(Problem(*where, "expected a mapping of settings"))
            continue
        problems.append(Problem(*where, _unknown(name, sorted(sections))))


def _unknown(name: str, allowed: Sequence[str]) -> str:
    if name in _SECRETS and _SECRETS[name] in allowed:
        return (
            f"secrets are not written in the config file: put it in a file of its own "
            f"(readable by the controller only) and give its path as {_SECRETS[name]}"
        )
    return f"unknown key '{name}'{did_you_mean(name, allowed)}; allowed keys: {', '.join(allowed)}"


def config_schema(options: Iterable[Option]) -> dict[str, Any]:
    """The JSON Schema of the config file, from the option table (for editors)."""
    root: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": {}}
    for option in options:
        if not option.key:
            continue
        node = root
        for section in option.key[:-1]:
            node = node["properties"].setdefault(
                section, {"type": "object", "additionalProperties": False, "properties": {}}
            )
        prop = {**option.kind.schema, "description": _describe(option)}
        if option.default not in (None, [], ""):
            prop["default"] = option.default  # False too: a boolean's default is shown
        node["properties"][option.key[-1]] = prop
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Autoscaler service config file",
        "description": "Options of `autoscaler plan` and `run` (flags and variables win "
        "over the file). Secrets are never written here: use the *_file keys.",
        **root,
    }


def _describe(option: Option) -> str:
    flags = ", ".join(f for f in option.flags if f.startswith("-"))
    parts = [option.help]
    if flags or option.env:
        parts.append(
            "("
            + "; ".join(x for x in (flags, f"env {option.env}" if option.env else "") if x)
            + ")"
        )
    return " ".join(parts)
