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

from autoscaler.core.escapes import UNSEEN, json_escapes, json_safe

__all__ = ["json_escapes", "json_safe", "printable", "printable_lines"]

# C0 controls, and those `json_safe` escapes (DEL, C1, line separators, bidi controls).
_UNSAFE = re.compile(f"[\x00-\x1f{UNSEEN}]")
_UNSAFE_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f{UNSEEN}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


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
