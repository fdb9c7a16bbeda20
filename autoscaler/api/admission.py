"""What a request may cost before a route sees it, and what a refusal costs us.

Every request passes `add_admission`'s middleware first: `guard`'s Host/Origin rules, one
`Authorization` header at most, the token of the changing routes (checked before a body is
read), a body's size (`MAX_BODY`) and time (`BODY_TIMEOUT`), and its JSON numbers. What a
client costs the event loop is bounded too: the bodies of the one route that parses them
go one at a time, and a 422 lists `MAX_PROBLEMS` problems at most (`invalid_response`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from contextlib import nullcontext
from typing import Any

import anyio
from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute
from fastapi.security.utils import get_authorization_scheme_param
from starlette.requests import ClientDisconnect

from autoscaler.api.guard import NOT_PARSED, SAFE_METHODS, Guard, Refused, check_json
from autoscaler.api.json_response import SafeJSONResponse
from autoscaler.api.lanes import Lane

# The scope's mark of a request whose connection was closed, its body still coming, to
# make room under --api-max-connections: its 408 is already written (`http._TimelyH11`).
EVICTED = "autoscaler.evicted"
EVICTED_DETAIL = (
    "the API holds --api-max-connections connections and none was idle: this one, whose "
    "request body was still coming, was closed for a new one"
)
# The largest request body read (an Alertmanager notification of many alerts is well
# under it): a larger one is refused with 413 before it is read.
MAX_BODY = 10 * 1024 * 1024
# Seconds a request has, once its head is in, to send its whole body (10 MiB takes 30 s at
# 350 kB/s; Alertmanager sends a few kB at once). `MAX_BODY` bounds a body's size, this its
# time: a body trickled a byte at a time held its connection, and a file descriptor, for
# ever (`http.REQUEST_TIMEOUT` stops once the head is in), and a few hundred left none.
BODY_TIMEOUT = 30.0
NEEDS_TOKEN = "a valid bearer token is required (Authorization: Bearer <token>)"
# Where the body of the route FastAPI parses is left, parsed by our check, in the request's
# scope: the route takes it from there instead of parsing the body a second time.
PARSED = "autoscaler.parsed_body"


def _token_matches(authorization: str | None, token: str) -> bool:
    """Whether an `Authorization` header carries `token` as a bearer token (compared in
    constant time), read as `HTTPBearer` reads it."""
    scheme, credentials = get_authorization_scheme_param(authorization)
    given = credentials if scheme.lower() == "bearer" else ""
    return hmac.compare_digest(given.encode(), token.encode())


def _refused(exc: Refused) -> SafeJSONResponse:
    """`{"detail": ...}` with the refusal's status; a 408 ends the connection, as the rest of
    its body is not waited for."""
    close = {"Connection": "close"} if exc.status == 408 else None
    return SafeJSONResponse(status_code=exc.status, content={"detail": exc.detail}, headers=close)


async def _body(request: Request) -> bytes:
    """The request's body, or `Refused(413)` when it is larger than `MAX_BODY` (by its
    `Content-Length`, before anything is read, or as it is read when it has none),
    `Refused(408)` when it is not all in within `BODY_TIMEOUT`, or `Refused(400)` when the
    client hangs up before it is (an answer nobody reads: the connection is gone, and
    uninterrupted, Starlette's error logged a traceback per such client)."""
    length = request.headers.get("content-length")
    if length is not None and (not length.strip().isdigit() or int(length) > MAX_BODY):
        raise Refused(413, f"the request body is larger than {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(BODY_TIMEOUT):
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY:  # no more is read
                    raise Refused(413, f"the request body is larger than {MAX_BODY} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise Refused(
            408, f"the request body was not all sent within {BODY_TIMEOUT:g} s; send it at once"
        ) from None
    except ClientDisconnect:
        if request.scope.get(EVICTED):  # the server closed it with its 408 (`_evict`)
            raise Refused(408, EVICTED_DETAIL) from None
        raise Refused(
            400, "the client closed the connection before its body was all sent"
        ) from None
    body = b"".join(chunks)
    # Kept where `Request.body()` keeps it, so the route reads it again (Starlette's
    # middleware hands the route the body its dispatch read).
    request._body = body
    return body


class ParsedOnce(APIRoute):
    """A route whose JSON body `add_admission` has parsed already (`PARSED` in its scope):
    FastAPI validates that value instead of parsing the body again (with the same
    `json.loads`, so the value is the same; a second parse of 10 MiB held the event loop
    another 0.2 s)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def parsed_once(request: Request) -> Response:
            parsed = request.scope.get(PARSED, NOT_PARSED)
            if parsed is not NOT_PARSED:
                request._json = parsed  # where Starlette keeps what `Request.json()` read
            return await handler(request)

        return parsed_once


def add_admission(app: FastAPI, guard: Guard, token: str | None, *, parsing: str) -> None:
    """Before any route: `guard`'s Host/Origin rules, the token of the changing routes (before
    a body is read), and the body's limits (`MAX_BODY`, `BODY_TIMEOUT`, JSON numbers).

    `parsing` is the path of the route whose body FastAPI parses and validates, which it
    does on the event loop (about a second for 10 MiB of alerts): its requests are
    answered one at a time. Each was parsed as it came, and eight of 10 MiB, or sixty of
    1 MB, at once stalled /healthz for 9 or 10 s; one at a time, the loop serves the
    health checks between them. Our own check of a body runs off the loop; for that
    route, what it parsed is left in the scope (`PARSED`) for the route to validate, so
    the body is not parsed twice (`ParsedOnce`).
    """
    one_body = asyncio.Semaphore(1)
    # Our check runs apart from the loop and from FastAPI's shared pool (see `lanes`).
    checks = Lane("request body checks", threads=2)

    def refusal(request: Request) -> Response | None:
        """The answer to a request refused by its head alone, else None."""
        try:
            if len(request.headers.getlist("authorization")) > 1:
                # Which one counts is anybody's guess (we read the first, a proxy in front
                # may read the last): refused rather than guessed.
                raise Refused(400, "more than one Authorization header: send one")
            guard.check(request.method, dict(request.headers.items()))
        except Refused as exc:
            return _refused(exc)
        # Every changing route needs the token: a caller without it is refused before its
        # body is read (or its size could cost us memory).
        changing = request.method.upper() not in SAFE_METHODS
        if not changing or token is None:
            return None
        if _token_matches(request.headers.get("authorization"), token):
            return None
        return SafeJSONResponse(
            status_code=401,
            content={"detail": NEEDS_TOKEN},
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.middleware("http")
    async def _guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        refused = refusal(request)
        if refused is not None:
            return refused
        if request.method.upper() in SAFE_METHODS:
            return await call_next(request)
        content_type = request.headers.get("content-type")
        try:
            body = await _body(request)
        except Refused as exc:
            return _refused(exc)
        parsed_here = bool(body) and request.url.path == parsing
        async with one_body if parsed_here else nullcontext():
            try:
                value = (
                    await checks.run(lambda: check_json(body, content_type)) if body else NOT_PARSED
                )
            except Refused as exc:
                return _refused(exc)
            if parsed_here and value is not NOT_PARSED:
                request.scope[PARSED] = value
            return await call_next(request)


# The problems a 422 lists at most (then one saying how many more), and the longest input
# it quotes (as JSON) in one of them. FastAPI listed every problem with its input: 300,000
# bad alerts (9 MB) got a 37 MB answer, and encoding it held the event loop for 4 s.
MAX_PROBLEMS = 20
MAX_INPUT = 200


def invalid_response(errors: Sequence[Any]) -> SafeJSONResponse:
    """FastAPI's 422 (`{"detail": [{"loc", "msg", "type", "input", ...}]}`), with at most
    `MAX_PROBLEMS` problems and no input longer than `MAX_INPUT` characters as JSON."""
    shown = [_brief(error) for error in errors[:MAX_PROBLEMS]]
    if len(errors) > MAX_PROBLEMS:
        more = len(errors) - MAX_PROBLEMS
        loc = list(errors[MAX_PROBLEMS].get("loc", ()))[:1]
        shown.append(
            {"type": "too_many_errors", "loc": loc, "msg": f"and {more} more problems, not shown"}
        )
    return SafeJSONResponse(status_code=422, content={"detail": shown})


def _brief(error: Any) -> Any:
    """One problem as JSON, its input left out when long (it may be the whole body)."""
    brief = jsonable_encoder({key: value for key, value in error.items() if key != "input"})
    value = error.get("input")
    # A body's input is what json.loads gave (the C encoder sizes it at once); nested
    # containers could still hold the whole body: their length is looked at first.
    if not isinstance(value, str | bytes | dict | list) or len(value) <= MAX_INPUT:
        quoted = json.dumps(value, default=str)
        if len(quoted) <= MAX_INPUT:
            brief["input"] = json.loads(quoted)
    return brief
