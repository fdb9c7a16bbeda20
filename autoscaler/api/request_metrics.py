"""What the API answered, by route, method and status, and how long each answer took.

`CountRequests` is the outermost middleware: it sees every answer, the admission's refusals
(401, 403, 408, 413, 421) and the router's 404 and 405 included, and a HEAD as the HEAD it
was (`HeadAsGet` turns it into a GET further in). Its labels are bounded whatever a client
sends: `route` is the template of the route the path matches (`/v1/policies/{name}`, never
the name), or `other`; `method` one of the methods HTTP defines, or `other`; `status` one
of the codes the server answers with. `/healthz` is probed often: a request costs a dict
lookup for the routes without parameters, a match of the few templated ones otherwise,
two clock reads and a short lock; the counts are turned into metrics only at a scrape
(`service.telemetry`).
"""

from __future__ import annotations

import bisect
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

OTHER = "other"  # the route of a path no route matches, the method of an unknown one
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
# Seconds: the health checks and reads answer in milliseconds; an evaluation waits for its
# run (a Prometheus query, a cloud call) up to 60 s.
DURATION_BUCKETS = (0.005, 0.025, 0.1, 0.5, 2.5, 10.0, 60.0)


@dataclass(frozen=True)
class Seen:
    """A copy of the counts: answers by (route, method, status), and by route the answers
    in each duration bucket (not cumulative; the last past the largest bound) and their sum
    of seconds."""

    answers: dict[tuple[str, str, str], int]
    durations: dict[str, tuple[list[int], float]]
    buckets: tuple[float, ...]


class RequestMetrics:
    """The answers counted so far; `count` is called on the event loop, `seen` at a scrape
    from another thread."""

    def __init__(self, buckets: tuple[float, ...] = DURATION_BUCKETS) -> None:
        self.buckets = buckets
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str, str], int] = {}
        self._durations: dict[str, tuple[list[int], list[float]]] = {}

    def count(self, route: str, method: str, status: int, seconds: float) -> None:
        """One answer of `status` to `method` on `route` (bounded labels), in `seconds`."""
        key = (route, method if method in METHODS else OTHER, str(status))
        slot = bisect.bisect_left(self.buckets, seconds)
        with self._lock:
            self._answers[key] = self._answers.get(key, 0) + 1
            found = self._durations.get(route)
            if found is None:
                found = self._durations[route] = ([0] * (len(self.buckets) + 1), [0.0])
            found[0][slot] += 1
            found[1][0] += seconds

    def seen(self) -> Seen:
        """A copy of the counts, consistent with each other."""
        with self._lock:
            return Seen(
                answers=dict(self._answers),
                durations={r: (list(n), total) for r, (n, [total]) in self._durations.items()},
                buckets=self.buckets,
            )


class CountRequests:
    """The middleware counting every answer in a `RequestMetrics` (module docstring).

    `routes` is the application's list of routes: Starlette builds its middleware at the
    first request, when every route has been added, and the templates are read then.
    """

    def __init__(self, app: ASGIApp, *, routes: Sequence[BaseRoute], into: RequestMetrics):
        self.app = app
        self.into = into
        self._exact: dict[str, str] = {}
        self._templated: list[tuple[re.Pattern[str], str]] = []
        for route in routes:
            if isinstance(route, Route):
                if route.param_convertors:
                    self._templated.append((route.path_regex, route.path))
                else:
                    self._exact[route.path] = route.path

    def route_of(self, path: str) -> str:
        """The template of the route `path` matches, or `other`."""
        found = self._exact.get(path)
        if found is not None:
            return found
        for regex, template in self._templated:
            if regex.match(path):
                return template
        return OTHER

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noting_status)
        except Exception:
            status = status or 500  # what Starlette's outermost error handler answers
            raise
        finally:
            # Nothing answered (the client went away first) is not counted.
            if status:
                route = self.route_of(scope["path"])
                self.into.count(route, scope["method"], status, time.perf_counter() - started)
