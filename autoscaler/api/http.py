"""The HTTP API of the service (FastAPI), and the uvicorn server thread that serves it.

The routes only translate HTTP to calls on a `Backend` (the service's controller) and
back, and the backend's domain errors to status codes (`STATUS_OF`); every answer has a
typed model, so `/openapi.json` (and `/docs`) describe the API exactly. Most endpoints are
plain `def`: FastAPI runs them in its shared thread pool, which is what blocking calls
into SQLite and Prometheus need. Those that must answer whatever else is under way are
`async` (see `lanes`): an evaluation is awaited without a thread, and the health checks
and the webhook block only in lanes of their own. So are the dependencies and the error
handler, which FastAPI would otherwise run in that shared pool too.

Security: the endpoints that change something (evaluate, reload, the Alertmanager
webhook) require `Authorization: Bearer <token>` when a token is configured, compared in
constant time. Read-only endpoints stay open, as `/metrics` must be for Prometheus; each
answers HEAD as its GET, without the body (`HeadAsGet`, before anything but the count of
answers for `/metrics`, `request_metrics`). Before
any route, `guard` turns away browsers that are not on this server's own origin (Host and
Origin checks against DNS rebinding and CSRF) and JSON bodies holding NaN or Infinity, and
`admission` requests with two `Authorization` headers and bodies too large or too slow;
it also bounds what a client costs the event loop (webhook bodies one at a time, short
422s).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import socket
import threading
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Protocol

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from autoscaler import __version__
from autoscaler.api import capacity as connection_limits
from autoscaler.api import client_log
from autoscaler.api.admission import (
    BODY_TIMEOUT,
    EVICTED,
    EVICTED_DETAIL,
    MAX_BODY,
    NEEDS_TOKEN,
    ParsedOnce,
    add_admission,
    invalid_response,
)
from autoscaler.api.capacity import BACKLOG, LINGER, Capacity, check_fits, refusal
from autoscaler.api.delivery import Counting, delivered, unsent
from autoscaler.api.docs import add_docs
from autoscaler.api.guard import Guard, is_json
from autoscaler.api.json_response import SafeJSONResponse
from autoscaler.api.lanes import Lane
from autoscaler.api.models import (
    AlertmanagerWebhook,
    AlertOut,
    DecisionList,
    EvaluationOut,
    Health,
    LeaderOut,
    PolicyList,
    PolicyOut,
    Readiness,
    ReloadOut,
    Role,
)
from autoscaler.api.request_metrics import CountRequests, RequestMetrics
from autoscaler.config.listen import parse_listen
from autoscaler.config.service import API_MAX_CONNECTIONS
from autoscaler.errors import (
    AutoscalerError,
    EvaluationFailed,
    EvaluationTimeout,
    InvalidRequest,
    PolicyDisabled,
    PolicyNotFound,
    ServiceUnavailable,
    StateError,
)
from autoscaler.redact import scrub

log = logging.getLogger("autoscaler.http")


# Each domain error the backend raises, and the status it answers with: the first class
# that matches wins, so subclasses come before their bases.
STATUS_OF: tuple[tuple[type[AutoscalerError], int], ...] = (
    (InvalidRequest, 400),
    (PolicyNotFound, 404),
    (PolicyDisabled, 409),
    (EvaluationFailed, 500),
    (ServiceUnavailable, 503),
    (StateError, 503),
    (EvaluationTimeout, 504),
)


def status_of(error: AutoscalerError) -> int:
    """The HTTP status for a domain error: its entry in `STATUS_OF`, else 500."""
    return next((status for kind, status in STATUS_OF if isinstance(error, kind)), 500)


def error_response(error: AutoscalerError) -> SafeJSONResponse:
    """`{"detail": message}` with the error's status (and `Retry-After` when it has one).

    The message is scrubbed: an error may quote a server that quoted our own request back.
    """
    headers = None
    if isinstance(error, ServiceUnavailable) and error.retry_after is not None:
        headers = {"Retry-After": str(error.retry_after)}
    return SafeJSONResponse(
        status_code=status_of(error), content={"detail": scrub(str(error))}, headers=headers
    )


class Backend(Protocol):
    """What the API needs from the running service.

    Its methods raise the domain errors of `autoscaler.errors` (`PolicyNotFound`,
    `ServiceBusy`, `StateError`, ...), never HTTP ones: `STATUS_OF` maps them here.
    """

    def list_policies(self) -> PolicyList: ...
    def get_policy(self, name: str) -> PolicyOut:
        """Raises `PolicyNotFound`."""
        ...

    def decisions(self, policy: str | None, limit: int) -> DecisionList: ...
    async def evaluate(self, name: str, *, preview: bool) -> EvaluationOut:
        """Awaited on the event loop: it must not block it (nor hold a thread to wait)."""
        ...

    def reload(self) -> ReloadOut: ...
    def alert(self, payload: dict[str, Any]) -> AlertOut: ...
    def readiness(self) -> str | None:
        """None when ready, else the reason it is not."""
        ...

    def role(self) -> Role: ...
    def leader(self) -> LeaderOut: ...

    def metrics(self) -> tuple[bytes, str]: ...


WEBHOOK = "/v1/alertmanager"  # the one route that parses a body (see `add_admission`)

_bearer = HTTPBearer(auto_error=False, description="the token in --api-token-file")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def create_app(
    backend: Backend,
    *,
    token: str | None,
    listen: str | None = None,
    allowed_hosts: Sequence[str] = (),
    request_metrics: RequestMetrics | None = None,
) -> FastAPI:
    """The FastAPI application serving `backend`; `token` protects the changing endpoints.

    `listen` (HOST:PORT) and `allowed_hosts` say which `Host` names the server answers to
    (see `guard`); without `listen`, a loopback server is assumed. Every answer is counted
    in `request_metrics` (for `/metrics`).
    """
    app = FastAPI(
        title="autoscaler",
        version=__version__,
        description="Prometheus-driven autoscaling controller: status, history and control.",
        responses={
            400: {"description": "more than one Authorization header"},
            421: {"description": "the Host header does not name this server"},
        },
        docs_url=None,  # served by `add_docs`, without a CDN
        redoc_url=None,
        # Every answer's bidi and C1 controls escaped (`\u202e`): a terminal showed them.
        default_response_class=SafeJSONResponse,
    )
    add_docs(app)
    guard = Guard.of(listen, allowed_hosts, token)
    add_admission(app, guard, token, parsing=WEBHOOK)
    app.add_middleware(HeadAsGet)  # runs before the admission (the last added runs first)
    # Around everything: it counts the admission's refusals, and a HEAD as HEAD.
    app.add_middleware(
        CountRequests, routes=app.router.routes, into=request_metrics or RequestMetrics()
    )

    async def authorized(credentials: Credentials) -> None:
        if token is None:
            return
        given = credentials.credentials if credentials else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                status_code=401, detail=NEEDS_TOKEN, headers={"WWW-Authenticate": "Bearer"}
            )

    guarded = [Depends(authorized)]
    problems: dict[int | str, dict[str, Any]] = {
        400: {
            "description": "the body is not valid JSON (e.g. NaN or Infinity in it), or more "
            "than one Authorization header"
        },
        401: {"description": "missing or wrong token"},
        403: {"description": "a browser request from another origin"},
        408: {"description": f"the request body was not all sent within {BODY_TIMEOUT:g} s"},
        413: {"description": f"the request body is larger than {MAX_BODY} bytes"},
    }

    @app.exception_handler(AutoscalerError)
    async def _domain_error(_request: Any, exc: AutoscalerError) -> SafeJSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Any, exc: RequestValidationError) -> SafeJSONResponse:
        return invalid_response(exc.errors())

    # The health checks' and the webhook's blocking work (a Prometheus ping of 1.5 s at
    # most; scheduling the policies an alert names), apart from the shared pool.
    health = Lane("readiness checks", threads=2)
    control = Lane("webhook calls", threads=2)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> Health:
        """The process is alive and serving."""
        return Health(status="ok")

    @app.get(
        "/readyz",
        tags=["health"],
        responses={503: {"model": Readiness, "description": "not ready, and why"}},
    )
    async def readyz() -> Any:
        """Policies are loaded and Prometheus answers; 503 with the reason otherwise.
        A standby that could take over is ready too; `role` tells them apart."""
        reason, role = await health.run(lambda: (backend.readiness(), backend.role()))
        if reason is not None:
            return SafeJSONResponse(
                status_code=503, content={"ready": False, "reason": reason, "role": role}
            )
        return Readiness(ready=True, role=role)

    @app.get("/metrics", tags=["health"], response_class=Response)
    def metrics() -> Response:
        """The controller's own telemetry, in the Prometheus text format."""
        body, content_type = backend.metrics()
        return Response(content=body, media_type=content_type)

    @app.get("/v1/leader", tags=["health"])
    def leader() -> LeaderOut:
        """This replica's role (`leader` or `standby`) and who holds the leader lease."""
        return backend.leader()

    @app.get("/v1/policies", tags=["policies"])
    def list_policies() -> PolicyList:
        """Every loaded policy with its live status, and the policy files' load errors."""
        return backend.list_policies()

    @app.get(
        "/v1/policies/{name}",
        tags=["policies"],
        responses={404: {"description": "no such policy"}},
    )
    def get_policy(name: str) -> PolicyOut:
        """One policy's live status."""
        return backend.get_policy(name)

    @app.post(
        "/v1/policies/{name}/evaluate",
        tags=["policies"],
        dependencies=[*guarded, Depends(_only_dry_run)],
        responses={
            **problems,
            400: {
                "description": "a query parameter other than one `dry_run`, a body that is "
                "not valid JSON, or more than one Authorization header"
            },
            404: {"description": "no such policy"},
            409: {"description": "the policy is disabled"},
            500: {"description": "the evaluation crashed (a bug; the log has the traceback)"},
            503: {
                "description": "shutting down, a reload is rescheduling it, or too many "
                "previews under way (these two with Retry-After)"
            },
            504: {"description": "still evaluating after 60 s; see /v1/decisions"},
        },
    )
    async def evaluate(name: str, dry_run: bool = False) -> EvaluationOut:
        """Evaluate now and apply (unless the service or policy is in dry-run).

        With `dry_run=true`, only preview: nothing is scaled, recorded or remembered.
        """
        return await backend.evaluate(name, preview=dry_run)

    @app.get(
        "/v1/decisions",
        tags=["decisions"],
        responses={503: {"description": "the state database cannot be read"}},
    )
    def decisions(
        policy: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> DecisionList:
        """Recorded decisions, newest first; `policy` filters by policy name (empty: all,
        as a dashboard variable left empty sends it)."""
        return backend.decisions(policy or None, limit)

    @app.post(
        "/v1/reload",
        tags=["control"],
        dependencies=guarded,
        responses={
            **problems,
            500: {
                "description": "the policy files cannot be read (e.g. a folder without read "
                "permission); the policies in force keep running"
            },
        },
    )
    def reload() -> ReloadOut:
        """Read the policy files again; broken files keep their last good version."""
        return backend.reload()

    async def alertmanager(webhook: AlertmanagerWebhook) -> AlertOut:
        """Alertmanager webhook receiver: policies whose `triggers.alerts` name an alert
        of the notification (firing or resolved) evaluate at once."""
        return await control.run(lambda: backend.alert(webhook.model_dump()))

    app.router.add_api_route(  # as `@app.post` would, but for the route class
        WEBHOOK,
        alertmanager,
        methods=["POST"],
        tags=["control"],
        dependencies=[*guarded, Depends(_json_body)],
        responses={**problems, 415: {"description": _SEND_JSON}},
        route_class_override=ParsedOnce,  # its body, parsed by the admission, is not again
    )
    return app


_SEND_JSON = "the body is JSON: send Content-Type: application/json"


class HeadAsGet:
    """HEAD is answered as GET would be, status and headers (`Content-Length` included),
    without the body: FastAPI routes a HEAD to no GET route, and load balancers and uptime
    checks asking `HEAD /healthz` got 405. The request goes on as a GET, so the admission
    rules (Host, Origin, Authorization) and the route's own work are GET's exactly; a HEAD
    to a route GET does not reach is what GET gets there (404, or 405 with `Allow`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        # A copy: the server's own scope still says HEAD (uvicorn sends no body for it).
        await self.app({**scope, "method": "GET"}, receive, without_body)


async def _json_body(request: Request) -> None:
    """Refuse (415) a body a route reads as JSON sent as another type, or with none: FastAPI
    answered 422 with the whole body echoed as a string, not a word on the header."""
    content_type = request.headers.get("content-type")
    if not is_json(content_type):
        kind = (content_type or "").split(";")[0].strip()[:40]
        given = f"Content-Type {kind!r}" if kind else "no Content-Type"
        raise HTTPException(415, f"{_SEND_JSON} (this request has {given})")


async def _only_dry_run(request: Request) -> None:
    """Refuse (400) any query parameter of an evaluation but one `dry_run`: FastAPI ignores
    unknown ones, so `?dry-run=true` (the CLI's spelling) or `?preview=true` ran a real
    evaluation that could scale, and `?dry_run=true&dry_run=false` took the last."""
    params = request.query_params
    unknown = sorted({key for key in params if key != "dry_run"})
    if unknown:
        raise HTTPException(
            400,
            f"unknown query parameter {', '.join(repr(k) for k in unknown)}: the only one is "
            "dry_run=true (a preview: nothing is scaled or recorded)",
        )
    if len(params.getlist("dry_run")) > 1:
        raise HTTPException(400, "dry_run given more than once: give it once")


# Seconds a connection has to send a whole request head, from when it opens or from its
# last response. uvicorn times out nothing before a request arrives: idle or trickling
# connections held a file descriptor each, and a thousand of them left none for
# Prometheus, AWS, Nomad or the health checks (a unit's default limit is 1024).
REQUEST_TIMEOUT = 10.0


_EVICTED_BODY = json.dumps({"detail": EVICTED_DETAIL}, separators=(",", ":")).encode()
_EVICTED = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(_EVICTED_BODY) + _EVICTED_BODY
)


class _TimelyH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection that sends no request within
    `REQUEST_TIMEOUT` of opening or of its last response (a request under way is left to
    finish: its body is bounded by the body limit) or whose client reads nothing of an
    answer for `SEND_TIMEOUT` s (`capacity`), and holding no more connections than its
    server's `capacity` allows (see `capacity`)."""

    capacity: ClassVar[Capacity[_TimelyH11]]  # set on each server's own subclass (`_capped`)
    refused = False
    gone = False  # its connection is lost (its descriptor closed)
    stalled = False  # its client has read nothing of an answer for `STALL_AFTER` s
    _send_watch: asyncio.TimerHandle | None = None
    _progress: tuple[int | None, float] = (None, 0.0)  # bytes delivered, and since when

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Counting what is written, to tell what the client received (`delivery`).
        super().connection_made(Counting(transport))  # type: ignore[arg-type]
        victim = self.capacity.opened(self)
        if victim is self:  # every connection has a request being handled: 503
            self._refuse()
            return
        if victim is not None:
            victim._evict()
        self._watch()

    def _evict(self) -> None:
        """Close this connection to make room for a new one: answered 408 first when its
        request's body is still coming and nothing of an answer was sent yet; at once,
        what is left of an answer dropped, when some of it waits in the transport's
        buffer (a close would wait for the client to read it all, holding a descriptor
        that no longer counts toward the limit: a client that reads slowly loses the
        tail of its answer only when its place is needed)."""
        if self.transport.get_write_buffer_size():
            self.transport.abort()
            return
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_started:
            self.transport.write(_EVICTED)
            scope: dict[str, Any] = cycle.scope  # type: ignore[assignment]
            scope[EVICTED] = True  # counted as the 408 it was (`admission._body`)
            cycle.disconnected = True  # to the app (as it will be): it sends nothing more
            cycle.message_event.set()
        self.transport.close()

    def _refuse(self) -> None:
        """Answer 503 without reading the request, and close. Closed at once, a connection
        whose request is unread is reset, and the client may lose the answer: so it is
        half-closed, and what comes is read and dropped until the client closes, for
        `LINGER` s at most (`capacity` bounds how many linger at once)."""
        self.refused = True
        self.transport.write(refusal(self.capacity.limit))
        if not self.capacity.linger(self):
            self.transport.close()
            return
        self.transport.write_eof()
        self.loop.call_later(LINGER, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if not self.refused:
            super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.gone = True
        if self._send_watch is not None:
            self._send_watch.cancel()
        self.capacity.lost(self)
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        """The transport's buffer is full (the client reads more slowly than the answer
        is written, or not at all): watch what reaches the client (`_watch_send`)."""
        super().pause_writing()
        self._watch_send()

    def _watch_send(self) -> None:
        """Watch, while an answer waits in the transport's buffer, that its client
        receives some of it: a connection whose client received nothing for `STALL_AFTER`
        s may give way to a new one (`Capacity.stalled`), and for `SEND_TIMEOUT` s is
        closed, what is left of the answer dropped (nginx's `send_timeout` rule: nothing
        at all, however slowly it reads)."""
        if self._send_watch is None and not self.gone:
            # First looked at `SETTLE` s on: what was on its way to the client then has
            # arrived, and is no sign that it reads.
            self._progress = (None, self.loop.time())
            self._send_watch = self.loop.call_later(connection_limits.SETTLE, self._check_send)

    def _check_send(self) -> None:
        self._send_watch = None
        if self.gone:
            return
        if not self.transport.get_write_buffer_size():  # the rest is the kernel's to send
            self._flowing()
            return
        now, (before, since) = self.loop.time(), self._progress
        received = delivered(self.transport)  # type: ignore[arg-type]
        if before is None:  # the first look: from here on, what arrives is read
            self._progress = (received, since)
        elif received > before:
            self._progress = (received, now)
            self._flowing()
        elif now - since >= connection_limits.SEND_TIMEOUT:
            self.capacity.send_timed_out(self, unsent(self.transport))
            self.transport.abort()  # a close would wait for the client to read it all
            return
        elif now - since >= connection_limits.STALL_AFTER:
            # (again each time: a connection idle meanwhile left the stalled ones)
            self.stalled = True
            self.capacity.stalled(self)
        self._send_watch = self.loop.call_later(connection_limits.STALL_AFTER, self._check_send)

    def _flowing(self) -> None:
        if self.stalled:
            self.stalled = False
            self.capacity.flowing(self)

    def handle_events(self) -> None:
        super().handle_events()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.more_body:  # closed to make room only when none is idle
                self.capacity.receiving(self)
            else:  # being handled: not closed to make room
                self.capacity.busy(self)

    def on_response_complete(self) -> None:
        self.capacity.idle(self)  # first: a pipelined request the super starts is busy
        if self.transport.get_write_buffer_size():  # some of the answer still to go
            self._watch_send()
        super().on_response_complete()
        self._watch()

    def _watch(self) -> None:
        self.loop.call_later(REQUEST_TIMEOUT, self._close_if_idle, self.cycle)

    def _close_if_idle(self, cycle: object) -> None:
        idle = self.cycle is cycle and (cycle is None or self.cycle.response_complete)
        if idle and not self.transport.is_closing():
            if not self.transport.get_write_buffer_size():
                self.capacity.closed(self)
            # (else it counts until it is gone: its close waits for the answer to be read,
            # which `_watch_send` bounds, and it gives way, aborted, to a new connection)
            self.transport.close()

    def shutdown(self) -> None:
        """The server stops: uvicorn closes each connection, and a close waits for what
        is left of an answer to be read, which a client that reads nothing never does
        (its socket was left open after the server stopped): dropped."""
        super().shutdown()
        if not self.gone and self.transport.get_write_buffer_size():
            self.transport.abort()


def _capped(limit: int) -> type[_TimelyH11]:
    """`_TimelyH11` for one server: holding `limit` connections at most."""

    class Capped(_TimelyH11):
        capacity = Capacity(limit)

    return Capped


class HttpServer:
    """uvicorn in a background thread, on a socket bound up front.

    Binding in the caller's thread turns "address in use" into a startup error instead of
    a dead thread; uvicorn installs no signal handlers outside the main thread, so the
    service keeps SIGTERM and SIGHUP for itself.
    """

    def __init__(
        self, app: FastAPI, listen: str, *, max_connections: int = API_MAX_CONNECTIONS
    ) -> None:
        host, port = parse_listen(listen)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(BACKLOG)
        except OSError as exc:
            sock.close()
            raise AutoscalerError(f"cannot listen on {listen}: {exc.strerror or exc}") from exc
        self._socket = sock
        self.address = f"{host}:{sock.getsockname()[1]}"
        self._protocol = _capped(max_connections)
        check_fits(max_connections)
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            http=self._protocol,
            backlog=BACKLOG,  # uvicorn listens again on the socket, with its own (2048)
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)
        # uvicorn's warning per malformed request: one, then a count a minute.
        self._client_errors = client_log.install()

    def connection_counts(self) -> dict[str, int]:
        """Connections closed or refused for the connection limit (see `capacity`)."""
        return self._protocol.capacity.counts()

    def send_timeouts(self) -> int:
        """Connections closed because their client read nothing of an answer for
        `SEND_TIMEOUT` s (see `capacity`)."""
        return self._protocol.capacity.send_timeouts()

    def start(self) -> None:
        self._thread.start()
        log.info("HTTP API listening on %s", self.address)

    def _serve(self) -> None:
        try:
            self._server.run(sockets=[self._socket])
        except BaseException:  # uvicorn calls sys.exit on a failed startup
            log.exception("HTTP server stopped unexpectedly")

    def stop(self, timeout: float = 3.0) -> None:
        self._server.should_exit = True
        if self._thread.ident is not None:  # started (a failed start must not hide why)
            self._thread.join(timeout)
        self._socket.close()
        self._client_errors.flush()
        self._protocol.capacity.flush()
