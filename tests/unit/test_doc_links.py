"""Links between the project's Markdown documents lead somewhere.

The README links to its own sections and to `docs/` (the measurements behind its figures
moved there); a section renamed or moved must not leave a link pointing at nothing.
Anchors are GitHub's: the heading's text lowercased, without its punctuation, spaces as
hyphens, and `-1`, `-2`... for repeated headings.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_HEADING = re.compile(r"^#{1,6} +(.+?) *#*$")
_FENCE = re.compile(r"^ *(```|~~~)")
# [text](target): a relative target, optionally with #anchor (not http:, mailto: ...).
_LINK = re.compile(r"\]\((?!https?:|mailto:)([^)\s]*)\)")


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown text (fenced code skipped)."""
    seen: Counter[str] = Counter()
    found: set[str] = set()
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).lower()).replace(" ", "-")
        found.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return found


def links(text: str) -> list[str]:
    """Relative link targets outside fenced code."""
    targets: list[str] = []
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            targets.extend(_LINK.findall(line))
    return targets


def test_anchors_follow_githubs_rules() -> None:
    text = "# Quick start\n## `autoscaler validate [PATH...]`\n## Quick start\n```\n# not\n```\n"
    assert anchors(text) == {"quick-start", "autoscaler-validate-path", "quick-start-1"}


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_relative_link_resolves(document: Path) -> None:
    broken = []
    for target in links(document.read_text(encoding="utf-8")):
        path, _, anchor = target.partition("#")
        file = (document.parent / path).resolve() if path else document
        if not file.exists():
            broken.append(f"{target}: no file {file.relative_to(ROOT)}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
            broken.append(f"{target}: no heading gives #{anchor} in {file.name}")
    assert not broken, f"{document.name}: " + "; ".join(broken)
