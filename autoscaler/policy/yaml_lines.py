"""YAML text -> plain data, plus the line of every key and item, for located error messages.

`yaml.safe_load` forgets where values came from, and pydantic only knows paths such as
`("checks", 1, "target")`. This module composes the YAML node graph (SafeLoader semantics)
and builds plain data itself, recording `{path: line}` on the way, so any error found later
can point at `FILE:LINE`. It also reports what `safe_load` silently accepts: duplicate keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = tuple[str | int, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
_MAX_NODES = 50_000  # aliases can expand exponentially ("billion laughs"); stop well before


@dataclass(frozen=True)
class YamlIssue:
    """A problem found while reading YAML: where (path and 1-based line) and what."""

    path: Path
    line: int
    message: str


@dataclass
class Document:
    """One YAML document as plain data, with the line of every path and raw scalar text.

    `lines[path]` is the line of a mapping key (for a mapping entry) or of an item (for a
    sequence item); `lines[()]` is the document's first line. `raw[path]` is the source
    text of each scalar, so callers can recover what YAML 1.1 resolved away (`+2` -> 2).
    """

    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    raw: dict[Path, str] = field(default_factory=dict)
    spans: dict[Path, tuple[int, int, int, int]] = field(default_factory=dict)
    text: str = ""

    def line_of(self, path: Path) -> int:
        """The line of `path`, or of its nearest ancestor present in the document."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return 1

    def position(self, path: Path, offset: int) -> tuple[int, int] | None:
        """The 1-based (line, column) in the file of character `offset` of the text value
        at `path`, or None when `path` holds no text scalar.

        Follows the value across lines whatever its style (plain, quoted, `|` or `>`
        block), matching each source line's text within the value; where escapes make
        them differ, the value's first line is given.
        """
        span = self.spans.get(path)
        value = self.raw.get(path)
        if span is None or value is None:
            return None
        return _position(self.text, span, value, offset)


class YamlSyntaxError(Exception):
    """The text is not YAML we can read; `issues` says where and why."""

    def __init__(self, issues: list[YamlIssue]) -> None:
        self.issues = issues
        super().__init__("; ".join(i.message for i in issues))


def load_documents(text: str) -> tuple[list[Document], list[YamlIssue]]:
    """Every non-empty document of `text` with its line table, and the issues found.

    Raises YamlSyntaxError when the text cannot be parsed at all. Other issues (duplicate
    keys, non-string keys, unsupported tags) are returned with the documents; the offending
    entry is left out of the data.
    """
    try:
        loader, nodes = _compose(text)
    except yaml.YAMLError as exc:
        issue = YamlIssue((), _error_line(exc, text), _error_message(exc))
        raise YamlSyntaxError([issue]) from None
    except RecursionError:
        raise YamlSyntaxError([YamlIssue((), 1, "the YAML is nested too deeply")]) from None
    documents: list[Document] = []
    issues: list[YamlIssue] = []
    for node in nodes:
        if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            continue  # an empty document, e.g. a trailing `---`
        builder = _Builder(loader)
        try:
            data = builder.build(node, ())
        except RecursionError:
            issues.append(YamlIssue((), _line(node), "the YAML is nested too deeply"))
            continue
        except _TooLarge:
            issues.append(YamlIssue((), _line(node), "the document expands to too many values"))
            continue
        documents.append(Document(data, builder.lines, builder.raw, builder.spans, text))
        issues.extend(builder.issues)
    return documents, issues


def _compose(text: str) -> tuple[yaml.SafeLoader | Any, list[Node]]:
    """The loader and the node graph of every document of `text`.

    libyaml (`CSafeLoader`) composes ten times faster than the pure-Python parser (most of
    `validate`'s time at 10,000 files), with the same resolver and constructor. Whatever it
    refuses, and any text where the two are known to differ, goes through `SafeLoader`, so
    every error message, line and value stays exactly as before: unprintable characters
    (only the pure reader refuses them), tabs (libyaml accepts them in more places) and
    tags (libyaml resolves a bare `!` differently). Policy files have none of these.
    """
    fast = getattr(yaml, "CSafeLoader", None)
    if fast is not None and not _DIFFERS.search(text):
        try:
            loader = fast(text)
            return loader, list(_compose_all(loader))
        except yaml.YAMLError:
            pass  # the pure parser says what is wrong, in its own words
    loader = yaml.SafeLoader(text)  # this already rejects unprintable characters
    return loader, list(_compose_all(loader))


_DIFFERS = re.compile(f"[\t!]|{yaml.reader.Reader.NON_PRINTABLE.pattern}")


def _compose_all(loader: Any) -> Iterator[Node]:
    while loader.check_node():
        node = loader.get_node()
        if node is not None:
            yield node


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


def _error_line(exc: yaml.YAMLError, text: str) -> int:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            return int(mark.line) + 1
    if isinstance(exc, yaml.reader.ReaderError):
        return text.count("\n", 0, max(0, exc.position)) + 1
    return 1


def _error_message(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        parts = [exc.context or "", exc.problem or ""]
        message = " ".join(p for p in parts if p).strip() or "invalid YAML"
        return f"invalid YAML: {message}"
    first = str(exc).strip().splitlines()
    return f"invalid YAML: {first[0] if first else 'cannot be read'}"


class _TooLarge(Exception):
    pass


class _Builder:
    """Turns one composed node graph into plain data, recording lines and issues."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.lines: dict[Path, int] = {}
        self.raw: dict[Path, str] = {}
        self.spans: dict[Path, tuple[int, int, int, int]] = {}
        self.issues: list[YamlIssue] = []
        self.count = 0
        self.active: set[int] = set()  # node ids on the current branch: catches `&a [*a]`

    def build(self, node: Node, path: Path) -> Any:
        self.count += 1
        if self.count > _MAX_NODES:
            raise _TooLarge
        self.lines.setdefault(path, _line(node))
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if id(node) in self.active:
            self.issues.append(YamlIssue(path, _line(node), "an alias refers to itself"))
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            return None
        finally:
            self.active.discard(id(node))

    def _scalar(self, node: ScalarNode, path: Path) -> Any:
        self.raw[path] = str(node.value)
        start, end = node.start_mark, node.end_mark
        self.spans[path] = (int(start.index), int(end.index), int(start.line), int(start.column))
        if node.tag == _STR_TAG:
            return node.value  # what SafeConstructor's construct_yaml_str returns, sooner
        try:
            return self.loader.construct_object(node, deep=True)
        except Exception as exc:  # any constructor failure: bad tag, bad !!int, ...
            problem = getattr(exc, "problem", None) or str(exc) or type(exc).__name__
            self.issues.append(YamlIssue(path, _line(node), f"cannot read this value: {problem}"))
            return None

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                self._merge(value_node, path, merged)
                continue
            key = self._key(key_node, path)
            if key is None:
                continue
            if key in first_line:
                message = (
                    f"duplicate key '{key}' (first set on line {first_line[key]}): keep only one"
                )
                self.issues.append(YamlIssue((*path, key), _line(key_node), message))
                continue
            first_line[key] = _line(key_node)
            self.lines[(*path, key)] = _line(key_node)
            out[key] = self.build(value_node, (*path, key))
        return {**{k: v for k, v in merged.items() if k not in out}, **out}

    def _merge(self, value_node: Node, path: Path, merged: dict[str, Any]) -> None:
        """`<<: *base` (or a list of them): keys not set explicitly come from the bases."""
        sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
        for source in sources:
            if not isinstance(source, MappingNode):
                self.issues.append(
                    YamlIssue(path, _line(value_node), "`<<` must refer to a mapping")
                )
                continue
            value = self.build(source, path)
            if isinstance(value, dict):
                for key, item in value.items():
                    merged.setdefault(key, item)

    def _key(self, key_node: Node, path: Path) -> str | None:
        key = self.build(key_node, (*path, "<key>")) if isinstance(key_node, ScalarNode) else None
        self.lines.pop((*path, "<key>"), None)
        self.raw.pop((*path, "<key>"), None)
        self.spans.pop((*path, "<key>"), None)
        if isinstance(key, str):
            return key
        shown = key_node.value if isinstance(key_node, ScalarNode) else "a collection"
        self.issues.append(
            YamlIssue(path, _line(key_node), f"key {shown!r} is not a name: keys must be text")
        )
        return None


def _position(
    text: str, span: tuple[int, int, int, int], value: str, offset: int
) -> tuple[int, int]:
    """See `Document.position`: walk the scalar's source lines along its value."""
    start, end, line0, column0 = span
    region = text[start:end]
    quote = region[:1] if region[:1] in ("'", '"') else ""
    block = region[:1] in ("|", ">")
    best = (line0 + 1, column0 + 1 + len(quote))
    cursor = 0
    source_lines = region.split("\n")
    for i, source in enumerate(source_lines):
        if i == 0 and block:
            continue  # the `|` / `>` indicator line holds no value
        column = column0 if i == 0 else 0
        content = source.lstrip(" \t")
        column += len(source) - len(content)
        if i == 0 and quote:
            content, column = content[1:], column + 1
        content = content.rstrip()
        if quote and i == len(source_lines) - 1 and content.endswith(quote):
            content = content[:-1]
        if not content:
            continue
        found = value.find(content, cursor)
        if found < 0:
            break  # escapes: the source text is not the value's text
        if offset < found + len(content):
            return line0 + i + 1, column + max(0, offset - found) + 1
        cursor = found + len(content)
        best = (line0 + i + 1, column + len(content) + 1)
    return best
