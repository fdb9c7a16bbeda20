"""Text from elsewhere made safe to show on a terminal: its control characters escaped
(`\\x1b`, `\\n`), visible, never interpreted.

Names and messages the tables and the text log show come from outside: an ASG name (AWS
admits a line break or a tab in one, and every character from U+0020 on, the C1 controls
too), a Nomad job or group (anything but a space or NUL), a target typed in a policy file,
a server's error. Written as they are, such text could move the cursor, recolour or
clear the operator's terminal (`ESC [`), or forge a line of the table or the log. Policy
and check names cannot hold any (letters, digits, `.`, `_`, `-`), but they go through the
same function with the lines that hold them. JSON outputs escape the C0 controls on their
own, and `json_safe` the others, which JSON admits raw (and YAML in a double-quoted
scalar, where the same `\\uXXXX` escapes read back as the same text).
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls; the line and paragraph separators; the bidirectional
# marks, embeddings, overrides and isolates, which reorder what follows them on screen.
_OTHERS = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f{_OTHERS}]")
_UNSAFE_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f{_OTHERS}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNSAFE_IN_JSON = re.compile(f"[{_OTHERS}]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` on one line, each control character written as its escape (`\\x1b`, `\\n`,
    `\\t`, `\\u202e`); text without any is returned as it is. A backslash already in the
    text stays one (a PromQL regex keeps its `\\.`)."""
    return _UNSAFE.sub(_escape, text)


def printable_lines(text: str) -> str:
    """`text` as `printable` makes it, but its line breaks kept (a traceback)."""
    return _UNSAFE_BUT_NEWLINE.sub(_escape, text)


def json_safe(document: str) -> str:
    """JSON text (`json.dumps`'s, orjson's) with DEL, the C1 controls, the line separators
    and the bidirectional controls written as `\\uXXXX` escapes, which JSON admits raw in
    a string: a terminal may run a C1 CSI (`\\x9b`) as `ESC [`, a bidi override reorders
    what a log viewer shows. The document parses to exactly the same value."""
    return _UNSAFE_IN_JSON.sub(_json_escape, document)


def json_escapes(text: str) -> bool:
    """Whether `text` holds a character `json_safe` would escape."""
    return _UNSAFE_IN_JSON.search(text) is not None


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"
