"""Prometheus as a `MetricSource`: one instant query gives one finite float or a clear error.

The HTTP transport is prometheus-api-client (`PrometheusConnect.custom_query`) with its hidden
urllib3 retries switched off: the retries are ours instead (tenacity, `prometheus_retries`),
bounded by a deadline for all attempts together, and only for failures that another attempt
can fix. Secrets from the settings (`prometheus_settings`) never reach an exception message,
a log line or a repr.

What the client does not give us, and how it is worked around:
- `custom_query` returns only `data.result`, dropping `resultType`, and a string result
  and a scalar have the same shape (`[time, "text"]`). A response hook on our session
  notes each answer's `resultType` (per thread), and the answer must have the type the
  expression itself has (parsed offline with promql-parser; `prometheus_answers`): a proxy
  answering a vector query with the string "12" fails the check instead of being read as 12.
- A non-200 answer becomes `PrometheusApiClientException("HTTP Status Code N (b'body')")`
  with no attributes; the status and Prometheus' error text are parsed back from that text
  (`prometheus_retries`).
- `custom_query_range` rounds start and end to whole seconds; `query_range` passes its own
  exact `start` and `end` parameters, which the client lets override its own (the grid and
  its splitting into requests Prometheus accepts: `prometheus_range`).
- A grouped answer (`query_series`, thousands of series every tick) is decoded straight
  into `(labels, value)` pairs: `custom_query` gives no way to pass a JSON object hook, so
  that one request is sent as `custom_query` sends it (`_grouped_result`).
- The client puts the parameters in the URL, even with `method="POST"`: a query whose URL
  would pass 4 KB (`LONG_URL`; nginx and Apache refuse a request line over 8 KB with 414)
  is sent by us as a form (POST), which Prometheus' API, Thanos, Mimir and VictoriaMetrics
  take on the same paths (`_result`).
- The client drops the answer's `warnings` too, and a warning means the data may be
  partial: Prometheus answers "success" with whatever it could read when a `remote_read`
  endpoint fails (`remote_read: error sending request ...`), and a sum over part of the
  series looks like less load. The same hook notes them, and an answer with warnings is
  refused like any unusable one (the check fails: it holds, never scales in, and says why).
  Prometheus 2.47 to 2.53 also listed info-level notes there (`PromQL info: metric might
  not be a counter, ...`; later versions answer them apart, as `infos`): they say nothing
  of missing data and are not refused, but logged (info level) once per query and note,
  with the `infos` of later versions. VictoriaMetrics' cluster says the same with a flag,
  `"isPartial": true`, when some vmstorage nodes could not be read: every request asks it
  for complete data (`deny_partial_response=1`), and an answer still marked partial is
  refused the same way.
- requests follows redirects, and to another host it drops only `Authorization` and
  `Cookie`: the `headers` we were given (an API key) would go with it, over plain http if
  the redirect says so, and that server's answer would be read as Prometheus'. Another
  response hook refuses a redirect to another origin before it is followed (one within
  Prometheus' own scheme, host and port is followed).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlencode, urljoin, urlsplit

import requests
import urllib3
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests.adapters import HTTPAdapter

from autoscaler.adapters.http_env import settle
from autoscaler.adapters.sources.coalesce import FETCHERS
from autoscaler.adapters.sources.prometheus_answers import (
    Hook,
    Notes,
    refuse_warnings,
    result_notes,
    sample_pairs,
    series_set,
    single_value,
)
from autoscaler.adapters.sources.prometheus_range import (
    MAX_POINTS,
    RangeSeries,
    decimal,
    epoch,
    range_chunks,
)
from autoscaler.adapters.sources.prometheus_retries import OtherOrigin, call
from autoscaler.adapters.sources.prometheus_settings import PrometheusSettings
from autoscaler.adapters.sources.prometheus_watchdog import read_within
from autoscaler.core.series import SeriesSet
from autoscaler.errors import QueryError, SourceUnavailable
from autoscaler.redact import mask_url, scrub

__all__ = ["LONG_URL", "PING_DEADLINE", "POOL_SIZE", "PrometheusSource"]

_T = TypeVar("_T")

# Connections to Prometheus kept open for reuse, at least: with the default 4 workers, the
# evaluations, the grouped-query fetchers (`coalesce.FETCHERS`) and a readiness ping may
# query at once, and a connection that comes back to a full pool is closed (urllib3 logs
# "Connection pool is full, discarding connection") and opened again the next time.
POOL_SIZE = 16
# How long a readiness ping retries at most: `/readyz` must answer health checks (2 to
# 4 s) with the reason, not leave them to time out.
PING_DEADLINE = 1.5
# Every attempt also tells the server its timeout (`_until`): a query the attempt gave up
# on is then stopped there, even behind a proxy that does not pass on the hang-up (an AWS
# ALB), instead of running on for Prometheus' own `--query.timeout` (2 minutes).
# Thanos answers with whatever stores it could reach unless told not to, and so does
# VictoriaMetrics' cluster (whatever vmstorage nodes it could reach, `"isPartial": true`):
# a sum over half the series would look like half the load and scale in. Each ignores the
# other's parameter, and Prometheus, Mimir and Cortex ignore both.
_STRICT = {"partial_response": "false", "deny_partial_response": "1"}
_INSTANT, _RANGE = "/api/v1/query", "/api/v1/query_range"
# A URL longer than this many bytes is sent as a form (POST) instead: nginx and Apache
# refuse a request line over 8 KB (414), however long a query Prometheus itself takes.
LONG_URL = 4096
_UNSEEN = "(no answer)"  # before the response hook saw this thread's answer
# Info-level notes are logged once per query and note: (query, note) pairs kept, at most.
_NOTED_INFOS = 4096
_LOG = logging.getLogger(__name__)
_DEFAULT_PORTS = {"http": 80, "https": 443}


class PrometheusSource:
    """Runs instant PromQL queries against one Prometheus (implements `ports.MetricSource`).

    `workers` is how many evaluations may query at once (the service's `--workers`): the
    connection pool keeps one open for each, besides the grouped-query fetchers' and a
    readiness ping's, and never fewer than `POOL_SIZE`.
    """

    def __init__(self, settings: PrometheusSettings, *, workers: int = 0) -> None:
        self._settings = settings
        self._url = settings.url.rstrip("/")
        self._where = mask_url(self._url)
        headers = dict(settings.headers)
        if settings.bearer_token is not None:
            headers["Authorization"] = f"Bearer {settings.bearer_token}"
        auth = None if settings.username is None else (settings.username, settings.password or "")
        session = requests.Session()
        # verify=<path> is the only way to trust a private CA; the client's own knob is a bool.
        session.verify = settings.ca_bundle or True
        if settings.client_cert is not None:  # mutual TLS
            key = settings.client_key
            session.cert = settings.client_cert if key is None else (settings.client_cert, key)
        settle(session, self._url)  # proxies, NO_PROXY, ~/.netrc: once, not per query
        # A redirect elsewhere is refused before requests follows it (with our headers).
        self._origin = _origin(self._url)
        # The client drops `resultType`; the hook keeps it for the thread that asked.
        self._answers = threading.local()
        self._noted_infos: set[tuple[str, str]] = set()
        # The first hook reads the body within the attempt's timeout (`prometheus_watchdog`).
        session.hooks["response"].extend(
            [self._read_within, self._refuse_other_origins, self._note_result_type]
        )
        self._session, self._headers, self._auth = session, headers or None, auth
        # The last answer to each grouped query while someone holds it (see `sample_pairs`).
        self._previous: weakref.WeakValueDictionary[str, SeriesSet] = weakref.WeakValueDictionary()
        self._client = PrometheusConnect(
            url=self._url,
            headers=headers or None,
            auth=auth,
            session=session,
            retry=urllib3.util.Retry(total=0),
            timeout=settings.timeout,
        )
        # Replaces the adapter the client mounted for the URL (10 connections), as it did:
        # no urllib3 retries (ours are tenacity's).
        adapter = HTTPAdapter(
            pool_connections=1,
            pool_maxsize=max(POOL_SIZE, workers + FETCHERS + 1),
            max_retries=urllib3.util.Retry(total=0),
        )
        session.mount(self._url, adapter)

    def __repr__(self) -> str:
        return f"PrometheusSource({self._where!r})"

    def query(self, promql: str) -> float:
        """The single finite value of the instant query `promql`, evaluated now.

        Raises `QueryError` when the answer has no usable value (no series, several series,
        NaN, ±Inf, a string or range vector, a result of another type than the expression's,
        or a PromQL error) and `SourceUnavailable` when Prometheus cannot be reached within
        the deadline.
        """
        self._forget_answer()
        result = self._call(promql, lambda timeout: self._instant_result(promql, timeout))
        self._refuse_warnings(promql)
        return single_value(promql, self._answers.notes.result_type, result)

    def query_series(self, promql: str, *, reuse: float = 0.0) -> SeriesSet:
        """Every series of the instant query `promql`, parsed once for all the checks that
        read it (a template's grouped query); `reuse` is for caching wrappers, ignored here.

        Raises `QueryError` when the answer is not an instant vector (or Prometheus rejects
        the query) and `SourceUnavailable` when Prometheus cannot be reached.
        """
        del reuse  # no answers kept here: `CoalescingSource` keeps them
        self._forget_answer()
        result = self._call(promql, lambda timeout: self._grouped_result(promql, timeout))
        self._refuse_warnings(promql)
        found = series_set(promql, self._answers.notes.result_type, result)
        self._previous[promql] = found
        return found

    def _instant_result(self, promql: str, timeout: float) -> Any:
        """One attempt of an instant query: `data.result` (`custom_query`'s, or ours for a
        query too long for a URL)."""
        params = {**_STRICT, **_until(timeout)}
        form = {"query": promql, **params}
        if self._too_long_for_a_url(_INSTANT, form):
            return self._result(_INSTANT, form, timeout)
        return self._client.custom_query(promql, params=params, timeout=timeout)

    def _grouped_result(self, promql: str, timeout: float) -> Any:
        """`custom_query(promql, params=_STRICT, timeout=timeout)`, the same request and the
        same errors, with each series of the answer decoded as a `(labels, value)` pair.

        Decoded as the client does, 10,000 series make some 40,000 objects per tick that are
        dropped at once (a dict, a list, a float and a string per series besides what is
        kept), fragmenting the allocator's arenas while the kept ones are made; decoded
        through `sample_pairs`, each is dropped as soon as its series is read.
        """
        like = self._previous.get(promql)
        hook = sample_pairs(like.series if like is not None else ())
        params = {"query": promql, **_STRICT, **_until(timeout)}
        return self._result(_INSTANT, params, timeout, hook)

    def _too_long_for_a_url(self, path: str, params: dict[str, str]) -> bool:
        """Whether `params` in the URL of `path` would make it longer than `LONG_URL`."""
        return len(self._url) + len(path) + 1 + len(urlencode(params)) > LONG_URL

    def _result(
        self, path: str, params: dict[str, str], timeout: float, hook: Hook | None = None
    ) -> Any:
        """`data.result` of the answer to `path` with `params`, as `custom_query` asks and
        fails (`PrometheusApiClientException` for a non-200): in the URL, or as a form
        (POST) when that URL would be longer than `LONG_URL`; decoded with `hook`."""
        form = self._too_long_for_a_url(path, params)
        response = self._session.request(
            method="POST" if form else "GET",
            url=f"{self._url}{path}",
            params=None if form else params,
            data=params if form else None,
            verify=self._session.verify,
            headers=self._headers,
            auth=self._auth,
            cert=self._session.cert,
            timeout=timeout,
        )
        if response.status_code != 200:
            raise PrometheusApiClientException(
                f"HTTP Status Code {response.status_code} ({response.content!r})"
            )
        body = response.json() if hook is None else response.json(object_pairs_hook=hook)
        return body["data"]["result"]

    def ping(self) -> None:
        """Return when Prometheus answers a trivial query; raise `SourceUnavailable` otherwise.

        A query (rather than `/-/ready`) also proves that the API path and credentials work.
        Retried for `PING_DEADLINE` at most, not a query's deadline: `/readyz` asks this,
        and health checks (Docker's, Nomad's) give up after 2 to 4 s; they must get the
        reason, not a timeout.
        """
        deadline = min(self._settings.deadline, PING_DEADLINE)
        try:
            self._call(
                "1",
                lambda timeout: self._client.custom_query(
                    "1", params=_until(timeout), timeout=timeout
                ),
                deadline=deadline,
            )
        except SourceUnavailable:
            raise
        except QueryError as exc:
            raise SourceUnavailable(str(exc)) from exc

    def close(self) -> None:
        """Release the pooled HTTP connections."""
        self._client.close()

    def query_range(
        self,
        promql: str,
        *,
        start: datetime,
        end: datetime,
        step: timedelta,
        max_points: int = MAX_POINTS,
    ) -> list[RangeSeries]:
        """Every series of `promql` evaluated at `start`, `start + step`, ... up to `end`.

        The range is split into requests of at most `max_points` instants each (Prometheus
        refuses more than 11,000 per series) and the pieces are joined by series, so the
        caller sees one answer. Each request has the retries, deadline, credentials and TLS
        settings of `query`. Values are floats, NaN and ±Inf included: judging them is the
        caller's business. Raises `QueryError` when Prometheus rejects the query and
        `SourceUnavailable` when it cannot be reached.
        """
        joined: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
        for chunk_start, chunk_end in range_chunks(start, end, step, max_points):
            for labels, points in self._range_chunk(promql, chunk_start, chunk_end, step):
                joined.setdefault(labels, []).extend(points)
        return [
            RangeSeries(labels=dict(key), points=tuple(points)) for key, points in joined.items()
        ]

    def _range_chunk(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> list[tuple[tuple[tuple[str, str], ...], list[tuple[float, float]]]]:
        """One `/api/v1/query_range` request: (sorted labels, points) per series."""
        self._forget_answer()
        result = self._call(
            promql, lambda timeout: self._range_result(promql, start, end, step, timeout)
        )
        self._refuse_warnings(promql, "range query")
        if self._answers.notes.result_type != "matrix":
            # What a proxy or an impostor would send; Prometheus answers a range with a matrix.
            raise QueryError(
                f"range query {promql!r}: the answer from {self._where} is of type "
                f"{self._answers.notes.result_type!r}, not a matrix"
            )
        try:
            return [
                (
                    tuple(sorted((str(k), str(v)) for k, v in series["metric"].items())),
                    [(float(t), float(v)) for t, v in series["values"]],
                )
                for series in result
            ]
        except (TypeError, KeyError, ValueError, AttributeError):
            raise QueryError(
                f"range query {promql!r}: unexpected result shape from Prometheus at {self._where}"
            ) from None

    def _range_result(
        self, promql: str, start: datetime, end: datetime, step: timedelta, timeout: float
    ) -> Any:
        """One attempt of a range query: `data.result` (`custom_query_range`'s, with our
        exact start and end, or ours for a query too long for a URL)."""
        params = {**_STRICT, "start": epoch(start), "end": epoch(end), **_until(timeout)}
        form = {"query": promql, **params, "step": decimal(step.total_seconds())}
        if self._too_long_for_a_url(_RANGE, form):
            return self._result(_RANGE, form, timeout)
        return self._client.custom_query_range(
            promql,
            start_time=start,
            end_time=end,
            step=form["step"],
            params=params,
            timeout=timeout,
        )

    def _call(
        self, promql: str, attempt: Callable[[float], _T], *, deadline: float | None = None
    ) -> _T:
        """`attempt(timeout)`, retried on transient failures until the deadline (the
        settings', unless given) runs out (`prometheus_retries.call`)."""
        return call(
            promql,
            attempt,
            settings=self._settings,
            where=self._where,
            deadline=deadline,
            retry_after=self._retry_after,
        )

    def _retry_after(self) -> float | None:
        """The `Retry-After` of this thread's last answer (a 429 or 503), if it had one."""
        notes: Notes = getattr(self._answers, "notes", Notes(_UNSEEN))
        return notes.retry_after

    @staticmethod
    def _read_within(response: requests.Response, *_args: Any, **kwargs: Any) -> None:
        """Response hook: read the body before the other hooks do, cut off (a timeout)
        when it is not complete `timeout` seconds after the request was sent; requests'
        own timeout bounds each wait for the socket, not the whole answer."""
        read_within(response, kwargs.get("timeout"))

    def _refuse_other_origins(
        self, response: requests.Response, *_args: Any, **_kwargs: Any
    ) -> None:
        """Response hook: raise `OtherOrigin` for a redirect to another scheme, host or
        port, before requests follows it.

        Followed, it would carry the headers we were given to that server (requests drops
        only `Authorization` and `Cookie` on a new host), and its answer would be used as
        Prometheus'. A redirect within Prometheus' own origin is followed as before.
        """
        if not response.is_redirect:
            return
        target = urljoin(response.url, self._session.get_redirect_target(response) or "")
        origin = _origin(target)
        if origin is not None and origin == self._origin:
            return
        response.close()  # its body is not read: the connection is not reused
        raise OtherOrigin(
            scrub(
                f"Prometheus at {self._where} redirected the request to {mask_url(target)}, "
                "another server; redirects are followed only within the same scheme, host "
                "and port, so that credentials and headers never reach another server and no "
                "other server's answer is used: point --prometheus-url (prometheus.url) at "
                "the address that answers the API itself"
            )
        )

    def _note_result_type(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        """Response hook: remember the answer's `data.resultType`, its warnings, whether it
        is marked partial and its info-level notes, for the thread that asked
        (`prometheus_answers.result_notes`)."""
        self._answers.notes = result_notes(response)

    def _forget_answer(self) -> None:
        """Before a query: what the response hook noted of this thread's last answer is
        not this query's."""
        self._answers.notes = Notes(_UNSEEN)

    def _refuse_warnings(self, promql: str, what: str = "query") -> None:
        """Raise `QueryError` when the answer to `promql` is marked partial or came with
        warnings (not counting the info-level notes older versions listed among them);
        log its info-level notes, once per query and note."""
        notes: Notes = getattr(self._answers, "notes", Notes(_UNSEEN))
        refuse_warnings(promql, notes.warnings, what, partial=notes.partial)
        for info in notes.infos:
            if (promql, info) in self._noted_infos:
                continue
            if len(self._noted_infos) >= _NOTED_INFOS:
                self._noted_infos.clear()
            self._noted_infos.add((promql, info))
            _LOG.info("Prometheus noted of %s %r (logged once): %s", what, promql, info)


def _until(timeout: float) -> dict[str, str]:
    """The `timeout` parameter that has Prometheus stop evaluating when the attempt gives
    up (`"1500ms"`: the duration form Prometheus, Thanos, Mimir and VictoriaMetrics read)."""
    return {"timeout": f"{max(round(timeout * 1000), 1)}ms"}


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of `url`, with the scheme's default port; None if unreadable."""
    parts = urlsplit(url)
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    return parts.scheme, parts.hostname or "", port
