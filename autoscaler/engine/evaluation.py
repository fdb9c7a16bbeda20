"""What one evaluation returns: its decision and what the caller reports on it.

The CLI, the service, the HTTP API and the replays all read an `Evaluation`, so it lives
apart from the `Reconciler` that makes it; `safe_error` is how an unexpected failure reads
in one.
"""

from __future__ import annotations

from dataclasses import dataclass

from autoscaler.core.frozen import fast_init
from autoscaler.core.model import Decision, Memory, TargetStatus
from autoscaler.errors import AutoscalerError


@fast_init
@dataclass(frozen=True, kw_only=True)
class Evaluation:
    """A decision plus what the caller needs to report on it.

    `error` is set when the policy could not be fully evaluated (target unreadable,
    Prometheus unreachable, scale call failed); `error_kind` is then one of
    `target`, `source`, `scale`, `state`, `lease` (this replica lost the leader lease, so
    it neither scaled nor wrote). `scaled` is True when a scale call succeeded;
    `maybe_scaled` when one got no answer and may have landed (its cooldown is kept).
    `status` is what the target reported (None when it could not be read). `memory` is
    the policy's memory as the decision left it (its missing-data streak: the service's
    metrics), None when no decision was made (target or state unreadable).
    """

    decision: Decision
    error: str | None = None
    error_kind: str | None = None
    scaled: bool = False
    maybe_scaled: bool = False
    status: TargetStatus | None = None
    duration: float = 0.0
    query_seconds: tuple[tuple[str, float], ...] = ()
    memory: Memory | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def safe_error(exc: BaseException) -> str:
    """A one-line description of an unexpected failure, for reports."""
    if isinstance(exc, AutoscalerError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
