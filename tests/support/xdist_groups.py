"""pytest plugin: `--dist loadgroup` that works, so a module's shared servers start once.

A module whose module-scoped fixture starts servers and a service for all its tests (the
fault matrix's `test_servers.py`) would start them once per worker if pytest-xdist spread
its tests over both. `--dist loadgroup` is meant to keep tests marked
`pytest.mark.xdist_group(NAME)` on one worker, but pytest-xdist 3.8 marks them by
rewriting `item._nodeid`, which pytest 9 no longer reads: the groups are lost and the
tests are spread like `--dist load`.

With `--dist loadgroup`, this plugin schedules instead: like `--dist load` (one test at a
time to whichever worker is free), except that the tests of every module whose
`pytestmark` names `xdist_group(NAME)` form one unit of work with the other modules of
that NAME. The scheduler runs in the controlling process, which sees node ids and not
markers, so the mark is read from the module's source.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling

_PYTESTMARK = re.compile(r"^pytestmark\s*=\s*(\[[^\]]*\]|.*)$", re.MULTILINE)
_GROUP = re.compile(r"""xdist_group\(\s*(?:name\s*=\s*)?["']([^"']+)["']""")


@cache
def module_group(source: Path) -> str | None:
    """The `xdist_group` name in the module's `pytestmark = ...`, or None."""
    try:
        text = source.read_text()
    except OSError:
        return None
    for mark in _PYTESTMARK.finditer(text):
        found = _GROUP.search(mark.group(1))
        if found:
            return found.group(1)
    return None


class GroupedModules(LoadScopeScheduling):  # type: ignore[misc]  # xdist is untyped (Any)
    """One test per unit of work, except whole modules of one `xdist_group` together."""

    def __init__(self, config: pytest.Config, log: Producer | None = None) -> None:
        super().__init__(config, log)
        self._root = config.rootpath

    def _split_scope(self, nodeid: str) -> str:
        group = module_group(self._root / nodeid.split("::", 1)[0])
        return f"xdist_group:{group}" if group else nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> GroupedModules | None:
    if config.getvalue("dist") != "loadgroup":
        return None
    return GroupedModules(config, log)
