"""An evaluation with every known secret masked in its texts, before anyone hears of it.

An adapter's error may quote a server's answer that quotes our request back, and a
forecast's reason a failed range query's error: what is recorded, logged, shown, returned
and notified is only ever `scrubbed`'s result. Apart from the reconciler because it is
not a step of one evaluation: the service scrubs the evaluations it makes itself (a
crashed one), and the decision log whatever it writes.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from autoscaler.core.model import DECISION_REASONS, CheckResult
from autoscaler.core.reasons import Pending
from autoscaler.redact import scrub

if TYPE_CHECKING:
    from autoscaler.engine.evaluation import Evaluation


def scrubbed(evaluation: Evaluation) -> Evaluation:
    """`evaluation` with every known secret masked in its texts (reasons, check errors,
    error): an adapter's error may quote a server's answer that quotes our request back.
    What is recorded, logged, shown, returned and notified is only ever this. Texts with
    nothing to mask are kept as they are, and so is the evaluation (no copies)."""
    d = evaluation.decision
    decision = d
    later = DECISION_REASONS.stored(d)
    if type(later) is Pending:
        # Not made yet (a replay may never read them): scrubbed as they are made, which
        # gives each text what scrubbing it now would (and masks any secret registered
        # in between as well).
        later.then(scrub)
    else:
        for reason in d.reasons:
            if scrub(reason) is not reason:  # something masked: redo them all
                decision = replace(d, reasons=tuple(scrub(r) for r in d.reasons))
                break
    for check in d.checks:
        forecast = check.forecast
        if not check.error and (forecast is None or not forecast.reason):
            continue  # no text to scrub (most checks): not even a call
        if _scrubbed_check(check) is not check:
            decision = replace(decision, checks=tuple(_scrubbed_check(c) for c in d.checks))
            break
    error = scrub(evaluation.error) if evaluation.error else evaluation.error
    if decision is d and error is evaluation.error:
        return evaluation
    return replace(evaluation, decision=decision, error=error)


def _scrubbed_check(check: CheckResult) -> CheckResult:
    """The check with its error and its forecast's reason (which quotes a failed range
    query's error) scrubbed."""
    error = scrub(check.error) if check.error else check.error
    forecast = check.forecast
    if forecast is not None and forecast.reason:
        reason = scrub(forecast.reason)
        if reason is not forecast.reason:
            forecast = replace(forecast, reason=reason)
    if error is check.error and forecast is check.forecast:
        return check
    return replace(check, error=error, forecast=forecast)
