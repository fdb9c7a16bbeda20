"""schemathesis against our own OpenAPI document: requests generated from `/openapi.json`
of the running service (a real `autoscaler run` process over real HTTP) never get a 5xx,
and every answer conforms to the document (status codes, content types, headers, bodies).

CI runs a small fixed-seed slice per operation; `AUTOSCALER_FUZZ=nightly` runs thousands
(see `tests/support/fuzz.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import BaseSchema, Case

from autoscaler.api.http import Backend, create_app
from tests.support.aws import MotoServer
from tests.support.fuzz import fuzz_settings
from tests.support.service import (
    FakePrometheus,
    ServiceProcess,
    create_asg,
    policy_yaml,
    serve_fake_prometheus,
)

# One xdist worker runs the whole module, so its service (module fixture) starts once.
pytestmark = [pytest.mark.integration, pytest.mark.fuzz, pytest.mark.xdist_group("openapi-service")]

TOKEN = "openapi-token-0b7e"


@pytest.fixture(scope="module")
def service(
    moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """A dry-run service with an enabled policy (triggered by alert `WebSlow`), a disabled
    one and a broken file, behind a token."""
    workdir = tmp_path_factory.mktemp("openapi")
    fake: FakePrometheus
    with serve_fake_prometheus(delay=0) as fake:
        service = ServiceProcess(
            workdir,
            prometheus_url=fake.url,
            env=moto_server.env,
            token=TOKEN,
            args=["--dry-run", "--reload-interval=0"],
        )
        extra = "triggers: {alerts: [WebSlow]}\n"
        web = create_asg(moto_server.url, name=f"web-{uuid.uuid4().hex[:8]}")
        idle = create_asg(moto_server.url, name=f"idle-{uuid.uuid4().hex[:8]}")
        service.write_policy("web", policy_yaml("web", asg=web, count=3, extra=extra))
        service.write_policy(
            "idle", policy_yaml("idle", asg=idle, count=2, extra="enabled: false\n")
        )
        service.write_policy("broken", "name: broken\nmin: nope\n")
        service.start()
        try:
            yield service
        finally:
            service.kill()


@pytest.fixture(scope="module")
def api_schema(service: ServiceProcess) -> BaseSchema:
    """The OpenAPI document the running service serves, loaded by schemathesis."""
    return schemathesis.openapi.from_url(f"{service.url}/openapi.json")


def _operations() -> list[tuple[str, str]]:
    """(method, path) of every operation, from the app itself (routes never call the
    backend while the document is built), so the tests can be named before any server runs."""
    document = create_app(cast(Backend, object()), token=None).openapi()
    return [(m.upper(), path) for path, item in document["paths"].items() for m in item]


OPERATIONS = [pytest.param(method, path, id=f"{method} {path}") for method, path in _operations()]


def _cases(schema: BaseSchema, method: str, path: str) -> st.SearchStrategy[Case[Any]]:
    operation = schema[path][method.lower()]
    return operation.as_strategy()


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_every_operation_answers_within_its_documented_contract(
    api_schema: BaseSchema, service: ServiceProcess, method: str, path: str
) -> None:
    statuses: list[int] = []

    @fuzz_settings(ci=25)
    @given(case=_cases(api_schema, method, path))
    def check(case: Case[Any]) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        statuses.append(case.call_and_validate(base_url=service.url, headers=headers).status_code)

    check()
    assert statuses, "schemathesis sent no request"


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_without_the_token_nothing_changes_and_nothing_breaks(
    api_schema: BaseSchema, service: ServiceProcess, method: str, path: str
) -> None:
    statuses: list[int] = []

    @fuzz_settings(ci=10)
    @given(case=_cases(api_schema, method, path))
    def check(case: Case[Any]) -> None:
        response = case.call_and_validate(base_url=service.url)
        statuses.append(response.status_code)
        if method == "POST":
            assert response.status_code in (400, 401, 422), response.text

    check()
    assert statuses, "schemathesis sent no request"
