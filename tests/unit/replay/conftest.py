"""Policy and test files written into a temporary folder, for the `test` command's tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.replay.fakes import WEB_POLICY


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """`write(name, text)` puts a file in the test's folder; `web.yaml` is already there."""
    (tmp_path / "web.yaml").write_text(WEB_POLICY)

    def writer(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return writer
