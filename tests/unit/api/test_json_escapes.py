"""The API's JSON answers write the C1 and bidirectional controls of a name or a reason as
`\\uXXXX`: JSON admits them raw, but `curl` in a terminal then showed the text reordered,
or let a C1 CSI drive the terminal. Parsed, the answer is the same."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from autoscaler.api.json_response import SafeJSONResponse
from autoscaler.api.models import DecisionList, DecisionOut
from autoscaler.core.model import Action, CheckResult, Decision
from tests.unit.api.conftest import Api, StubBackend

# U+202E (right-to-left override), U+2066 (left-to-right isolate), U+009B (C1 CSI).
TARGET = "nomad:we\u202eb/api (default)"
REASON = 'load{pod="a\u2066b\u009b[2J"}: 420 / 50 per instance → 9'
RAW = {chr(c) for c in (*range(0x7F, 0xA0), *range(0x202A, 0x202F), *range(0x2066, 0x206A))}


class _Quoting(StubBackend):
    """A decision on a job whose name holds a bidi override, for a reason quoting a label
    value with an isolate and a C1 CSI; not ready for such a reason too."""

    def decisions(self, policy: str | None, limit: int) -> DecisionList:
        check = CheckResult(name="load", query="q", value=420.0, desired=9, error=None)
        decision = Decision(
            policy="web",
            target=TARGET,
            time=datetime(2026, 12, 4, tzinfo=UTC),
            current=2,
            desired=9,
            action=Action.UP,
            dry_run=False,
            reasons=(REASON,),
            checks=(check,),
        )
        return DecisionList(decisions=[DecisionOut.of(decision)])


def test_a_decisions_bidi_and_c1_controls_are_escaped_and_parse_back_the_same(
    serve_api: Callable[..., Api],
) -> None:
    api = serve_api(backend=_Quoting())
    answer = api.request("GET", "/v1/decisions")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    text = answer.content.decode("utf-8")
    assert RAW.isdisjoint(text)
    assert '"target":"nomad:we\\u202eb/api (default)"' in text
    assert "a\\u2066b\\u009b[2J" in text and "→" in text  # other text as it is
    (decision,) = answer.json()["decisions"]
    assert (decision["target"], decision["reasons"]) == (TARGET, [REASON])


def test_an_answer_built_by_hand_is_escaped_too(serve_api: Callable[..., Api]) -> None:
    # /readyz's 503 is not a route's model: its reason quotes a server's error.
    api = serve_api(backend=StubBackend(not_ready=f"Prometheus said {REASON}"))
    answer = api.request("GET", "/readyz")
    assert answer.status_code == 503
    assert RAW.isdisjoint(answer.content.decode("utf-8"))
    assert answer.json()["reason"] == f"Prometheus said {REASON}"


def test_what_orjson_refuses_is_written_as_starlette_writes_it() -> None:
    body = SafeJSONResponse({"count": 2**70, "name": "w\u202e"}).body
    assert body == b'{"count":1180591620717411303424,"name":"w\\u202e"}'
