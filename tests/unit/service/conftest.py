"""Fixtures of the leadership tests: a lease that stands for the database's, and the
local monotonic clock, both moved by hand."""

from __future__ import annotations

import pytest

from tests.unit.service.test_leadership import Clock, FakeLease


@pytest.fixture
def lease() -> FakeLease:
    return FakeLease()


@pytest.fixture
def clock() -> Clock:
    return Clock()
