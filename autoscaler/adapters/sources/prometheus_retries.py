"""One query's attempts: retried within a deadline while another attempt may help, and
each failure turned into the error that says what to do about it.

prometheus-api-client's own urllib3 retries are switched off (`PrometheusSource`): the
retries are tenacity's, here, bounded by a deadline for all attempts together, and only
for failures another attempt can fix (`Transient`: refused, reset, timeout, 5xx, 408, 429).
A non-200 answer reaches us as `PrometheusApiClientException("HTTP Status Code N (b'body')")`
with no attributes: the status and Prometheus' error text are parsed back from that text.
Every message is scrubbed of secrets.
"""

from __future__ import annotations

import ast
import json
import logging
import re
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import requests
from prometheus_api_client.exceptions import PrometheusApiClientException
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_before_delay,
    wait_exponential,
    wait_random,
)

from autoscaler.adapters.exhausted import out_of_resources
from autoscaler.adapters.sources.prometheus_settings import PrometheusSettings
from autoscaler.errors import QueryError, SourceUnavailable
from autoscaler.redact import scrub

__all__ = ["OtherOrigin", "Transient", "call", "classify"]

# The adapter's logger: the retry lines keep the name they have always been logged under.
_LOG = logging.getLogger("autoscaler.adapters.sources.prometheus")
_T = TypeVar("_T")
# 408/429 and every 5xx (Prometheus answers 503 while starting and for query timeouts).
_RETRIED_STATUSES = frozenset({408, 429})
_CLIENT_ERROR = re.compile(r"^HTTP Status Code (\d{3}) \((b(['\"]).*\3)\)$", re.DOTALL)
_MAX_CAUSE = 300


class Transient(Exception):
    """A failed attempt that another attempt may fix (refused, reset, timeout, 5xx, 429);
    `after`: the seconds its answer asked to wait before the next one (`Retry-After`)."""

    after: float | None = None
    status: int | None = None  # the HTTP status Prometheus (or a proxy) answered, if any


class OtherOrigin(Exception):
    """A redirect to another origin than Prometheus' own, refused (never retried)."""


def call(
    promql: str,
    attempt: Callable[[float], _T],
    *,
    settings: PrometheusSettings,
    where: str,
    deadline: float | None = None,
    retry_after: Callable[[], float | None] | None = None,
) -> _T:
    """`attempt(timeout)`, retried on transient failures until the deadline (the
    settings', unless given) runs out; errors say Prometheus is at `where`.

    `retry_after()`, called after a failed attempt, gives the seconds its answer asked to
    wait (`Retry-After` of a 429 or 503), if any: the next attempt waits at least that
    long, and none is made when that is past the deadline.
    """
    deadline = settings.deadline if deadline is None else deadline
    end = time.monotonic() + deadline
    attempts = 0

    def once() -> _T:
        nonlocal attempts
        attempts += 1
        timeout = max(min(settings.timeout, end - time.monotonic()), 0.01)
        try:
            return attempt(timeout)
        except Exception as exc:
            error = classify(promql, exc, where)
            # Only an answer (an HTTP status) has headers: a connection error has none, and
            # what `retry_after` says then is an earlier attempt's.
            answered = isinstance(exc, PrometheusApiClientException)
            after = retry_after() if retry_after is not None and answered else None
            if isinstance(error, Transient) and after is not None:
                error = Transient(f"{error} (Retry-After: {after:g}s)")
                error.after = after
            if isinstance(exc, PrometheusApiClientException):
                # Its text holds the raw response body, which may echo credentials.
                raise error from None
            raise error from exc

    retrying = Retrying(
        retry=retry_if_exception_type(Transient),
        stop=stop_before_delay(deadline),
        # 0.1, 0.2, 0.4, 0.8, 1, 1, ... s plus up to 0.1 s of jitter, or what the answer
        # asked (then stopped at once when that is past the deadline).
        wait=_heeding_retry_after,
        before_sleep=partial(_log_retry, where),
        reraise=True,
    )
    started = time.monotonic()
    try:
        return retrying(once)
    except Transient as exc:
        elapsed = time.monotonic() - started
        raise SourceUnavailable(
            scrub(
                f"Prometheus at {where} gave no answer after {attempts} attempt(s) "
                f"in {elapsed:.1f}s (deadline {deadline:g}s); last error: {exc}. "
                "Check that it is running and reachable from here."
            )
        ) from exc


_BACKOFF = wait_exponential(multiplier=0.1, max=1.0) + wait_random(0, 0.1)


def _heeding_retry_after(state: RetryCallState) -> float:
    """The backoff, or the wait the failed attempt's answer asked for when longer."""
    waited = _BACKOFF(state)
    outcome = state.outcome
    after = getattr(outcome.exception(), "after", None) if outcome is not None else None
    return waited if after is None else max(waited, after)


def classify(promql: str, exc: Exception, where: str) -> Exception:
    """The error to raise for a failed attempt; `Transient` means "try again"."""
    if isinstance(exc, PrometheusApiClientException):
        return _http_error(promql, str(exc), where)
    if isinstance(exc, OtherOrigin):
        return QueryError(str(exc))
    exhausted = out_of_resources(exc)
    if exhausted is not None:  # not transient: retrying would only wait out the deadline
        return SourceUnavailable(f"cannot query Prometheus at {where}: {exhausted}")
    if isinstance(exc, requests.exceptions.SSLError):
        return SourceUnavailable(
            scrub(
                f"TLS with Prometheus at {where} failed: {_cause(exc)}. If it uses a "
                "private CA, set ca_bundle to that CA's certificate file; if it asks for a "
                "client certificate (mutual TLS), set client_cert and client_key."
            )
        )
    if isinstance(
        exc,
        requests.exceptions.ConnectionError
        | requests.exceptions.Timeout
        | requests.exceptions.ChunkedEncodingError,
    ):
        return Transient(scrub(f"{type(exc).__name__}: {_cause(exc)}"))
    if isinstance(exc, ValueError | KeyError | TypeError):
        # A 200 whose body is not {"data": {"result": ...}}: a proxy or a wrong URL.
        return QueryError(
            f"the answer from {where} is not a Prometheus API response "
            f"({type(exc).__name__}); check the URL and any path prefix"
        )
    return SourceUnavailable(scrub(f"request to Prometheus at {where} failed: {_cause(exc)}"))


def _http_error(promql: str, text: str, where: str) -> Exception:
    # Scrubbed before it is shortened: a secret cut in two would no longer be found.
    status, detail = _parse_client_error(scrub(text))
    detail = scrub(detail)
    if status is not None and (status >= 500 or status in _RETRIED_STATUSES):
        answered = Transient(f"HTTP {status}: {detail}")
        answered.status = status
        return answered
    if status in (401, 403):
        return SourceUnavailable(
            f"Prometheus at {where} refused the credentials (HTTP {status}: {detail}); "
            "check bearer_token / username / password / headers"
        )
    if status == 404:
        return SourceUnavailable(
            f"no Prometheus query API at {where}/api/v1/query (HTTP 404); "
            "check the URL and any path prefix"
        )
    return QueryError(f"Prometheus rejected query {promql!r} (HTTP {status}): {detail}")


def _log_retry(where: str, state: RetryCallState) -> None:
    outcome = state.outcome
    error = outcome.exception() if outcome is not None else None
    _LOG.debug(
        "Prometheus at %s: attempt %d failed (%s); retrying in %.2fs",
        where,
        state.attempt_number,
        error,
        state.upcoming_sleep,
    )


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
