"""The backend raises domain errors; the HTTP layer alone turns each into a status code, a
`{"detail": ...}` body and, for a passing refusal, `Retry-After`."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from autoscaler import errors, redact
from autoscaler.api.http import STATUS_OF, status_of
from autoscaler.errors import (
    AutoscalerError,
    EvaluationCancelled,
    EvaluationFailed,
    EvaluationTimeout,
    InvalidRequest,
    PolicyDisabled,
    PolicyNotFound,
    ServiceBusy,
    ServiceError,
    ShuttingDown,
    StateError,
)
from tests.unit.api.conftest import Api, StubBackend

CASES = [
    pytest.param(PolicyNotFound("web"), 404, "no policy named 'web'", None, id="not-found"),
    pytest.param(
        PolicyDisabled("web"),
        409,
        "policy 'web' is disabled; preview it with ?dry_run=true",
        None,
        id="disabled",
    ),
    pytest.param(InvalidRequest("alerts: not a list"), 400, "alerts: not a list", None, id="bad"),
    pytest.param(
        ServiceBusy("a reload is in progress; try again", retry_after=1),
        503,
        "a reload is in progress; try again",
        "1",
        id="busy-says-when-to-retry",
    ),
    pytest.param(ShuttingDown(), 503, "the service is shutting down", None, id="shutting-down"),
    pytest.param(
        EvaluationCancelled(),
        503,
        "the evaluation was cancelled (shutdown or reload)",
        None,
        id="cancelled",
    ),
    pytest.param(EvaluationTimeout("still evaluating"), 504, "still evaluating", None, id="slow"),
    pytest.param(EvaluationFailed("evaluation failed: bug"), 500, "evaluation failed: bug", None),
    pytest.param(StateError("database is locked"), 503, "database is locked", None, id="state"),
    pytest.param(AutoscalerError("unforeseen"), 500, "unforeseen", None, id="any-other-is-500"),
]


@pytest.mark.parametrize(("error", "status", "detail", "retry_after"), CASES)
def test_each_domain_error_answers_its_status_and_message(
    serve_api: Callable[..., Api],
    error: AutoscalerError,
    status: int,
    detail: str,
    retry_after: str | None,
) -> None:
    api = serve_api(backend=StubBackend(failure=error))
    for method, path in [
        ("POST", "/v1/policies/web/evaluate"),
        ("GET", "/v1/policies/web"),
        ("GET", "/v1/decisions"),
    ]:
        response = api.request(method, path)
        assert response.status_code == status, (path, response.text)
        assert response.json() == {"detail": detail}
        assert response.headers.get("Retry-After") == retry_after


def test_an_unknown_policy_is_a_404_from_the_real_stub(serve_api: Callable[..., Api]) -> None:
    response = serve_api().request("GET", "/v1/policies/nope")
    assert (response.status_code, response.json()) == (404, {"detail": "no policy named 'nope'"})


@pytest.fixture
def secret() -> str:
    """A fresh secret per test: the registry is process-wide and never forgets."""
    value = f"s3cr3t-{uuid.uuid4().hex}"
    redact.register(value)
    return value


def test_an_error_quoting_a_secret_is_scrubbed(serve_api: Callable[..., Api], secret: str) -> None:
    failure = EvaluationFailed(f"evaluation failed: server said Bearer {secret}")
    response = serve_api(backend=StubBackend(failure=failure)).request(
        "POST", "/v1/policies/web/evaluate"
    )
    assert response.status_code == 500
    assert secret not in response.text
    assert "***" in response.json()["detail"]


def _subclasses(kind: type[Exception]) -> Iterator[type[Exception]]:
    for sub in kind.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_service_error_has_a_status_of_its_own() -> None:
    """A new class under ServiceError must be placed in STATUS_OF, not fall to 500."""
    mapped = [kind for kind, _ in STATUS_OF]
    for kind in _subclasses(ServiceError):
        assert kind.__module__ == errors.__name__
        assert any(issubclass(kind, m) for m in mapped), f"{kind.__name__} is not in STATUS_OF"


def test_subclasses_are_listed_before_their_bases() -> None:
    """The first match wins, so a base listed first would shadow its subclass's status."""
    mapped = [kind for kind, _ in STATUS_OF]
    for i, kind in enumerate(mapped):
        for later in mapped[i + 1 :]:
            assert not issubclass(later, kind), f"{later.__name__} is shadowed by {kind.__name__}"
    assert status_of(ShuttingDown()) == 503


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        pytest.param("dry-run=true", "unknown query parameter 'dry-run'", id="cli-spelling"),
        pytest.param("preview=true", "unknown query parameter 'preview'", id="other-name"),
        pytest.param("dry_run=true&dry_run=false", "dry_run given more than once", id="twice"),
    ],
)
def test_an_evaluation_with_a_query_it_does_not_know_is_refused_not_applied(
    serve_api: Callable[..., Api], query: str, detail: str
) -> None:
    # FastAPI ignores unknown query parameters: `?dry-run=true` ran a real evaluation.
    backend = StubBackend()
    response = serve_api(backend=backend).request("POST", f"/v1/policies/web/evaluate?{query}")
    assert response.status_code == 400, response.text
    assert response.json()["detail"].startswith(detail)
    assert backend.calls == []


def test_a_reload_that_cannot_read_the_policy_folder_is_a_500_the_document_lists(
    serve_api: Callable[..., Api],
) -> None:
    # The controller raises this for a folder it may not read (its test: controller
    # metrics); the OpenAPI document listed no 500 for `POST /v1/reload`, so a client
    # generated from it had no case for the answer.
    failure = ServiceError(
        "cannot read the policy files: [Errno 13] Permission denied: 'policies'; the policies "
        "in force keep running"
    )
    api = serve_api(backend=StubBackend(failure=failure))
    response = api.request("POST", "/v1/reload")
    assert response.status_code == 500
    assert response.json() == {"detail": str(failure)}
    documented = api.request("GET", "/openapi.json").json()["paths"]["/v1/reload"]["post"]
    assert "cannot be read" in documented["responses"]["500"]["description"]
