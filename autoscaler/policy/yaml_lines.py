"""YAML text -> plain data, plus the line of every key and item, for located error messages.

`yaml.safe_load` forgets where values came from, and pydantic only knows paths such as
`("checks", 1, "target")`. This module composes the YAML node graph (SafeLoader semantics)
and builds plain data itself, recording `{path: line}` on the way, so any error found later
can point at `FILE:LINE`. It also reports what `safe_load` silently accepts: duplicate keys.

Most files are valid and never need those tables: a document with nothing unusual in it
is read straight from the node graph (`_plain`), its lines found by walking the graph when
asked, and its tables built only when a caller needs them (a problem to locate).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = tuple[str | int, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_STR_TAG = "tag:yaml.org,2002:str"
# Aliases can expand exponentially ("billion laughs"): a document stops at this many
# values, or at as many as its text has characters if more (a value takes at least one:
# a long file of plain policies is never refused, a small one expanding is).
_MAX_NODES = 50_000


def _limit(text: str) -> int:
    return max(_MAX_NODES, len(text))


@dataclass(frozen=True)
class YamlIssue:
    """A problem found while reading YAML: where (path and 1-based line) and what."""

    path: Path
    line: int
    message: str


class Document:
    """One YAML document as plain data, with the line of every path and raw scalar text.

    `lines[path]` is the line of a mapping key (for a mapping entry) or of an item (for a
    sequence item); `lines[()]` is the document's first line. `raw[path]` is the source
    text of each scalar, so callers can recover what YAML 1.1 resolved away (`+2` -> 2).

    A document read on the fast path (see `_plain`) keeps its node graph instead of these
    tables: `line_of` walks the graph along the path, and the tables are built from it
    only when a caller asks for them (a problem to locate, a `+2` to recover), so a valid
    file never pays for a table of every value.
    """

    def __init__(
        self,
        data: Any,
        lines: dict[Path, int] | None = None,
        raw: dict[Path, str] | None = None,
        spans: dict[Path, tuple[int, int, int, int]] | None = None,
        text: str = "",
        *,
        node: Node | None = None,
    ) -> None:
        self.data = data
        self.text = text
        self._node = node
        self._lines = lines
        self._raw = raw
        self._spans = spans

    @property
    def lines(self) -> dict[Path, int]:
        """The line of every path (see the class docstring)."""
        if self._lines is None:
            self._tables()
        assert self._lines is not None
        return self._lines

    @property
    def raw(self) -> dict[Path, str]:
        """The source text of every scalar, by path."""
        if self._raw is None:
            self._tables()
        assert self._raw is not None
        return self._raw

    @property
    def spans(self) -> dict[Path, tuple[int, int, int, int]]:
        """Where every scalar is in `text`: (start index, end index, line, column), 0-based."""
        if self._spans is None:
            self._tables()
        assert self._spans is not None
        return self._spans

    def _tables(self) -> None:
        builder = _Builder(SafeConstructor(), _limit(self.text))
        if self._node is not None:
            builder.build(self._node, ())  # read before without a problem: none now either
        self._lines = self._lines if self._lines is not None else builder.lines
        self._raw = self._raw if self._raw is not None else builder.raw
        self._spans = self._spans if self._spans is not None else builder.spans

    def line_of(self, path: Path) -> int:
        """The line of `path`, or of its nearest ancestor present in the document."""
        if self._lines is None and self._node is not None:
            return _walk_line(self._node, path)
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
        try:
            documents.append(Document(_plain(node, _limit(text)), text=text, node=node))
            continue
        except (_Unusual, RecursionError):
            pass  # the builder below reads it, and says what is wrong if anything is
        builder = _Builder(loader, _limit(text))
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
    if _FAST is not None and not _DIFFERS.search(text):
        try:
            loader = _FAST(text)
            return loader, list(_compose_all(loader))
        except yaml.YAMLError:
            pass  # the pure parser says what is wrong, in its own words
    loader = yaml.SafeLoader(text)  # this already rejects unprintable characters
    return loader, list(_compose_all(loader))


_DIFFERS = re.compile(f"[\t!]|{yaml.reader.Reader.NON_PRINTABLE.pattern}")
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
_RESOLVED_MAX = 4096  # plain scalars whose tag is remembered (cleared when full)
_RESOLVED: dict[str, str] = {}  # a plain scalar's text -> its tag


def _fast_loader() -> type[Any] | None:
    """libyaml's `CSafeLoader` with a cheaper `resolve`, or None without libyaml.

    libyaml composes in C but calls the resolver in Python for every node, and
    `BaseResolver.resolve` (a list concatenation and regex matches for each scalar) was a
    quarter of the composing time. This one gives the same tag for the same node: the same
    implicit resolvers in the same order, each plain scalar's tag remembered (the keys of
    every policy file are the same few words), and SafeLoader's default tags otherwise.
    SafeLoader registers no path resolvers; were any added, the original is used.
    """
    base = getattr(yaml, "CSafeLoader", None)
    if base is None:
        return None
    implicit: dict[str | None, list[tuple[str, re.Pattern[str]]]] = base.yaml_implicit_resolvers
    wildcard = implicit.get(None, [])
    table = {first: (*found, *wildcard) for first, found in implicit.items() if first is not None}
    anything = tuple(wildcard)
    resolved = _RESOLVED

    class Loader(base):  # type: ignore[valid-type,misc]  # libyaml's class is untyped
        def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> Any:
            if self.yaml_path_resolvers:
                return super().resolve(kind, value, implicit)
            if kind is ScalarNode:
                if not implicit[0]:
                    return _STR_TAG
                tag = resolved.get(value)
                if tag is None:
                    tag = _implicit_tag(value, table.get(value[:1], anything))
                    if len(resolved) >= _RESOLVED_MAX:
                        resolved.clear()
                    resolved[value] = tag
                return tag
            if kind is MappingNode:
                return _MAP_TAG
            return _SEQ_TAG if kind is SequenceNode else None

    return Loader


def _implicit_tag(value: str, resolvers: tuple[tuple[str, re.Pattern[str]], ...]) -> str:
    """The tag of a plain scalar: the first implicit resolver that matches, else `str`."""
    for tag, pattern in resolvers:
        if pattern.match(value):
            return tag
    return _STR_TAG


_FAST = _fast_loader()


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


class _Unusual(Exception):
    """The fast path met something only `_Builder` reads (or reports) the right way."""


# Scalar tags the fast path constructs itself: what SafeLoader's resolver gives plain
# scalars. Their constructors read nothing but the node (no state, no recursion).
_PLAIN_SCALARS = {
    tag: SafeConstructor.yaml_constructors[tag]
    for tag in (
        "tag:yaml.org,2002:null",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:timestamp",
    )
}
_CONSTRUCTOR = SafeConstructor()  # its scalar constructors keep no state: safe to share


def _plain(node: Node, limit: int = _MAX_NODES) -> Any:
    """The data of a document with nothing unusual in it, or raise _Unusual.

    What `_Builder` gives for such a document, without its tables of lines and texts:
    most files are valid, and only a problem needs them. Unusual is anything the builder
    treats or reports specially: a merge key, a key that is not text, a duplicate key, a
    collection met twice (aliases), an explicit tag, a value its constructor refuses, too
    many values.
    """
    return _PlainReader(limit).read(node)


class _PlainReader:
    """`_plain`'s walk: the collections met so far, and how many values (keys included).

    Text values, most of a policy, are taken in the mapping's own loop, and the other
    scalars' values are remembered by tag and text (numbers, booleans, nulls: immutable),
    which is what made reading a valid file cheap.
    """

    def __init__(self, limit: int = _MAX_NODES) -> None:
        self.seen: set[int] = set()
        self.count = 0
        self.limit = limit

    def read(self, node: Node) -> Any:
        self.count += 1
        if self.count > self.limit:
            raise _Unusual
        if isinstance(node, ScalarNode):
            if node.tag == _STR_TAG:
                return node.value
            return _scalar(node)
        if id(node) in self.seen:
            raise _Unusual
        self.seen.add(id(node))
        if isinstance(node, SequenceNode):
            return [self.read(item) for item in node.value]
        if not isinstance(node, MappingNode):
            raise _Unusual
        self.count += len(node.value)  # the keys
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag != _STR_TAG or not isinstance(key_node, ScalarNode):
                raise _Unusual  # a merge key (`<<`), a key that is not text
            key = key_node.value
            if key in out:
                raise _Unusual  # a duplicate key
            if value_node.tag == _STR_TAG and isinstance(value_node, ScalarNode):
                self.count += 1  # what `read` counts, without the call
                if self.count > self.limit:
                    raise _Unusual
                out[key] = value_node.value
            else:
                out[key] = self.read(value_node)
        return out


_CONSTRUCTED_MAX = 4096  # scalar values remembered (cleared when full)
_CONSTRUCTED: dict[tuple[str, str], Any] = {}  # (tag, text) -> value, for immutable kinds
_IMMUTABLE = frozenset(_PLAIN_SCALARS) - {"tag:yaml.org,2002:timestamp"}
_ABSENT = object()


def _scalar(node: ScalarNode) -> Any:
    """The value of a plain scalar that is not text, as SafeLoader constructs it."""
    key = (node.tag, node.value)
    value = _CONSTRUCTED.get(key, _ABSENT)  # one lookup, and no gap for a clear() to fall in
    if value is not _ABSENT:
        return value
    construct = _PLAIN_SCALARS.get(node.tag)
    if construct is None or _ambiguous_number(node) is not None:
        raise _Unusual
    try:
        value = construct(_CONSTRUCTOR, node)
    except Exception:  # e.g. a date that is no date: the builder words the problem
        raise _Unusual from None
    if node.tag in _IMMUTABLE:
        if len(_CONSTRUCTED) >= _CONSTRUCTED_MAX:
            _CONSTRUCTED.clear()
        _CONSTRUCTED[key] = value
    return value


# Numbers YAML 1.1 (PyYAML) reads otherwise than YAML 1.2 and than most readers expect:
# `010` is octal 8 (10 in YAML 1.2), `1:30` is base-60 90 (text in YAML 1.2). A policy
# that says `max: 010` or `interval: 1:30` must not load as 8 or 90 without a word.
_OCTAL = re.compile(r"[-+]?0[0-7_]+\Z")
_BASE_60 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?\Z")


def _ambiguous_number(node: ScalarNode) -> str | None:
    """The problem with a plain number written in a YAML 1.1-only form (a message with a
    `{value}` field for what YAML 1.1 made of it), or None."""
    if (
        node.tag == "tag:yaml.org,2002:int"
        and _OCTAL.match(node.value)
        and len(node.value.lstrip("+-").lstrip("0_")) > 1  # `00`, `07`: the same either way
    ):
        form = "octal (base 8)"
    elif node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float") and _BASE_60.match(
        node.value
    ):
        form = "base 60"
    else:
        return None
    return (
        f"`{node.value}` is read by YAML 1.1 as the {form} number {{value}}, which is "
        "probably not what is meant: write the number without a leading zero or colon, "
        f'or quote it ("{node.value}") if it is text'
    )


def _walk_line(node: Node, path: Path) -> int:
    """`Document.line_of` on the node graph of a document `_plain` read: what the
    builder's table says (the key's line for an entry, the item's for an item)."""
    line = _line(node)
    for step in path:
        if isinstance(node, MappingNode) and isinstance(step, str):
            for key_node, value_node in node.value:
                if key_node.value == step:
                    line, node = _line(key_node), value_node
                    break
            else:
                return line
        elif (
            isinstance(node, SequenceNode) and isinstance(step, int) and 0 <= step < len(node.value)
        ):
            node = node.value[step]
            line = _line(node)
        else:
            return line
    return line


class _Builder:
    """Turns one composed node graph into plain data, recording lines and issues."""

    def __init__(self, loader: Any, limit: int = _MAX_NODES) -> None:
        self.loader = loader
        self.limit = limit
        self.lines: dict[Path, int] = {}
        self.raw: dict[Path, str] = {}
        self.spans: dict[Path, tuple[int, int, int, int]] = {}
        self.issues: list[YamlIssue] = []
        self.count = 0
        self.active: set[int] = set()  # node ids on the current branch: catches `&a [*a]`

    def build(self, node: Node, path: Path) -> Any:
        self.count += 1
        if self.count > self.limit:
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
            value = self.loader.construct_object(node, deep=True)
        except Exception as exc:  # any constructor failure: bad tag, bad !!int, ...
            problem = getattr(exc, "problem", None) or str(exc) or type(exc).__name__
            self.issues.append(YamlIssue(path, _line(node), f"cannot read this value: {problem}"))
            return None
        ambiguous = _ambiguous_number(node)
        if ambiguous is not None:
            # Reported, and kept: the issue fails the file, and a null here would add a
            # second, misleading problem ("got nothing").
            self.issues.append(YamlIssue(path, _line(node), ambiguous.format(value=value)))
        return value

    def _mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        merged: dict[str, Any] = {}
        # Merge keys first, wherever they are written: a base is read under this mapping's
        # path, and its keys' lines and texts must not replace those of the mapping's own
        # keys (which win), as they did when `<<: *base` came after them.
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                self._merge(value_node, path, merged)
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
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
