"""Prometheus as a `MetricSource`: one instant query gives one finite float or a clear error.

The HTTP transport is prometheus-api-client (`PrometheusConnect.custom_query`) with its hidden
urllib3 retries switched off: the retries live here instead (tenacity), bounded by a deadline
for all attempts together, and only for failures that another attempt can fix. Secrets from
the settings never reach an exception message, a log line or a repr.

What the client does not give us, and how it is worked around:
- `custom_query` returns only `data.result`, dropping `resultType`, and a string result
  and a scalar have the same shape (`[time, "text"]`). A response hook on our session
  notes each answer's `resultType` (per thread), and the answer must have the type the
  expression itself has (parsed offline with promql-parser): a proxy answering a vector
  query with the string "12" fails the check instead of being read as 12.
- A non-200 answer becomes `PrometheusApiClientException("HTTP Status Code N (b'body')")`
  with no attributes; the status and Prometheus' error text are parsed back from that text.
- `custom_query_range` rounds start and end to whole seconds; `query_range` passes its own
  exact `start` and `end` parameters, which the client lets override its own.
- A grouped answer (`query_series`, thousands of series every tick) is decoded straight
  into `(labels, value)` pairs: `custom_query` gives no way to pass a JSON object hook, so
  that one request is sent as `custom_query` sends it (`_grouped_result`).
- The client drops the answer's `warnings` too, and a warning means the data may be
  partial: Prometheus answers "success" with whatever it could read when a `remote_read`
  endpoint fails (`remote_read: error sending request ...`), and a sum over part of the
  series looks like less load. The same hook notes them, and an answer with warnings is
  refused like any unusable one (the check fails: it holds, never scales in, and says why).
  Prometheus 2.47 to 2.53 also listed info-level notes there (`PromQL info: metric might
  not be a counter, ...`; later versions answer them apart, as `infos`): they say nothing
  of missing data and are not refused.
- requests follows redirects, and to another host it drops only `Authorization` and
  `Cookie`: the `headers` we were given (an API key) would go with it, over plain http if
  the redirect says so, and that server's answer would be read as Prometheus'. Another
  response hook refuses a redirect to another origin before it is followed (one within
  Prometheus' own scheme, host and port is followed).
"""

from __future__ import annotations

import ast
import json
import logging
import math
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import promql_parser
import requests
import urllib3
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from requests.adapters import HTTPAdapter
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_before_delay,
    wait_exponential,
    wait_random,
)

from autoscaler.adapters.exhausted import out_of_resources
from autoscaler.adapters.http_env import settle
from autoscaler.adapters.sources.coalesce import FETCHERS
from autoscaler.core.series import Labels, SeriesSet
from autoscaler.errors import QueryError, SourceUnavailable
from autoscaler.redact import (
    mask_url,
    register,
    register_basic,
    register_header,
    register_url,
    scrub,
)

__all__ = [
    "MAX_POINTS",
    "POOL_SIZE",
    "PrometheusSettings",
    "PrometheusSource",
    "RangeSeries",
    "range_chunks",
]

_LOG = logging.getLogger(__name__)
_T = TypeVar("_T")
# Builds each object of a JSON answer from its (key, value) pairs, as `object_pairs_hook`.
Hook = Callable[[list[tuple[str, Any]]], Any]

# Connections to Prometheus kept open for reuse, at least: with the default 4 workers, the
# evaluations, the grouped-query fetchers (`coalesce.FETCHERS`) and a readiness ping may
# query at once, and a connection that comes back to a full pool is closed (urllib3 logs
# "Connection pool is full, discarding connection") and opened again the next time.
POOL_SIZE = 16
# How long a readiness ping retries at most: `/readyz` must answer health checks (2 to
# 4 s) with the reason, not leave them to time out.
PING_DEADLINE = 1.5
# 408/429 and every 5xx (Prometheus answers 503 while starting and for query timeouts).
_RETRIED_STATUSES = frozenset({408, 429})
_CLIENT_ERROR = re.compile(r"^HTTP Status Code (\d{3}) \((b(['\"]).*\3)\)$", re.DOTALL)
_MAX_CAUSE = 300
# Thanos answers with whatever stores it could reach unless told not to: a sum over half
# the series would look like half the load and scale in. Prometheus, Mimir and Cortex
# ignore the parameter.
_STRICT = {"partial_response": "false"}
_SHOWN_SERIES = 3
_WARNINGS_KEY = b'"warnings"'
# How Prometheus starts an info-level annotation (`annotations.PromQLInfo`), which 2.47 to
# 2.53 answered among the warnings.
_INFO_PREFIX = "PromQL info:"
_NUMERIC_TYPES = ("vector", "scalar")
_UNSEEN = "(no answer)"  # before the response hook saw this thread's answer
_LINE_BREAK = re.compile(r"[\r\n]")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Prometheus refuses a range query whose (end - start) / step exceeds 11,000.
MAX_POINTS = 11_000
# Where Prometheus puts the result type: `{"status":"success","data":{"resultType":"…"`.
_HEAD_BYTES = 96
_RESULT_TYPE_HEAD = re.compile(
    rb'\s*\{\s*"status"\s*:\s*"success"\s*,\s*"data"\s*:\s*\{\s*"resultType"\s*:\s*"(\w+)"'
)


@dataclass(frozen=True, kw_only=True)
class PrometheusSettings:
    """Where Prometheus is, how to authenticate, and how long one query may take.

    `timeout` bounds one HTTP attempt; `deadline` bounds all attempts of one query together.
    The repr shows neither the token, the password, header values nor URL credentials.
    """

    url: str = "http://localhost:9090"
    bearer_token: str | None = None
    username: str | None = None
    password: str | None = None
    ca_bundle: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)
    timeout: float = 2.0
    deadline: float = 6.0

    def __post_init__(self) -> None:
        # Registered first, so that no error below (nor any later text) can show them.
        register(self.bearer_token)
        for header, sent in self.headers.items():  # credentials; not a tenant ID (`redact`)
            register_header(header, sent)
        register_basic(self.username, self.password)  # the password, and as HTTP Basic
        register_url(self.url)
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            shown = mask_url(self.url)
            raise ValueError(f"url must be http(s)://host[:port][/prefix], got {shown}")
        for name, value in (("bearer_token", self.bearer_token), ("password", self.password)):
            if value is not None and _LINE_BREAK.search(value):
                raise ValueError(f"{name} contains a line break: check the file it is read from")
        for name, value in self.headers.items():
            if _LINE_BREAK.search(f"{name}{value}"):
                raise ValueError(f"header {name.strip()!r} contains a line break")
        if self.bearer_token is not None and self.username is not None:
            raise ValueError("set either bearer_token or username/password, not both")
        if self.password is not None and self.username is None:
            raise ValueError("password is set without username")
        if not self.timeout > 0 or not self.deadline > 0:
            raise ValueError("timeout and deadline must be positive (seconds)")

    def __repr__(self) -> str:
        hidden = dict.fromkeys(self.headers, "***")
        return (
            f"PrometheusSettings(url={mask_url(self.url)!r}, "
            f"bearer_token={_mask(self.bearer_token)}, username={self.username!r}, "
            f"password={_mask(self.password)}, ca_bundle={self.ca_bundle!r}, "
            f"headers={hidden!r}, timeout={self.timeout!r}, deadline={self.deadline!r})"
        )

    __str__ = __repr__


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
        settle(session, self._url)  # proxies, NO_PROXY, ~/.netrc: once, not per query
        # A redirect elsewhere is refused before requests follows it (with our headers).
        self._origin = _origin(self._url)
        # The client drops `resultType`; the hook keeps it for the thread that asked.
        self._answers = threading.local()
        session.hooks["response"].extend([self._refuse_other_origins, self._note_result_type])
        self._session, self._headers, self._auth = session, headers or None, auth
        # The last answer to each grouped query while someone holds it (see `_sample_pairs`).
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
        self._answers.result_type, self._answers.warnings = _UNSEEN, ()
        result = self._call(
            promql,
            lambda timeout: self._client.custom_query(promql, params=_STRICT, timeout=timeout),
        )
        self._refuse_warnings(promql)
        return _single_value(promql, self._answers.result_type, result)

    def query_series(self, promql: str, *, reuse: float = 0.0) -> SeriesSet:
        """Every series of the instant query `promql`, parsed once for all the checks that
        read it (a template's grouped query); `reuse` is for caching wrappers, ignored here.

        Raises `QueryError` when the answer is not an instant vector (or Prometheus rejects
        the query) and `SourceUnavailable` when Prometheus cannot be reached.
        """
        del reuse  # no answers kept here: `CoalescingSource` keeps them
        self._answers.result_type, self._answers.warnings = _UNSEEN, ()
        result = self._call(promql, lambda timeout: self._grouped_result(promql, timeout))
        self._refuse_warnings(promql)
        found = _series_set(promql, self._answers.result_type, result)
        self._previous[promql] = found
        return found

    def _grouped_result(self, promql: str, timeout: float) -> Any:
        """`custom_query(promql, params=_STRICT, timeout=timeout)`, the same request and the
        same errors, with each series of the answer decoded as a `(labels, value)` pair.

        Decoded as the client does, 10,000 series make some 40,000 objects per tick that are
        dropped at once (a dict, a list, a float and a string per series besides what is
        kept), fragmenting the allocator's arenas while the kept ones are made; decoded
        through `_sample_pairs`, each is dropped as soon as its series is read.
        """
        response = self._session.request(
            method="GET",
            url=f"{self._url}/api/v1/query",
            params={"query": promql, **_STRICT},
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
        like = self._previous.get(promql)
        hook = _sample_pairs(like.series if like is not None else ())
        return response.json(object_pairs_hook=hook)["data"]["result"]

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
                lambda timeout: self._client.custom_query("1", timeout=timeout),
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
        params = {**_STRICT, "start": _epoch(start), "end": _epoch(end)}
        self._answers.result_type, self._answers.warnings = _UNSEEN, ()
        result = self._call(
            promql,
            lambda timeout: self._client.custom_query_range(
                promql,
                start_time=start,
                end_time=end,
                step=_decimal(step.total_seconds()),
                params=params,
                timeout=timeout,
            ),
        )
        self._refuse_warnings(promql, "range query")
        if self._answers.result_type != "matrix":
            # What a proxy or an impostor would send; Prometheus answers a range with a matrix.
            raise QueryError(
                f"range query {promql!r}: the answer from {self._where} is of type "
                f"{self._answers.result_type!r}, not a matrix"
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

    def _call(
        self, promql: str, attempt: Callable[[float], _T], *, deadline: float | None = None
    ) -> _T:
        """`attempt(timeout)`, retried on transient failures until the deadline (the
        settings', unless given) runs out."""
        deadline = self._settings.deadline if deadline is None else deadline
        end = time.monotonic() + deadline
        attempts = 0

        def once() -> _T:
            nonlocal attempts
            attempts += 1
            timeout = max(min(self._settings.timeout, end - time.monotonic()), 0.01)
            try:
                return attempt(timeout)
            except Exception as exc:
                error = self._classify(promql, exc)
                if isinstance(exc, PrometheusApiClientException):
                    # Its text holds the raw response body, which may echo credentials.
                    raise error from None
                raise error from exc

        retrying = Retrying(
            retry=retry_if_exception_type(_Transient),
            stop=stop_before_delay(deadline),
            # 0.1, 0.2, 0.4, 0.8, 1, 1, ... s plus up to 0.1 s of jitter.
            wait=wait_exponential(multiplier=0.1, max=1.0) + wait_random(0, 0.1),
            before_sleep=self._log_retry,
            reraise=True,
        )
        started = time.monotonic()
        try:
            return retrying(once)
        except _Transient as exc:
            elapsed = time.monotonic() - started
            raise SourceUnavailable(
                scrub(
                    f"Prometheus at {self._where} gave no answer after {attempts} attempt(s) "
                    f"in {elapsed:.1f}s (deadline {deadline:g}s); last error: {exc}. "
                    "Check that it is running and reachable from here."
                )
            ) from exc

    def _classify(self, promql: str, exc: Exception) -> Exception:
        """The error to raise for a failed attempt; `_Transient` means "try again"."""
        if isinstance(exc, PrometheusApiClientException):
            return self._http_error(promql, str(exc))
        if isinstance(exc, _OtherOrigin):
            return QueryError(str(exc))
        exhausted = out_of_resources(exc)
        if exhausted is not None:  # not transient: retrying would only wait out the deadline
            return SourceUnavailable(f"cannot query Prometheus at {self._where}: {exhausted}")
        if isinstance(exc, requests.exceptions.SSLError):
            return SourceUnavailable(
                scrub(
                    f"TLS with Prometheus at {self._where} failed: {_cause(exc)}. If it uses a "
                    "private CA, set ca_bundle to that CA's certificate file."
                )
            )
        if isinstance(
            exc,
            requests.exceptions.ConnectionError
            | requests.exceptions.Timeout
            | requests.exceptions.ChunkedEncodingError,
        ):
            return _Transient(scrub(f"{type(exc).__name__}: {_cause(exc)}"))
        if isinstance(exc, ValueError | KeyError | TypeError):
            # A 200 whose body is not {"data": {"result": ...}}: a proxy or a wrong URL.
            return QueryError(
                f"the answer from {self._where} is not a Prometheus API response "
                f"({type(exc).__name__}); check the URL and any path prefix"
            )
        return SourceUnavailable(
            scrub(f"request to Prometheus at {self._where} failed: {_cause(exc)}")
        )

    def _http_error(self, promql: str, text: str) -> Exception:
        # Scrubbed before it is shortened: a secret cut in two would no longer be found.
        status, detail = _parse_client_error(scrub(text))
        detail = scrub(detail)
        if status is not None and (status >= 500 or status in _RETRIED_STATUSES):
            return _Transient(f"HTTP {status}: {detail}")
        if status in (401, 403):
            return SourceUnavailable(
                f"Prometheus at {self._where} refused the credentials (HTTP {status}: {detail}); "
                "check bearer_token / username / password / headers"
            )
        if status == 404:
            return SourceUnavailable(
                f"no Prometheus query API at {self._where}/api/v1/query (HTTP 404); "
                "check the URL and any path prefix"
            )
        return QueryError(f"Prometheus rejected query {promql!r} (HTTP {status}): {detail}")

    def _refuse_other_origins(
        self, response: requests.Response, *_args: Any, **_kwargs: Any
    ) -> None:
        """Response hook: raise `_OtherOrigin` for a redirect to another scheme, host or
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
        raise _OtherOrigin(
            scrub(
                f"Prometheus at {self._where} redirected the request to {mask_url(target)}, "
                "another server; redirects are followed only within the same scheme, host "
                "and port, so that credentials and headers never reach another server and no "
                "other server's answer is used: point --prometheus-url (prometheus.url) at "
                "the address that answers the API itself"
            )
        )

    def _note_result_type(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        """Response hook: remember the answer's `data.resultType` (None if it has none).

        Prometheus writes `{"status":"success","data":{"resultType":"vector",...` first:
        read there, a grouped answer of thousands of series is not decoded twice. Any other
        layout (a proxy that reorders keys) is decoded in full.
        """
        found: str | None = None
        warnings: tuple[str, ...] = ()
        if response.status_code == 200:
            content = response.content
            head = _RESULT_TYPE_HEAD.match(content[:_HEAD_BYTES])
            body: Any = None
            if head is not None:
                found = head.group(1).decode("ascii")
            if head is None or _WARNINGS_KEY in content:  # warnings are rare: decode then
                try:
                    body = response.json()
                except ValueError:
                    body = None
            if isinstance(body, dict):
                data = body.get("data")
                if head is None and isinstance(data, dict):
                    result_type = data.get("resultType")
                    found = result_type if isinstance(result_type, str) else None
                listed = body.get("warnings")
                if isinstance(listed, list) and listed:
                    noted = (str(w) for w in listed)
                    warnings = tuple(w for w in noted if not w.startswith(_INFO_PREFIX))
        self._answers.result_type = found
        self._answers.warnings = warnings

    def _refuse_warnings(self, promql: str, what: str = "query") -> None:
        """Raise `QueryError` when the answer to `promql` came with warnings (not counting
        the info-level notes older versions listed among them)."""
        warnings = getattr(self._answers, "warnings", ())
        if warnings:
            shown = "; ".join(warnings[:_SHOWN_SERIES])
            more = (
                f" and {len(warnings) - _SHOWN_SERIES} more"
                if len(warnings) > _SHOWN_SERIES
                else ""
            )
            raise QueryError(
                f"{what} {promql!r}: Prometheus answered with warnings, so its data may be "
                f"partial, and it is not used: {shown}{more}"
            )

    def _log_retry(self, state: RetryCallState) -> None:
        outcome = state.outcome
        error = outcome.exception() if outcome is not None else None
        _LOG.debug(
            "Prometheus at %s: attempt %d failed (%s); retrying in %.2fs",
            self._where,
            state.attempt_number,
            error,
            state.upcoming_sleep,
        )


class _Transient(Exception):
    """A failed attempt that another attempt may fix (refused, reset, timeout, 5xx, 429)."""


class _OtherOrigin(Exception):
    """A redirect to another origin than Prometheus' own, refused (never retried)."""


def _origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of `url`, with the scheme's default port; None if unreadable."""
    parts = urlsplit(url)
    try:
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return None
    return parts.scheme, parts.hostname or "", port


def _single_value(promql: str, result_type: str | None, result: Any) -> float:
    """The one finite value in `custom_query`'s result, or a `QueryError` saying why not.

    `result_type` is the answer's `resultType`; it must be the expression's own type
    (vector or scalar), or, when that type cannot be worked out, one of those two.
    """
    expected = _expression_type(promql)
    if expected == "string":
        raise QueryError(f"query {promql!r} returns a string, not a number")
    if expected == "matrix" or (expected is None and result_type == "matrix"):
        raise QueryError(
            f"query {promql!r} returns a range vector (matrix); a check needs one instant "
            "value: wrap it in a function such as avg_over_time(...[5m]) or rate(...[5m])"
        )
    if result_type not in _NUMERIC_TYPES or (expected is not None and result_type != expected):
        got = "no resultType" if result_type is None else f"a {result_type} result"
        wanted = f"a {expected}" if expected else "a vector or a scalar"
        raise QueryError(
            f"query {promql!r}: Prometheus answered with {got} where the expression gives "
            f"{wanted}; a value of the wrong type is never used (is a proxy or an "
            "incompatible server answering in Prometheus' place?)"
        )
    if result_type == "scalar":
        if not _is_sample(result):
            raise QueryError(f"query {promql!r}: unexpected scalar shape from Prometheus")
        return _finite(promql, result[1], "the scalar result")
    if not isinstance(result, list) or not all(isinstance(s, dict) for s in result):
        raise QueryError(f"query {promql!r}: unexpected result shape from Prometheus")
    if not result:
        raise QueryError(
            f"query {promql!r} returned no series: check the metric name and label matchers "
            "(and that the series has a sample within the last 5 minutes)"
        )
    if len(result) > 1:
        shown = ", ".join(_labels(s.get("metric")) for s in result[:_SHOWN_SERIES])
        more = f" and {len(result) - _SHOWN_SERIES} more" if len(result) > _SHOWN_SERIES else ""
        raise QueryError(
            f"query {promql!r} returned {len(result)} series ({shown}{more}); a check needs "
            "exactly one: aggregate with sum()/max()/avg() or add label matchers"
        )
    series = result[0]
    value = series.get("value")
    if not _is_sample(value):
        raise QueryError(f"query {promql!r}: unexpected sample shape from Prometheus")
    return _finite(promql, value[1], _labels(series.get("metric")))


def _series_set(promql: str, result_type: str | None, result: Any) -> SeriesSet:
    """Every series of an instant-vector answer, values as floats (NaN and ±Inf included:
    each target's `pick` judges its own)."""
    if result_type != "vector":
        got = "no resultType" if result_type is None else f"a {result_type} result"
        raise QueryError(
            f"grouped query {promql!r}: Prometheus answered with {got}; a query shared with "
            "group_by must give an instant vector, one series per target (e.g. sum by (job) ...)"
        )
    try:
        series = [
            s if isinstance(s, tuple) else (dict(s["metric"]), float(s["value"][1])) for s in result
        ]
    except (TypeError, KeyError, ValueError, IndexError, AttributeError):
        raise QueryError(
            f"grouped query {promql!r}: unexpected result shape from Prometheus"
        ) from None
    return SeriesSet(query=promql, series=series)


def _sample_pairs(like: Sequence[tuple[Labels, float]] = ()) -> Hook:
    """A JSON object hook for an instant-vector answer: a series, `{"metric": {...},
    "value": [t, "v"]}`, becomes `(labels, float(v))`; any other object, or one whose value
    does not convert, stays the dict `json` makes (and `_series_set` judges it as before).

    A series is told apart by its types: labels map names to strings, a series maps
    "metric" to an object and "value" to an array. The labels of the N-th series are the
    labels dict of the N-th series of `like` (the previous answer to the query) when equal:
    an answer with the same series as the one before makes no new label dict to keep.
    """
    position = 0

    def hook(pairs: list[tuple[str, Any]]) -> Any:
        nonlocal position
        if len(pairs) == 2:  # no dict of the two first: 10,000 of them per answer
            (first, one), (second, other) = pairs
            labels, value = (
                (one, other)
                if (first, second) == ("metric", "value")
                else (other, one)
                if (first, second) == ("value", "metric")
                else (None, None)
            )
            if isinstance(labels, dict) and isinstance(value, list) and len(value) == 2:
                try:
                    sample = labels, float(value[1])
                except (TypeError, ValueError):
                    pass
                else:
                    position += 1
                    return sample
        found = dict(pairs)
        if position < len(like) and like[position][0] == found:
            return like[position][0]  # `found` (the same labels) is dropped at once
        return found

    return hook


def _finite(promql: str, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise QueryError(f"query {promql!r}: {what} is {text!r}, not a number") from None
    if math.isnan(value):
        raise QueryError(
            f"query {promql!r}: {what} is NaN (often 0/0, e.g. a ratio of rates with no "
            "traffic); make the query defined for that case"
        )
    if math.isinf(value):
        raise QueryError(
            f"query {promql!r}: {what} is {text} (often a division by zero); "
            "make the query defined for that case"
        )
    return value


def _is_sample(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], int | float)
        and isinstance(value[1], str)
    )


@lru_cache(maxsize=4096)
def _expression_type(promql: str) -> str | None:
    """The type PromQL gives `promql`: "vector", "scalar", "matrix", "string", or None.

    None when the text does not parse offline; cached, since every check asks again at
    every evaluation.
    """
    try:
        return _type_of(promql_parser.parse(promql))
    except ValueError:
        return None


def _type_of(expr: Any) -> str | None:
    """The value type of a parsed expression (Prometheus' own typing rules)."""
    if isinstance(expr, promql_parser.ParenExpr | promql_parser.UnaryExpr):
        return _type_of(expr.expr)
    if isinstance(expr, promql_parser.NumberLiteral):
        return "scalar"
    if isinstance(expr, promql_parser.StringLiteral):
        return "string"
    if isinstance(expr, promql_parser.VectorSelector | promql_parser.AggregateExpr):
        return "vector"
    if isinstance(expr, promql_parser.MatrixSelector | promql_parser.SubqueryExpr):
        return "matrix"
    if isinstance(expr, promql_parser.Call):
        returned = expr.func.return_type
        return next((name for kind, name in _TYPE_NAMES if kind == returned), None)
    if isinstance(expr, promql_parser.BinaryExpr):
        sides = (_type_of(expr.lhs), _type_of(expr.rhs))
        if None in sides:
            return None
        return "scalar" if sides == ("scalar", "scalar") else "vector"
    return None


# promql-parser's ValueType members compare equal but do not hash.
_TYPE_NAMES = (
    (promql_parser.ValueType.Vector, "vector"),
    (promql_parser.ValueType.Scalar, "scalar"),
    (promql_parser.ValueType.Matrix, "matrix"),
    (promql_parser.ValueType.String, "string"),
)


def _labels(metric: Any) -> str:
    """`name{a="1", b="2"}`, the way Prometheus shows a series."""
    if not isinstance(metric, dict):
        return "{}"
    name = str(metric.get("__name__", ""))
    pairs = ", ".join(f"{k}={str(v)!r}" for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{pairs}}}"


def _parse_client_error(text: str) -> tuple[int | None, str]:
    """Status and Prometheus' own error text from the client's "HTTP Status Code N (b'…')"."""
    match = _CLIENT_ERROR.match(text)
    if match is None:
        return None, text[:_MAX_CAUSE]
    status = int(match.group(1))
    try:
        body = ast.literal_eval(match.group(2))
        detail = json.loads(body)["error"]
    except (ValueError, SyntaxError, KeyError, TypeError):
        try:
            detail = ast.literal_eval(match.group(2)).decode("utf-8", "replace").strip()
        except (ValueError, SyntaxError, AttributeError):
            detail = match.group(2)
    return status, str(detail)[:_MAX_CAUSE] or "(empty body)"


def _cause(exc: BaseException) -> str:
    """The innermost useful reason of a requests/urllib3 error, shortened."""
    reason: object = exc
    while isinstance(reason, Exception) and reason.args:
        inner = getattr(reason.args[0], "reason", reason.args[0])
        if not isinstance(inner, Exception):
            break
        reason = inner
    return scrub(str(reason))[:_MAX_CAUSE]


def _mask(secret: str | None) -> str:
    return "None" if secret is None else "'***'"


# --- range queries --------------------------------------------------------------------------


@dataclass(frozen=True)
class RangeSeries:
    """One series of a range query: its labels and its samples as (epoch seconds, value)."""

    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]


def range_chunks(
    start: datetime, end: datetime, step: timedelta, max_points: int = MAX_POINTS
) -> list[tuple[datetime, datetime]]:
    """`[start, end]` on a grid of `step` cut into pieces of at most `max_points` instants.

    The pieces share the grid and do not overlap: the first instant of a piece is one step
    after the last instant of the one before. An `end` before `start` gives no piece.
    """
    if step <= timedelta(0):
        raise ValueError(f"step must be positive, got {step}")
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, got {max_points}")
    if end < start:
        return []
    count = (end - start) // step + 1
    return [
        (start + first * step, start + (min(first + max_points, count) - 1) * step)
        for first in range(0, count, max_points)
    ]


def _epoch(instant: datetime) -> str:
    """Seconds since the epoch with millisecond precision, as Prometheus reads them."""
    return _decimal(instant.timestamp())


def _decimal(seconds: float) -> str:
    """`60`, `1.5`, `1767225600.25`: a plain decimal (never `1e+06`), to the millisecond."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")
