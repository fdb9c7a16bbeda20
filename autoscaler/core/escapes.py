"""The characters that JSON and YAML admit raw in a string but a terminal or a viewer
obeys: one list, for every output that writes text from elsewhere (the CLI's tables, JSON
and YAML, `cli.printable`; the HTTP API's answers, `api.json_response`).

A terminal may run a C1 CSI (`\\x9b`) as `ESC [`; a bidirectional override or isolate
reorders what follows it on screen (a policy name, a reason quoting a label value, read
as other text); a line separator breaks a line where a log viewer expects none.
"""

from __future__ import annotations

import re

# DEL, C1 controls; the line and paragraph separators; the bidirectional marks,
# embeddings, overrides and isolates, which reorder what follows them on screen.
UNSEEN = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSEEN = re.compile(f"[{UNSEEN}]")


def json_safe(document: str) -> str:
    """JSON text (`json.dumps`'s, orjson's) with DEL, the C1 controls, the line separators
    and the bidirectional controls written as `\\uXXXX` escapes, which JSON admits raw in
    a string. The document parses to exactly the same value."""
    return _UNSEEN.sub(_json_escape, document)


def json_escapes(text: str) -> bool:
    """Whether `text` holds a character `json_safe` would escape."""
    return _UNSEEN.search(text) is not None


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"
