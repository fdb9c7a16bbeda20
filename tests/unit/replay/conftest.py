"""Policy and test files written into a temporary folder, for the `test` command's tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

WEB_POLICY = """\
name: web
target: {type: aws-asg, asg: web}
min: 1
max: 20
interval: 1m
cooldown: {up: 2m, down: 5m}
stabilization: {up: 0s, down: 0s}
checks:
  - name: rps
    query: sum(rate(http_requests_total{service="web"}[1m]))
    strategy: per-instance
    target: 10
"""


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """`write(name, text)` puts a file in the test's folder; `web.yaml` is already there."""
    (tmp_path / "web.yaml").write_text(WEB_POLICY)

    def writer(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return writer
