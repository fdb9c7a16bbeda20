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
    │   └── TargetUnavailable       the target's API could not be reached (after retries)
    ├── StateError                  the state database cannot be opened, read or written
    │   └── NotLeader               this replica does not hold the leader lease (a standby,
    │                               or a leader that lost it): it neither writes nor scales
    └── DiscoveryError              a discovery source (Nomad jobs or scaling policies, AWS
                                    Auto Scaling Groups) could not be read: the last
                                    discovered set stays in force

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


class TargetUnavailable(TargetError):
    """The target's API could not be reached or kept failing, even after bounded retries."""


class StateError(AutoscalerError):
    """The state database cannot be opened, read or written."""


class NotLeader(StateError):
    """This replica does not hold the leader lease now (a standby, or a leader whose lease
    lapsed or was taken over): the write or scale call it was about to make is refused."""


class DiscoveryError(AutoscalerError):
    """A discovery source could not be read; the targets it found last stay in force."""
