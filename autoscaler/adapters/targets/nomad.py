"""Scales one Nomad task group through Nomad's job scale API, with python-nomad.

Nomad records every scale request as an event on the job, refuses a scale while a deployment
of the job is active, and guards jobs with ACL capabilities; this adapter turns each of those
into the controller's vocabulary (`TargetStatus`, `TargetBusy`, `TargetForbidden`, ...).
Two python-nomad traps are handled here on purpose: it does not verify TLS certificates by
default (we do), and it reads NOMAD_* variables behind our back (we pass every setting
explicitly, so `NomadSettings` is the single source of truth). NOMAD_ADDR may carry
`user:password@`; it is shown redacted everywhere (`nomad_errors`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import replace as _replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import nomad.api
import requests
from nomad.api.exceptions import BaseNomadException
from requests.adapters import HTTPAdapter
from tenacity import (
    Retrying,
    retry_if_exception,
    wait_exponential_jitter,
)

from autoscaler.adapters import send_by
from autoscaler.adapters.deadline import Budget, after_unanswered, monotonic
from autoscaler.adapters.exhausted import out_of_resources
from autoscaler.adapters.http_env import ca_bundle, settle
from autoscaler.adapters.targets.moved import Landed, landed_or_moved, moved_since
from autoscaler.adapters.targets.nomad_errors import (
    NETWORK_ERRORS,
    NO_REGION_PATH,
    is_transient,
    redact_address,
    request_path,
    scrub,
    short,
)
from autoscaler.adapters.targets.nomad_watch import JobWatch, Token
from autoscaler.core.model import NomadTarget, TargetStatus
from autoscaler.errors import (
    TargetBusy,
    TargetDeadline,
    TargetError,
    TargetForbidden,
    TargetNotFound,
    TargetUnavailable,
)
from autoscaler.redact import register, register_url

log = logging.getLogger(__name__)

# Deployment states Nomad counts as active (`Deployment.Active()` in nomad/structs): while the
# latest deployment is in one of these, Nomad answers a scale with HTTP 400.
ACTIVE_DEPLOYMENT_STATES = frozenset(
    {"running", "pending", "paused", "blocked", "unblocking", "initializing"}
)
_ENDED_DEPLOYMENT_STATES = frozenset({"successful", "failed", "cancelled"})
_DEPLOYMENT_BLOCKED = "job scaling blocked due to active deployment"
_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})  # Go's strconv.ParseBool
_FALSE = frozenset({"0", "f", "F", "false", "FALSE", "False"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Connections kept open per Nomad server for reuse; more may be open while requests are in
# flight (one per concurrent evaluation), and are closed when they are returned.
POOL_SIZE = 16


@dataclass(frozen=True, kw_only=True)
class NomadSettings:
    """How to reach Nomad: address, ACL token, TLS, default namespace/region, time limits.

    `timeout` bounds one HTTP attempt; `deadline` bounds one call including its retries.
    The token never appears in `repr`/`str`, nor the address's `user:password@`.
    """

    address: str = "http://127.0.0.1:4646"
    token: str | None = None
    namespace: str | None = None
    region: str | None = None
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    skip_verify: bool = False
    timeout: float = 5.0
    deadline: float = 10.0

    def __repr__(self) -> str:
        token = "'<hidden>'" if self.token else "None"
        return (
            f"NomadSettings(address={redact_address(self.address)!r}, token={token}, "
            f"namespace={self.namespace!r}, region={self.region!r}, ca_cert={self.ca_cert!r}, "
            f"client_cert={self.client_cert!r}, client_key={self.client_key!r}, "
            f"skip_verify={self.skip_verify}, timeout={self.timeout}, deadline={self.deadline})"
        )

    __str__ = __repr__

    def __post_init__(self) -> None:
        # Registered first: from now on no text that leaves the process can show them.
        register(self.token)
        register_url(self.address)
        if self.token is not None and ("\n" in self.token or "\r" in self.token):
            raise TargetError("NOMAD_TOKEN contains a line break: set the token alone")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NomadSettings:
        """Settings from the standard Nomad variables (NOMAD_ADDR, NOMAD_TOKEN, ...).

        Unset or empty variables keep the defaults. Raises `TargetError` when
        NOMAD_SKIP_VERIFY is not a boolean.
        """
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            return env.get(name) or None

        skip = get("NOMAD_SKIP_VERIFY")
        if skip is not None and skip not in _TRUE | _FALSE:
            # The value is not shown: a token pasted into the wrong variable is still a token.
            raise TargetError("NOMAD_SKIP_VERIFY is not a boolean: use true or false")
        return cls(
            address=get("NOMAD_ADDR") or cls.address,
            token=get("NOMAD_TOKEN"),
            namespace=get("NOMAD_NAMESPACE"),
            region=get("NOMAD_REGION"),
            ca_cert=get("NOMAD_CACERT"),
            client_cert=get("NOMAD_CLIENT_CERT"),
            client_key=get("NOMAD_CLIENT_KEY"),
            skip_verify=skip in _TRUE,
        )

    def verify(self) -> bool | str:
        """What `requests` gets as `verify`: the CA path, True (system CAs), or False."""
        if self.skip_verify:
            return False
        return self.ca_cert or True

    def cert(self) -> tuple[str, str] | str | tuple[()]:
        """What `requests` gets as `cert`: (cert, key), a combined PEM path, or nothing."""
        if self.client_cert and self.client_key:
            return (self.client_cert, self.client_key)
        if self.client_key:
            raise TargetError("NOMAD_CLIENT_KEY is set without NOMAD_CLIENT_CERT: set both")
        return self.client_cert or ()


_sessions: dict[NomadSettings, requests.Session] = {}
_sessions_lock = threading.Lock()


def shared_session(settings: NomadSettings) -> requests.Session:
    """The one HTTP session (connection pool) for Nomad reached with `settings`.

    Every `NomadScaler` of the same server and credentials shares it, so the sockets held
    open are bounded by the requests in flight (at most `POOL_SIZE` kept for reuse), not by
    the number of targets: one session per target once held a socket each and ran out of
    file descriptors at 1,021 targets. `requests` sessions are safe to share between
    threads for plain requests like ours (no cookies, no per-session auth).
    """
    with _sessions_lock:
        session = _sessions.get(settings)
        if session is None:
            session = requests.Session()
            adapter = _SendByAdapter(pool_connections=1, pool_maxsize=POOL_SIZE)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            # Proxies, NO_PROXY and ~/.netrc once, not on every request (`http_env`).
            _sessions[settings] = settle(session, settings.address)
        return session


class _SendByAdapter(HTTPAdapter):
    """requests' adapter whose connections, pooled or through a proxy, neither open nor
    write a request at or after its caller's deadline (`send_by`)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _checked(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        known = proxy in self.proxy_manager  # requests asks at every proxied request
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        return manager if known else _checked(manager)


def _checked(manager: Any) -> Any:
    """`manager` (a urllib3 pool manager) making `send_by` connections."""
    manager.pool_classes_by_scheme = send_by.checked_pools(manager.pool_classes_by_scheme)
    return manager


_job_apis: dict[tuple[NomadSettings, bool | str], nomad.api.Job] = {}


def _job_api(settings: NomadSettings, session: requests.Session | None) -> nomad.api.Job:
    """The python-nomad `Job` endpoint for `settings`: with the shared session, one per
    settings (and CA bundle) for every target, as it only holds the connection's settings
    (namespace and region go in each request's parameters); 2 objects and 180 bytes per
    target before, 1.8 MB at 10,000 targets.

    nomad.api.Job instead of nomad.Nomad: the latter falls back to NOMAD_* variables for
    every unset argument, so settings built in code would silently mix with the env.
    """
    # Passed with each request, so the environment's CA bundle is resolved here.
    verify = ca_bundle(settings.verify())

    def build(session: requests.Session) -> nomad.api.Job:
        return nomad.api.Job(
            address=settings.address.rstrip("/"),
            token=settings.token,
            timeout=settings.timeout,
            verify=verify,
            cert=settings.cert(),
            session=session,
        )

    if session is not None:
        return build(session)
    with _sessions_lock:
        api = _job_apis.get((settings, verify))
    if api is None:
        api = build(shared_session(settings))
        with _sessions_lock:
            api = _job_apis.setdefault((settings, verify), api)
    return api


@dataclass(frozen=True, slots=True)
class _Seen:
    """What `status` needs of the job as read at `indexes` (its CreateIndex and
    ModifyIndex), and whether the deployment of its version (`version`, the job's
    JobModifyIndex) has ended. Valid while the scale status shows the same indexes: its
    `JobModifyIndex` is the job's ModifyIndex, which any change to the job moves (a
    register, stop or scale, and also its status, or its version marked stable). Compared
    with the job's own JobModifyIndex, which only a new version moves, they never matched
    again once a deployment succeeded, and every status read all three.

    Only these few values are kept, not the job: a whole job (tasks, their configs,
    services, constraints, meta: kilobytes of JSON) kept per target held about a fifth of
    the service's memory at 10,000 targets, and even its few fields in dicts 0.5 KB each.
    """

    indexes: tuple[Any, Any]
    version: Any
    stop: bool
    count: int  # the group's Count in the job (the scale status' Desired wins over it)
    min_size: int | None  # the group's `scaling { min max }`
    max_size: int | None
    ended: bool


def placement(ref: NomadTarget, settings: NomadSettings) -> tuple[str, str | None]:
    """The namespace and region `ref` is read and scaled in: the policy's win over the
    settings' (NOMAD_NAMESPACE / NOMAD_REGION); no region means the agent's own."""
    return ref.namespace or settings.namespace or "default", ref.region or settings.region


class NomadScaler:
    """A `ScalingTarget` for one task group of one Nomad job.

    The target's namespace and region (from the policy) win over the settings' defaults
    (NOMAD_NAMESPACE / NOMAD_REGION); both go in the query string of every request.
    """

    def __init__(
        self,
        ref: NomadTarget,
        settings: NomadSettings,
        *,
        session: requests.Session | None = None,
        watch: JobWatch | None = None,
    ) -> None:
        self._ref = ref
        self._settings = settings
        # With `watch` (the service), a steady status is kept while no event about the job
        # arrives (`nomad_watch`); `plan` and other one-off reads read every time.
        self._watch = watch
        self._kept: tuple[Token, TargetStatus] | None = None
        self._namespace, self._region = placement(ref, settings)
        self._shown_address = redact_address(settings.address)
        self._seen: _Seen | None = None  # the job as last read, while it is unchanged
        if settings.skip_verify and settings.address.startswith("https"):
            log.warning(
                "TLS certificate verification is OFF for Nomad at %s (NOMAD_SKIP_VERIFY): "
                "anyone on the path can read the ACL token; set NOMAD_CACERT instead",
                self._shown_address,
            )
        self._api = _job_api(settings, session)

    def __repr__(self) -> str:
        return f"NomadScaler({self._ref}, address={self._shown_address!r})"

    # --- ScalingTarget ------------------------------------------------------------------

    def status(self) -> TargetStatus:
        """The group's count and bounds, whether it may be scaled now, and the last count change.

        The bounds are the group's `scaling { min max }` block, which Nomad enforces on every
        scale request whether or not the block is `enabled`; None where the group has none.

        Without a watch, one GET per call in the steady state: the scale status (count,
        events, the job's indexes) is always read; the job itself and its latest deployment
        only when the job changed since they were read (`_Seen`). With a watch, none while
        the job's event stream vouches that nothing happened to the job since a status that
        was ready, with its version's deployment ended, was read (`nomad_watch`).

        Raises `TargetNotFound` for a missing job or group, `TargetError` for a periodic,
        parameterized, system or sysbatch job, and the errors of `_call` for API failures.
        """
        token = self._watch.token(self._ref.job) if self._watch is not None else None
        kept = self._kept
        if token is not None and kept is not None and kept[0] == token:
            return kept[1]
        self._kept = None
        status, steady = self._read()
        if token is not None and steady:
            self._kept = (token, status)
        return status

    def _read(self) -> tuple[TargetStatus, bool]:
        """The status read from Nomad, and whether only a job event can change it: ready,
        and its version's deployment ended (none can start without a new version)."""
        ref = self._ref
        scale = self._get("scale")
        indexes = (scale.get("JobCreateIndex"), scale.get("JobModifyIndex"))
        seen = self._seen if self._seen is not None and self._seen.indexes == indexes else None
        if seen is None:
            job = self._get("")
            seen = self._group_of(job, (job.get("CreateIndex"), job.get("ModifyIndex")))
            # Kept only when the job read is the version the scale status spoke of.
            fits = None not in indexes and indexes == seen.indexes
        else:
            fits = True
        group_status = (scale.get("TaskGroups") or {}).get(ref.group)
        if group_status is not None and group_status.get("Desired") is not None:
            count = int(group_status["Desired"])
        else:
            count = seen.count
        last_scaled_at = _last_count_change((group_status or {}).get("Events"))
        hold, ended = self._hold_reason(seen, scale)
        if not fits:
            self._seen = None
        else:  # a new record only when something in it changed
            self._seen = seen if seen.ended == ended else _replace(seen, ended=ended)
        status = TargetStatus(
            count=count,
            ready=hold is None,
            not_ready_reason=hold,
            min_size=seen.min_size,
            max_size=seen.max_size,
            last_scaled_at=last_scaled_at,
        )
        return status, hold is None and ended and fits

    def _group_of(self, job: Mapping[str, Any], indexes: tuple[Any, Any]) -> _Seen:
        """What `status` needs of `job` (not yet knowing whether its deployment ended).

        Raises `TargetError` for a job whose count sets no number of instances (periodic,
        parameterized, system, sysbatch), `TargetNotFound` when the job has no such group.
        """
        ref = self._ref
        if job.get("Periodic") or job.get("ParameterizedJob"):
            kind = "periodic" if job.get("Periodic") else "parameterized"
            raise TargetError(
                f"job '{ref.job}' is {kind}: it launches child jobs and has no long-running "
                "count to scale; point the policy at a service job"
            )
        # Nomad refuses a system job's count above 1 only when a scale is sent, and takes a
        # sysbatch job's without placing more: neither runs as many instances as its count.
        if job.get("Type") in ("system", "sysbatch"):
            raise TargetError(
                f"job '{ref.job}' is of type {job['Type']}: it runs on every eligible node "
                "whatever its count, so it has no count to scale; point the policy at a "
                "service job"
            )
        groups = {g.get("Name"): g for g in job.get("TaskGroups") or []}
        if ref.group not in groups:
            names = ", ".join(sorted(str(n) for n in groups)) or "none"
            raise TargetNotFound(
                f"task group '{ref.group}' not found in job '{ref.job}'; groups: {names}"
            )
        group = groups[ref.group]
        bounds = group.get("Scaling") or {}
        return _Seen(
            indexes=indexes,
            version=job.get("JobModifyIndex"),
            stop=bool(job.get("Stop")),
            count=int(group.get("Count") or 0),
            min_size=_bound(bounds.get("Min")),
            max_size=_bound(bounds.get("Max")),
            ended=False,
        )

    def scale(
        self,
        count: int,
        *,
        reason: str,
        meta: Mapping[str, str],
        expected: int | None = None,
        deadline: float | None = None,
    ) -> None:
        """Set the group's count with a scale request Nomad records as an event.

        With `expected`, the group's count is read first (one GET of the scale status) and
        a count someone changed since (`nomad job scale`, a new job version) is
        `TargetBusy`; Nomad's scale request has no condition, so this narrows the race to
        the two requests, and so is a job stopped since. With `expected`, a scale request
        retried (5xx, connection errors: for seconds, perhaps) reads the scale status again
        first (`_again`): sent again only while the job runs and the group still has
        `expected`, done when it has `count` (an earlier attempt landed), `TargetBusy` when
        someone else moved it meanwhile. Raises `TargetBusy` when Nomad refuses because a
        deployment is active, and the errors of `_call` otherwise. With `deadline`, no
        request is sent (nor retried) at or after it (`TargetDeadline`).
        """
        if count < 0:
            raise TargetError(f"cannot scale {self._ref} to {count}: counts are >= 0")
        self._kept = None  # our own change: read it back next time, event or not
        if expected is not None:
            now = self._desired(deadline=deadline)
            if now is not None:
                moved_since(str(self._ref), "count", expected, now, count)
        policy = meta.get("autoscaler.policy")
        message = reason if not policy or policy in reason else f"policy {policy}: {reason}"
        body = {
            "Count": count,
            "Target": {"Group": self._ref.group},
            "Message": message,
            "Meta": dict(meta),
            "PolicyOverride": False,
        }
        try:
            answer = self._call(
                "scale-job",
                lambda timeout: self._api.request(
                    self._job_path,
                    "scale",
                    method="post",
                    params=self._params(),
                    json=body,
                    timeout=timeout,
                ),
                deadline=deadline,
                again=None if expected is None else lambda b: self._again(b, expected, count),
            )
        except Landed:
            log.info(
                "scaled %s to %d (an earlier attempt landed, its answer lost)", self._ref, count
            )
            return
        log.info(
            "scaled %s to %d (eval %s)", self._ref, count, (answer or {}).get("EvalID") or "none"
        )

    def _again(self, budget: Budget, before: int, count: int) -> None:
        """Return when the scale request to `count` may be sent again: the job, read afresh
        within the call's `budget`, runs and its group still has the count `before` it (or
        the scale status lacks the group, as for the first attempt); see
        `moved.landed_or_moved` (and `TargetBusy` when the job was stopped meanwhile)."""
        now = self._desired(budget=budget)
        if now is None:
            return
        landed_or_moved(str(self._ref), "count", before, now, count)

    def _desired(
        self, *, deadline: float | None = None, budget: Budget | None = None
    ) -> int | None:
        """The group's count in a fresh scale status (None when it lacks the group);
        `TargetBusy` when the job was stopped since it was read: Nomad would start it again
        with our count (its scale request has no such check)."""
        scale = self._get("scale", deadline=deadline, budget=budget)
        if scale.get("JobStopped"):
            raise TargetBusy(f"job '{self._ref.job}' was stopped: not scaled")
        group = (scale.get("TaskGroups") or {}).get(self._ref.group) or {}
        return None if group.get("Desired") is None else int(group["Desired"])

    # --- reading -------------------------------------------------------------------------

    def _hold_reason(self, seen: _Seen, scale: Mapping[str, Any]) -> tuple[str | None, bool]:
        """Why the group must not be touched now (stopped job, active deployment), or None;
        and whether this version of the job has a deployment that ended.

        `seen.ended` says that was already seen for this version: Nomad starts a deployment
        only for a new version of a job (a register or a scale, both of which change its
        `JobModifyIndex`), never a second one for a version whose deployment ended, so the
        deployment is not read again until the job changes.
        """
        if seen.stop or scale.get("JobStopped"):
            return f"job '{self._ref.job}' is stopped", False
        if seen.ended:
            return None, True
        deployment = self._get("deployment")
        if not deployment:
            return None, False  # none yet: the version's deployment may still be created
        state = str(deployment.get("Status", ""))
        # Nomad only blocks on a deployment of this incarnation of the job (same CreateIndex).
        same_job = deployment.get("JobCreateIndex") in (None, seen.indexes[0])
        if state in ACTIVE_DEPLOYMENT_STATES and same_job:
            ident = str(deployment.get("ID", ""))[:8]
            return (
                f"deployment {ident} of job '{self._ref.job}' is {state}; "
                "Nomad refuses scaling until it ends"
            ), False
        # A deployment names its version by the job's JobModifyIndex as JobSpecModifyIndex
        # (its own JobModifyIndex is the job's ModifyIndex when it was created).
        this_version = seen.version is not None and (
            deployment.get("JobCreateIndex"),
            deployment.get("JobSpecModifyIndex"),
        ) == (seen.indexes[0], seen.version)
        return None, this_version and state in _ENDED_DEPLOYMENT_STATES

    def _get(
        self, what: str, *, deadline: float | None = None, budget: Budget | None = None
    ) -> Any:
        """GET /v1/job/:job_id[/what] as JSON (None for a JSON null)."""
        parts = (self._job_path, what) if what else (self._job_path,)
        return self._call(
            "read-job",
            lambda timeout: self._api.request(
                *parts, method="get", params=self._params(), timeout=timeout
            ),
            deadline=deadline,
            budget=budget,
        )

    @property
    def _job_path(self) -> str:
        # python-nomad joins path segments as they are: escape the ID so it stays one segment.
        return quote(self._ref.job, safe="")

    def _params(self) -> dict[str, str]:
        params = {"namespace": self._namespace}
        if self._region:
            params["region"] = self._region
        return params  # a fresh dict: python-nomad updates the one it is given

    # --- errors and retries --------------------------------------------------------------

    def _call(
        self,
        capability: str,
        send: Callable[[float], requests.Response],
        *,
        deadline: float | None = None,
        budget: Budget | None = None,
        again: Callable[[Budget], None] | None = None,
    ) -> Any:
        """Send a request, retrying transient failures until the deadline; JSON body back.

        `capability` is the ACL capability the request needs, named in `TargetForbidden`.
        With a caller's `deadline` (an instant of `adapters.deadline.monotonic`), no attempt
        starts at or after it and each one's timeout ends by it (`TargetDeadline`); a scale
        request is not written at or after it by a connection opened late either (`send_by`,
        with the shared session's connections). `budget`: the time of a call this request
        is part of, instead of one of its own (`deadline` is then the budget's). `again` is
        asked before each retry (not the first attempt), with the call's budget, whether
        the request is still to be sent; it raises when not (its errors end the call as
        they are).
        """
        settings = self._settings
        if budget is None:
            budget = Budget(seconds=settings.deadline, caller=deadline)
        else:
            deadline = budget.caller
        what = f"the {'scale' if capability == 'scale-job' else 'read'} request for {self._ref}"
        sent = 0
        unanswered_once = False  # a scale request sent and not answered: it may have landed

        def attempt() -> requests.Response:
            nonlocal sent, unanswered_once
            if sent and again is not None:
                budget.check(what, sent=sent)
                again(budget)
            own = max(0.05, min(settings.timeout, budget.own_until - monotonic()))
            timeout = budget.timeout(what, own, sent=sent)
            sent += 1
            try:
                with send_by.sending_by(deadline if capability == "scale-job" else None):
                    return send(timeout)
            except TargetDeadline:  # its connection opened too late: not written (`send_by`)
                sent -= 1
                raise budget.refused(what, sent=sent) from None
            except BaseNomadException as exc:
                if capability == "scale-job" and self._last_attempt(exc)[1]:
                    unanswered_once = True
                raise

        retrying = Retrying(
            stop=lambda state: budget.stop(state.upcoming_sleep),
            wait=wait_exponential_jitter(multiplier=0.1, max=2.0, jitter=0.2),
            retry=retry_if_exception(is_transient),
            reraise=True,
        )
        try:
            try:
                response = retrying(attempt)
            except BaseNomadException as exc:
                if budget.cut and is_transient(exc):
                    last, unanswered = self._last_attempt(exc)
                    unanswered = unanswered and capability == "scale-job"  # reads change nothing
                    raise budget.over(what, sent=sent, last=last, unanswered=unanswered) from None
                error = self._translate(exc, capability)
                if capability == "scale-job" and isinstance(error, TargetUnavailable):
                    # Sent, never answered (a timeout, a dropped connection): it may have landed.
                    error.maybe_applied = self._last_attempt(exc)[1]
                raise error from None
        except TargetError as error:
            if unanswered_once:  # an earlier attempt may have landed, whatever came after
                raise after_unanswered(error, what) from None
            raise
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise TargetError(f"Nomad at {self._shown_address} sent a non-JSON answer") from exc

    def _last_attempt(self, exc: BaseNomadException) -> tuple[str, bool]:
        """How the last attempt failed (shown redacted), and whether it was sent and got no
        answer in time (a read timeout, a connection dropped mid-answer): it may have landed."""
        answer = exc.nomad_resp
        if isinstance(answer, requests.Response):
            text = scrub(answer.text.strip(), self._settings.address)
            return f"HTTP {answer.status_code}: {text[:200]}", False
        unanswered = isinstance(
            answer, requests.exceptions.ReadTimeout | requests.exceptions.ChunkedEncodingError
        ) or (
            isinstance(answer, requests.exceptions.ConnectionError)
            and not isinstance(answer, requests.exceptions.ConnectTimeout)
            and "Connection aborted" in str(answer)
        )
        return short(answer, self._settings.address), unanswered

    def _translate(self, exc: BaseNomadException, capability: str) -> TargetError:
        """Our error for python-nomad's exception; never shows the token or NOMAD_ADDR's
        `user:password@`.
        """
        ref, where, address = self._ref, self._where, self._shown_address
        answer = exc.nomad_resp
        exhausted = out_of_resources(exc)
        if exhausted is not None:
            return TargetUnavailable(f"cannot reach Nomad at {address}: {exhausted}")
        if not isinstance(answer, requests.Response):
            cause = short(answer, self._settings.address)
            if isinstance(answer, requests.exceptions.SSLError):
                return TargetUnavailable(
                    f"TLS handshake with Nomad at {address} failed ({cause}); set "
                    "NOMAD_CACERT to the CA that signed Nomad's certificate"
                )
            if isinstance(answer, NETWORK_ERRORS):
                return TargetUnavailable(
                    f"Nomad at {address} unreachable within {self._settings.deadline:g}s: {cause}"
                )
            return TargetError(
                f"cannot call Nomad at {address} (check NOMAD_ADDR and the TLS files): {cause}"
            )
        status = answer.status_code
        text = scrub(answer.text.strip(), self._settings.address)
        if status == 403:
            refused = f"Nomad refused {answer.request.method} {request_path(answer)} ({text})"
            if "token" in text.lower():  # "ACL token not found", "ACL token expired", ...
                return TargetForbidden(
                    f"{refused}: NOMAD_TOKEN is not a valid token for this cluster "
                    "(expired, deleted, or from another cluster)"
                )
            hint = "" if self._settings.token else "; no token is set: set NOMAD_TOKEN"
            return TargetForbidden(
                f"{refused}: the token lacks the '{capability}' capability in namespace "
                f"'{self._namespace}'{hint}"
            )
        if status == 404:
            return TargetNotFound(f"job '{ref.job}' not found in {where}")
        if status == 400 and _DEPLOYMENT_BLOCKED in text.lower():
            return TargetBusy(f"Nomad refused to scale {ref}: {text}")
        if status == 400 and "task group" in text and "does not exist" in text:
            return TargetNotFound(f"task group '{ref.group}' not found in job '{ref.job}'")
        if status == 500 and NO_REGION_PATH in text:
            return TargetUnavailable(
                f"Nomad at {address} has no path to region "
                f"'{self._region}': check the policy's region or NOMAD_REGION"
            )
        if 400 <= status < 500:
            return TargetError(f"Nomad refused the request for {ref} (HTTP {status}): {text}")
        return TargetUnavailable(
            f"Nomad kept failing for {ref} for {self._settings.deadline:g}s "
            f"(last: HTTP {status}: {text[:200]})"
        )

    @property
    def _where(self) -> str:
        return f"namespace '{self._namespace}'" + (
            f" of region '{self._region}'" if self._region else ""
        )


def _last_count_change(events: Any) -> datetime | None:
    """The time of the newest scale event that changed the count (anyone's), or None.

    Events carry `Time` in Unix nanoseconds; events with `Error` set or without a `Count`
    (blocked or failed attempts) and events that kept the count are not scaling actions.
    """
    newest: int | None = None
    for event in events or []:
        count, time_ns = event.get("Count"), event.get("Time")
        if event.get("Error") or count is None or time_ns is None:
            continue
        if count == event.get("PreviousCount"):
            continue
        newest = time_ns if newest is None else max(newest, int(time_ns))
    if newest is None:
        return None
    return _EPOCH + timedelta(microseconds=int(newest) // 1000)


def _bound(value: Any) -> int | None:
    """A scaling block's Min or Max as a count; None when absent (or negative: unset)."""
    if value is None or isinstance(value, bool):
        return None
    bound = int(value)
    return bound if bound >= 0 else None
