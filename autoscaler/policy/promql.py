"""PromQL syntax errors with a position: where in the query the parser gave up.

`promql-parser` (the Rust parser behind `validate`) says what is wrong but not where. This
module finds the offset itself, so the loader can point at the file's line and column:

- bracket and string errors ("unclosed left parenthesis", "unterminated quoted string",
  "unexpected right parenthesis", ...) come from scanning the query's tokens: the opener
  left open, the closer without an opener, the quote never closed;
- an error naming a token ("bad number or duration syntax: 5z") points at that token;
- any other error ("invalid promql query") is located by growing the query token by
  token: the error is at the first token after which no completion (an operand, a label
  matcher, a duration, the closing brackets) makes a query with no syntax error;
- a type or arity error (`expected type matrix in call to function 'rate'`) points at
  the function it names, where it can.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

import promql_parser

_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = {v: k for k, v in _OPENERS.items()}
_TOKEN = re.compile(
    r"""(?P<space>\s+|\#[^\n]*)
      | (?P<string>"(?:\\.|[^"\\\n])*"?|'(?:\\.|[^'\\\n])*'?|`[^`]*`?)
      | (?P<word>[A-Za-z0-9_:.]+)
      | (?P<op>==|!=|>=|<=|=~|!~|.)""",
    re.VERBOSE | re.DOTALL,
)
# Completions tried after a prefix: a filler, the closing brackets, then a tail.
_FILLERS = ("", " x", " 1", "(x)", " (x)", '=""', '""', "1m", " 1m", "1m]", "x")
_TAILS = ("", " x", " (x)")
# Functions Prometheus 2 (2.39 and later are supported) calls by a name promql-parser does
# not know: the same arguments and result under Prometheus 3's name. Prometheus 3 drops
# `holt_winters`, but a query written for a 2.x server is valid there.
_RENAMED = {"holt_winters": "double_exponential_smoothing"}
# What the parser says about syntax; anything else (arity, types) needs a complete query
# first, so a prefix that only draws such a message can still be completed.
_SYNTAX = ("invalid promql query", "unclosed", "unexpected", "unterminated", "bad ", "illegal")


@dataclass(frozen=True)
class Token:
    """A token of the query: its text and where it starts."""

    start: int
    text: str

    @property
    def end(self) -> int:
        return self.start + len(self.text)


def parse_error(query: str) -> str | None:
    """The parser's message for `query`, or None when it parses.

    A function the parser knows only by its Prometheus 3 name (`_RENAMED`) is checked
    under that name, and a message naming it names it as the query does.
    """
    parsed = _new_names(query)
    try:
        promql_parser.parse(parsed)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # ValueError, or pyo3's PanicException on odd input
        message = str(exc) or type(exc).__name__
    else:
        return None
    for old, new in _RENAMED.items() if parsed != query else ():
        if old in query and new not in query:  # with both, the message may mean either
            message = message.replace(f"'{new}'", f"'{old}'")
    return message


def _new_names(query: str) -> str:
    """`query` with each call of a function in `_RENAMED` written with its new name."""
    if not any(old in query for old in _RENAMED):
        return query
    toks = tokens(query)
    parts: list[str] = []
    done = 0
    for token, following in pairwise(toks):
        if token.text in _RENAMED and following.text == "(":
            parts += [query[done : token.start], _RENAMED[token.text]]
            done = token.end
    return "".join(parts) + query[done:]


def tokens(query: str) -> list[Token]:
    """The query's tokens, without spaces and comments (a rough lexer: good for positions)."""
    found: list[Token] = []
    for match in _TOKEN.finditer(query):
        if match.lastgroup != "space":
            found.append(Token(match.start(), match.group()))
    return found


def is_syntax_error(message: str) -> bool:
    """Whether the parser's `message` is about syntax (not arity or types)."""
    return any(marker in message for marker in _SYNTAX)


def error_offset(query: str, message: str) -> int | None:
    """The 0-based offset in `query` where the parse error `message` is, if it can be told.

    A type or arity error names its function (`... in call to 'rate'`): its first call.
    """
    toks = tokens(query)
    if not is_syntax_error(message):
        called = re.search(r"call to (?:function )?'([^']+)'", message)
        for token in toks if called else ():
            if token.text == called.group(1):  # type: ignore[union-attr]
                return token.start
        return None
    structural = _structural(query, toks, message)
    if structural is not None:
        return structural
    named = re.search(r"(?:syntax|for|character[^:]*): (\S+)\s*$", message)
    if named:
        for token in toks:
            if named.group(1).strip("'\"") in token.text:
                return token.start
    if "end of input" in message:
        return len(query.rstrip())
    return _first_dead_end(query, toks)


def _structural(query: str, toks: list[Token], message: str) -> int | None:
    """Bracket and string errors: the offending bracket or quote, when the message says so."""
    unterminated, unmatched, still_open = _scan(toks)
    if "unterminated" in message and unterminated is not None:
        return unterminated
    if ("unexpected right" in message or "unexpected character" in message) and unmatched:
        return unmatched
    if ("unclosed" in message or "end of input inside" in message) and still_open:
        return still_open[-1].start
    return None


def _scan(toks: list[Token]) -> tuple[int | None, int | None, list[Token]]:
    """The unterminated string, the first closer without its opener, the openers left open."""
    stack: list[Token] = []
    unterminated = unmatched = None
    for token in toks:
        text = token.text
        if text[0] in "\"'`" and (len(text) == 1 or not text.endswith(text[0])):
            unterminated = token.start if unterminated is None else unterminated
        elif text in _OPENERS:
            stack.append(token)
        elif text in _CLOSERS:
            if stack and stack[-1].text == _CLOSERS[text]:
                stack.pop()
            elif unmatched is None:
                unmatched = token.start
    return unterminated, unmatched, stack


def _first_dead_end(query: str, toks: list[Token]) -> int:
    """The start of the first token after which no completion parses.

    A binary search over the prefixes (a prefix that cannot be completed stays so when it
    grows), so a 4,000-character query costs a dozen rounds of completions, not thousands.
    """
    if not toks or _completes(query):
        return len(query.rstrip())  # every prefix can be completed: the query stops too early
    low, high = 0, len(toks) - 1  # the answer is a token index in [low, high]
    while low < high:
        middle = (low + high) // 2
        if _completes(query[: toks[middle].end]):
            low = middle + 1
        else:
            high = middle
    return toks[low].start


def _completes(prefix: str) -> bool:
    """Whether some filler, the closing brackets and a tail make `prefix` a valid query."""
    for filler in _FILLERS:
        closed = prefix + filler
        closed += _closing(closed)
        for tail in _TAILS:
            error = parse_error(closed + tail)
            if error is None or not is_syntax_error(error):
                return True
    return False


def _closing(text: str) -> str:
    """What closes the strings and brackets `text` leaves open, innermost first."""
    toks = tokens(text)
    suffix = ""
    if toks and toks[-1].text[0] in "\"'`":
        last = toks[-1].text
        if len(last) == 1 or not last.endswith(last[0]):
            suffix = last[0]
    _, _, still_open = _scan(toks)
    return suffix + "".join(_OPENERS[t.text] for t in reversed(still_open))
