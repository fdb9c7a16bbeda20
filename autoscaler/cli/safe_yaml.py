"""YAML that a terminal, an editor or a code review shows as it is: every string holding a
character `json_safe` escapes (the C1 controls, DEL, the line separators, the
bidirectional controls) written double-quoted, with that character as its `\\uXXXX`
escape. `plan -o yaml` writes its document so, and `convert` its policies: a Nomad job's
name or a query may hold a bidi override, which reordered the text around it on screen
(a review read another query than the one written), or a C1 CSI a terminal obeys.
"""

from __future__ import annotations

from typing import Any

import yaml

from autoscaler.cli.printable import json_escapes, json_safe


class _Dumper(yaml.SafeDumper):
    """`yaml.safe_dump`'s dumper, but a string holding a character `json_safe` escapes is
    written double-quoted: with `allow_unicode`, PyYAML writes NEL, the line separators and
    the bidi controls raw, and a double-quoted scalar is where `json_safe`'s `\\uXXXX`
    escapes read back as the same characters (DEL and the other C1 controls PyYAML escapes
    itself there)."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = '"' if json_escapes(text) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_str)


def dump(data: Any, *, allow_unicode: bool, width: int) -> str:
    """`data` as one YAML document, keys in their order, that reads back (`safe_load`) as
    `data`, with none of the characters `json_safe` escapes written raw."""
    text = yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, allow_unicode=allow_unicode, width=width
    )
    return json_safe(text)
