"""`GET /v1/decisions?policy=`: an empty filter is no filter (a dashboard variable left
empty for "all" got an empty list, filtered on the name "")."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from autoscaler.api.models import DecisionList
from tests.unit.api.conftest import Api, StubBackend


class _Asked(StubBackend):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[str | None, int]] = []

    def decisions(self, policy: str | None, limit: int) -> DecisionList:
        self.asked.append((policy, limit))
        return DecisionList(decisions=[])


@pytest.mark.parametrize(
    ("query", "asked"),
    [
        pytest.param("", (None, 100), id="none"),
        pytest.param("?policy=", (None, 100), id="empty-is-all"),
        pytest.param("?policy=web&limit=5", ("web", 5), id="one-policy"),
    ],
)
def test_the_policy_filter(
    serve_api: Callable[..., Api], query: str, asked: tuple[str | None, int]
) -> None:
    backend = _Asked()
    api = serve_api(backend=backend)
    assert api.request("GET", "/v1/decisions" + query).status_code == 200
    assert backend.asked == [asked]
