"""Scales one Nomad task group through Nomad's job scale API, with python-nomad.

Nomad records every scale request as an event on the job, refuses a scale while a deployment
of the job is active, and guards jobs with ACL capabilities; this adapter turns each of those
into the controller's vocabulary (`TargetStatus`, `TargetBusy`, `TargetForbidden`, ...).
How it reaches Nomad is `nomad_settings` and `nomad_session` (two python-nomad traps are
handled there on purpose: it does not verify TLS certificates by default, and it reads
NOMAD_* variables behind our back); what a status is made of, `nomad_status`; what each
failure becomes, `nomad_errors`. NOMAD_ADDR may carry `user:password@`; it is shown
redacted everywhere (`nomad_errors`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace as _replace
from typing import Any
from urllib.parse import quote

import requests
from nomad.api.exceptions import BaseNomadException
from tenacity import (
    Retrying,
    retry_if_exception,
    wait_exponential_jitter,
)

from autoscaler.adapters import send_by
from autoscaler.adapters.deadline import Budget, after_unanswered, monotonic
from autoscaler.adapters.targets.moved import Landed, landed_or_moved, moved_since
from autoscaler.adapters.targets.nomad_errors import (
    is_transient,
    last_attempt,
    redact_address,
    translate,
)
from autoscaler.adapters.targets.nomad_session import job_api
from autoscaler.adapters.targets.nomad_settings import NomadSettings, placement
from autoscaler.adapters.targets.nomad_status import Seen, group_of, last_count_change
from autoscaler.adapters.targets.nomad_watch import JobWatch, Token
from autoscaler.core.model import NomadTarget, TargetStatus
from autoscaler.errors import (
    TargetBusy,
    TargetDeadline,
    TargetError,
    TargetUnavailable,
)

log = logging.getLogger(__name__)

# Deployment states Nomad counts as active (`Deployment.Active()` in nomad/structs): while the
# latest deployment is in one of these, Nomad answers a scale with HTTP 400.
ACTIVE_DEPLOYMENT_STATES = frozenset(
    {"running", "pending", "paused", "blocked", "unblocking", "initializing"}
)
_ENDED_DEPLOYMENT_STATES = frozenset({"successful", "failed", "cancelled"})


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
        self._seen: Seen | None = None  # the job as last read, while it is unchanged
        self._version: int | None = None  # its JobModifyIndex as last read: scales enforce it
        if settings.skip_verify and settings.address.startswith("https"):
            log.warning(
                "TLS certificate verification is OFF for Nomad at %s (NOMAD_SKIP_VERIFY): "
                "anyone on the path can read the ACL token; set NOMAD_CACERT instead",
                self._shown_address,
            )
        self._api = job_api(settings, session)

    def __repr__(self) -> str:
        return f"NomadScaler({self._ref}, address={self._shown_address!r})"

    # --- ScalingTarget ------------------------------------------------------------------

    def status(self) -> TargetStatus:
        """The group's count and bounds, whether it may be scaled now, and the last count change.

        The bounds are the group's `scaling { min max }` block, which Nomad enforces on every
        scale request whether or not the block is `enabled`; None where the group has none.

        Without a watch, one GET per call in the steady state: the scale status (count,
        events, the job's indexes) is always read; the job itself and its latest deployment
        only when the job changed since they were read (`Seen`). With a watch, none while
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
            seen = group_of(self._ref, job, (job.get("CreateIndex"), job.get("ModifyIndex")))
            # Kept only when the job read is the version the scale status spoke of.
            fits = None not in indexes and indexes == seen.indexes
        else:
            fits = True
        version = seen.version
        self._version = version if isinstance(version, int) and version > 0 else None
        group_status = (scale.get("TaskGroups") or {}).get(ref.group)
        if group_status is not None and group_status.get("Desired") is not None:
            count = int(group_status["Desired"])
        else:
            count = seen.count
        last_scaled_at = last_count_change((group_status or {}).get("Events"))
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
        `TargetBusy`, and so is a job stopped since. The request carries the job modify
        index of the version `status` last read (`EnforceIndex`): Nomad 1.8.2 and later
        refuse it when a new version of the job (a deploy, a scale) was registered since,
        which is `TargetBusy`, closing the race the read narrows; older versions ignore both
        fields. With `expected`, a scale request
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
        if self._version is not None:
            body |= {"EnforceIndex": True, "JobModifyIndex": self._version}
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
        `TargetBusy` when the job was stopped since it was read: Nomad's scale request has
        no such check, and would store our count on the stopped job (it copies the job,
        `Stop` included, in nomad/job_endpoint.go `Scale`), for whoever starts it again."""
        scale = self._get("scale", deadline=deadline, budget=budget)
        if scale.get("JobStopped"):
            raise TargetBusy(f"job '{self._ref.job}' was stopped: not scaled")
        group = (scale.get("TaskGroups") or {}).get(self._ref.group) or {}
        return None if group.get("Desired") is None else int(group["Desired"])

    # --- reading -------------------------------------------------------------------------

    def _hold_reason(self, seen: Seen, scale: Mapping[str, Any]) -> tuple[str | None, bool]:
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
            return _deployment_hold(self._ref.job, state, deployment), False
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
        """GET /v1/job/:job_id[/what] as a JSON object (the latest `deployment` may be none:
        a JSON null or an empty answer, as Nomad answers for a job without one).

        Any other answer that is no object (an empty one, a list: a proxy's, not Nomad's)
        is a `TargetError` that says so, not an `AttributeError` further on: a read that
        says nothing is a failed read.
        """
        parts = (self._job_path, what) if what else (self._job_path,)
        answer = self._call(
            "read-job",
            lambda timeout: self._api.request(
                *parts, method="get", params=self._params(), timeout=timeout
            ),
            deadline=deadline,
            budget=budget,
        )
        if isinstance(answer, dict) or (answer is None and what == "deployment"):
            return answer
        got = "an empty answer" if answer is None else f"a JSON {type(answer).__name__}"
        raise TargetError(
            f"Nomad at {self._shown_address} answered the {what or 'job'} read of {self._ref} "
            f"with {got}, not a JSON object"
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
        last: str | None = None  # how the last attempt failed: said if no retry may start

        def attempt() -> requests.Response:
            nonlocal sent, unanswered_once, last
            if sent and again is not None:
                budget.check(what, sent=sent, last=last)
                again(budget)
            own = max(0.05, min(settings.timeout, budget.own_until - monotonic()))
            timeout = budget.timeout(what, own, sent=sent, last=last)
            sent += 1
            try:
                with send_by.sending_by(deadline if capability == "scale-job" else None):
                    return send(timeout)
            except TargetDeadline:  # its connection opened too late: not written (`send_by`)
                sent -= 1
                raise budget.refused(what, sent=sent, last=last) from None
            except BaseNomadException as exc:
                last, unanswered = last_attempt(exc, settings.address)
                if capability == "scale-job" and unanswered:
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
                    last, unanswered = last_attempt(exc, settings.address)
                    unanswered = unanswered and capability == "scale-job"  # reads change nothing
                    raise budget.over(what, sent=sent, last=last, unanswered=unanswered) from None
                error = translate(
                    exc,
                    capability,
                    ref=self._ref,
                    settings=settings,
                    namespace=self._namespace,
                    region=self._region,
                    shown_address=self._shown_address,
                )
                if capability == "scale-job" and isinstance(error, TargetUnavailable):
                    # Sent, never answered (a timeout, a dropped connection): it may have landed.
                    error.maybe_applied = last_attempt(exc, settings.address)[1]
                raise error from None
        except TargetError as error:
            if unanswered_once:  # an earlier attempt may have landed, whatever came after
                raise after_unanswered(error, what) from None
            raise
        return self._json(response, capability)

    def _json(self, response: requests.Response, capability: str) -> Any:
        """The answer's JSON body (None when empty). A scale request accepted (2xx) with a
        body that is not JSON may well have been applied: `TargetUnavailable` that says so
        (its cooldown is kept), where a read's is a plain `TargetError`."""
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            if capability == "scale-job":
                raise TargetUnavailable(
                    f"Nomad at {self._shown_address} answered the scale request for "
                    f"{self._ref} with a non-JSON body: it may have been applied",
                    maybe_applied=True,
                ) from exc
            raise TargetError(f"Nomad at {self._shown_address} sent a non-JSON answer") from exc


def _deployment_hold(job: str, state: str, deployment: Mapping[str, Any]) -> str:
    """Why an active deployment holds the group, with what it waits for when that is a
    person: canaries awaiting promotion keep a deployment `running` (and a paused one stays
    paused) until someone acts, however long that takes."""
    ident = str(deployment.get("ID", ""))
    said = str(deployment.get("StatusDescription") or "").strip()
    reason = f"deployment {ident[:8]} of job '{job}' is {state}"
    if said and said.lower() != f"deployment is {state}":
        reason += f" ({said})"
    if "manual promotion" in said.lower():
        reason += f": promote it (nomad deployment promote {ident}) or fail it"
    elif state == "paused":
        reason += f": resume it (nomad deployment resume {ident})"
    return reason + "; Nomad refuses scaling until it ends"
