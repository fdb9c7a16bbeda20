"""The exception tree of the controller; every class says when it is raised.

    AutoscalerError                 base: anything we raise on purpose
    ├── PolicyError                 a policy file is invalid (carries every problem found)
    │   └── TestFileError           a policy test file (`autoscaler test`) is invalid
    ├── QueryError                  a PromQL check gave no usable value
    │   └── SourceUnavailable       Prometheus could not be reached (after retries)
    ├── TargetError                 a scaling target refused or failed a read or a scale
    │   ├── TargetNotFound          the ASG / Nomad job or group does not exist
    │   ├── TargetForbidden         credentials lack a permission (the message names it)
    │   ├── TargetBusy              the target refused a change for now (e.g. an active
    │   │                           deployment): hold, start no cooldown, try next time
    │   ├── TargetDeadline          the caller's deadline (under --ha, the end of the leader
    │   │                           lease) came before a request could be sent or retried
    │   └── TargetUnavailable       the target's API could not be reached (after retries)
    ├── StateError                  the state database cannot be opened, read or written
    │   ├── StateUnreachable        the PostgreSQL server could not be reached (refused,
    │   │                           timed out, not accepting connections yet): trying
    │   │                           again may work, unlike a wrong password or database
    │   └── NotLeader               this replica does not hold the leader lease (a standby,
    │                               or a leader that lost it): it neither writes nor scales
    ├── DiscoveryError              a discovery source (Nomad jobs or scaling policies, AWS
    │                               Auto Scaling Groups) could not be read: the last
    │                               discovered set stays in force
    └── ServiceError                the running service cannot do what a caller asked (the
        │                           HTTP API maps each class to its status code)
        ├── PolicyNotFound          no loaded policy has that name
        ├── PolicyDisabled          the policy is disabled: it can be previewed, not applied
        ├── InvalidRequest          what the caller sent is invalid (e.g. a webhook payload)
        ├── ServiceUnavailable      not now; `retry_after` says when to try again, if known
        │   ├── ServiceBusy         a passing state (a reload is rescheduling the policy)
        │   ├── Standby             this replica is a standby: the leader evaluates
        │   ├── ShuttingDown        the service is stopping: no new evaluation starts
        │   └── EvaluationCancelled the evaluation was cancelled (shutdown or reload)
        ├── EvaluationTimeout       the evaluation outlasted the caller's wait; it goes on
        └── EvaluationFailed        the evaluation raised (a bug); the message says what

Messages say what is wrong and what to do about it; they never contain secrets.
"""

from __future__ import annotations

from dataclasses import dataclass


class AutoscalerError(Exception):
    """Base of every error the controller raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One problem in a policy file, located as precisely as the YAML allows."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


@dataclass(frozen=True)
class PolicyWarning(Problem):
    """Something in a policy file that is valid but most likely not what its author meant
    (e.g. a `fallback` block that `on_missing_data: hold` ignores): reported, never
    refused. Its text says so: `FILE:LINE: FIELD: warning: message`."""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: warning: {self.message}"


class PolicyError(AutoscalerError):
    """A policy file (or set of files) is invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class TestFileError(PolicyError):
    """A policy test file, or a policy file it names, is invalid; `problems` lists them all."""

    __test__ = False  # not a pytest test class, whatever its name


class QueryError(AutoscalerError):
    """A check's query gave no usable value: error, no series, several series, NaN or ±Inf."""


class SourceUnavailable(QueryError):
    """The metric source could not be reached, even after bounded retries."""


class TargetError(AutoscalerError):
    """A scaling target could not be read or scaled."""


class TargetNotFound(TargetError):
    """The target (ASG, Nomad job or task group) does not exist."""


class TargetForbidden(TargetError):
    """The credentials in use lack a permission; the message names which one."""


class TargetBusy(TargetError):
    """The target refused the change for a passing reason; the decision becomes `hold`."""


class TargetDeadline(TargetError):
    """The caller's deadline (under `--ha`, where the leader lease's validity ends) came
    before a request of the call could be sent or retried: nothing was sent after it.

    `attempts` were sent before it; `maybe_applied` is True when the last of them was sent
    and got no answer in time (a timeout or a dropped connection), so it may have landed.
    """

    def __init__(self, message: str, *, attempts: int = 0, maybe_applied: bool = False) -> None:
        self.attempts = attempts
        self.maybe_applied = maybe_applied
        super().__init__(message)


class TargetUnavailable(TargetError):
    """The target's API could not be reached or kept failing, even after bounded retries.

    `maybe_applied` is True when the failed call was a write whose last attempt was sent
    and got no answer (a timeout or a dropped connection): it may have landed.
    """

    def __init__(self, message: str, *, maybe_applied: bool = False) -> None:
        self.maybe_applied = maybe_applied
        super().__init__(message)


class StateError(AutoscalerError):
    """The state database cannot be opened, read or written."""


class StateUnreachable(StateError):
    """A connection to the PostgreSQL state database failed before the server could judge
    our settings: refused, timed out, the host unknown to DNS, the server starting up,
    shutting down or out of connection slots. Trying again later may work; a wrong
    password, user or database name stays a plain `StateError`."""


class NotLeader(StateError):
    """This replica does not hold the leader lease now (a standby, or a leader whose lease
    lapsed or was taken over): the write or scale call it was about to make is refused.

    `queued` is True when a refused decision still waits with what is unwritten (written
    if this replica leads again under the same lease, dropped at a takeover), False when
    it was never queued or has been dropped already."""

    queued = False


class DiscoveryError(AutoscalerError):
    """A discovery source could not be read; the targets it found last stay in force."""


class ServiceError(AutoscalerError):
    """The running service cannot do what a caller (the HTTP API) asked of it."""


class PolicyNotFound(ServiceError):
    """No loaded policy has the name asked for."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no policy named {name!r}")


class PolicyDisabled(ServiceError):
    """The policy is disabled (`enabled: false`): it may be previewed but not applied."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"policy {name!r} is disabled; preview it with ?dry_run=true")


class InvalidRequest(ServiceError):
    """What the caller sent cannot be used (e.g. an Alertmanager payload of the wrong shape)."""


class ServiceUnavailable(ServiceError):
    """The service cannot do it now; `retry_after` (seconds) says when to try again, if known."""

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class ServiceBusy(ServiceUnavailable):
    """A passing state refuses the request (a reload is rescheduling the policy): retry soon."""


class Standby(ServiceUnavailable):
    """This replica is a standby (`--ha`): the leader evaluates; retry there, or here after
    a failover."""


class ShuttingDown(ServiceUnavailable):
    """The service is stopping: no new evaluation starts."""

    def __init__(self) -> None:
        super().__init__("the service is shutting down")


class EvaluationCancelled(ServiceUnavailable):
    """The evaluation asked for was cancelled before it ran (shutdown or reload)."""

    def __init__(self) -> None:
        super().__init__("the evaluation was cancelled (shutdown or reload)")


class EvaluationTimeout(ServiceError):
    """The evaluation outlasted the caller's wait; it goes on, and its decision is recorded."""


class EvaluationFailed(ServiceError):
    """The evaluation raised instead of deciding (a bug); the message names the exception."""
