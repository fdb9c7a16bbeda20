"""The HTTP layer over a real socket: `serve_api(token=..., listen=..., allowed_hosts=...)`
runs `create_app` on a stub backend in the in-process uvicorn server (`HttpServer`) on a
free loopback port. The stub records what reached it, so a test can tell a refused
request from one the backend answered."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from autoscaler.api.http import HttpServer, create_app
from autoscaler.api.models import (
    AlertOut,
    DecisionList,
    EvaluationOut,
    LeaderOut,
    PolicyList,
    PolicyOut,
    ReloadOut,
    Role,
)
from autoscaler.api.request_metrics import RequestMetrics
from autoscaler.errors import PolicyNotFound


@dataclass
class StubBackend:
    """Answers like a service with no policies; `calls` lists the methods that were reached."""

    calls: list[str] = field(default_factory=list)
    failure: Exception | None = None  # raised by every read and control method when set
    not_ready: str | None = None  # what `readiness` answers

    def _reached(self, method: str) -> None:
        self.calls.append(method)
        if self.failure is not None:
            raise self.failure

    def list_policies(self) -> PolicyList:
        self._reached("list_policies")
        return PolicyList(policies=[], load_errors=[], loaded_at=None)

    def get_policy(self, name: str) -> PolicyOut:
        self._reached("get_policy")
        raise PolicyNotFound(name)

    def decisions(self, policy: str | None, limit: int) -> DecisionList:
        self._reached("decisions")
        return DecisionList(decisions=[])

    async def evaluate(self, name: str, *, preview: bool) -> EvaluationOut:
        self._reached("evaluate")
        raise PolicyNotFound(name)

    def reload(self) -> ReloadOut:
        self._reached("reload")
        return ReloadOut(
            changed=False, added=[], updated=[], removed=[], kept_files=[], load_errors=[]
        )

    def alert(self, payload: dict[str, Any]) -> AlertOut:
        self._reached("alert")
        return AlertOut(received=len(payload["alerts"]), triggered=[])

    def readiness(self) -> str | None:
        self.calls.append("readiness")
        return self.not_ready

    def role(self) -> Role:
        self.calls.append("role")
        return "leader"

    def leader(self) -> LeaderOut:
        self._reached("leader")
        return LeaderOut(
            ha=False, role="leader", replica="single", leader="single", epoch=None,
            lease_expires_at=None, lease_ttl_seconds=None, problem=None,
        )  # fmt: skip

    def metrics(self) -> tuple[bytes, str]:
        self.calls.append("metrics")
        return b"autoscaler_build_info 1\n", "text/plain; version=0.0.4"


@dataclass
class Api:
    """A served app: its base URL, its stub backend, and a session that never uses a proxy."""

    url: str
    port: int
    backend: StubBackend
    http: requests.Session
    server: HttpServer

    def request(
        self, method: str, path: str, *, timeout: float = 10, **kwargs: Any
    ) -> requests.Response:
        return self.http.request(method, self.url + path, timeout=timeout, **kwargs)


@pytest.fixture
def serve_api() -> Iterator[Callable[..., Api]]:
    """`serve_api(token=None, listen="127.0.0.1:0", allowed_hosts=(), backend=None,
    request_metrics=None, max_connections=None)` -> a running `Api` (on a fresh
    `StubBackend` unless one is given; counting its answers in `request_metrics` when
    given; holding `max_connections` connections at most, when given)."""
    servers: list[HttpServer] = []
    sessions: list[requests.Session] = []

    def serve(
        *,
        token: str | None = None,
        listen: str = "127.0.0.1:0",
        allowed_hosts: Sequence[str] = (),
        backend: StubBackend | None = None,
        request_metrics: RequestMetrics | None = None,
        max_connections: int | None = None,
    ) -> Api:
        backend = backend or StubBackend()
        app = create_app(
            backend,
            token=token,
            listen=listen,
            allowed_hosts=allowed_hosts,
            request_metrics=request_metrics,
        )
        server = (
            HttpServer(app, listen)
            if max_connections is None
            else HttpServer(app, listen, max_connections=max_connections)
        )
        server.start()
        servers.append(server)
        port = int(server.address.rpartition(":")[2])
        session = requests.Session()
        session.trust_env = False
        sessions.append(session)
        return Api(
            url=f"http://127.0.0.1:{port}", port=port, backend=backend, http=session, server=server
        )

    yield serve
    for session in sessions:
        session.close()
    for server in servers:
        server.stop()
