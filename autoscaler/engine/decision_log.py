"""The evaluation's outward forms: a log line per decision, and its JSON fields.

`decision_fields` is the decision as flat JSON values, `log_decision` writes them (with
the earlier nested shape) on the `autoscaler.decisions` logger, and `unchanged` says which
decisions `--log-decisions changes` leaves out. Apart from the reconciler because these
are a format users' log pipelines read, not a step of the evaluation.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from autoscaler.core.model import Action
from autoscaler.engine.scrubbing import scrubbed
from autoscaler.redact import PRESCRUBBED, scrub

if TYPE_CHECKING:
    from autoscaler.engine.evaluation import Evaluation

log = logging.getLogger("autoscaler.decisions")


# A log record's attribute (via `extra`) saying every `extra` field is a JSON value
# already: text keys, str/int/bool/None, finite floats, lists and dicts of them. The JSON
# formatter then writes the fields as they are instead of converting each one again.
JSON_READY = "autoscaler_json_ready"
# How a log line writes a number JSON cannot carry (the JSON formatter uses it too).
NON_FINITE = {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}


def _number(value: float | None) -> float | str | None:
    """A float JSON can carry: NaN and the infinities as the JSON formatter writes them."""
    if value is None or math.isfinite(value):
        return value
    return NON_FINITE[str(float(value))]


def decision_fields(evaluation: Evaluation) -> dict[str, Any]:
    """The decision as flat log fields: JSON values only (a NaN or infinite number as
    `"NaN"`, `"+Inf"`, `"-Inf"`), no nesting but `reasons` (a list of strings), and each
    check as `check.<name>.value`, `.desired` and `.error` (with a forecast, also
    `.forecast.value`, `.forecast.lead_seconds`, ... as in the plan JSON).

    `decision_time` is the decision's own instant (its clock: under `--ha`, the shared
    database's), which the record's `time` (when the line was written) is not."""
    d = evaluation.decision
    fields: dict[str, Any] = {
        "decision_time": d.time.isoformat(),
        "policy": d.policy,
        "target": d.target,
        "current": d.current,
        "desired": d.desired,
        "action": d.action.value,
        "dry_run": d.dry_run,
        "reasons": list(d.reasons),
    }
    if evaluation.error:
        fields["error"] = evaluation.error
        fields["error_kind"] = evaluation.error_kind
    for check in d.checks:
        fields[f"check.{check.name}.value"] = _number(check.value)
        fields[f"check.{check.name}.desired"] = check.desired
        if check.error:
            fields[f"check.{check.name}.error"] = check.error
        if check.forecast is not None:
            for key, value in check.forecast.to_dict().items():
                fields[f"check.{check.name}.forecast.{key}"] = (
                    _number(value) if type(value) is float else value
                )
    return fields


def unchanged(evaluation: Evaluation) -> bool:
    """A plain `none`: the count stays as it is, with no error (nor any check's). Such a
    decision may still say why it stays (a stabilization window); it is recorded all the
    same, only its log line is left out under `--log-decisions changes`."""
    d = evaluation.decision
    return (
        d.action is Action.NONE
        and evaluation.error is None
        and all(check.error is None for check in d.checks)
    )


_LEGACY_KEYS = ("policy", "target", "current", "desired", "action", "dry_run", "reasons", "error")


def log_decision(evaluation: Evaluation) -> None:
    """One log line per decision: policy, target, from, to, action, dry-run, reasons.

    With `--log-format json` the record carries `decision_fields` at the top level, and the
    earlier shape (`decision`: the same without the checks, `time` for `decision_time`)
    for log pipelines that read it.
    """
    level = logging.WARNING if evaluation.error else logging.INFO
    if not log.isEnabledFor(level):
        return  # replays evaluate thousands of times a second: build nothing nobody reads
    # Every text of the evaluation scrubbed here (`scrubbed`: the evaluation itself when it
    # was already, as `evaluate`'s is), and the names, which come from the policy: the
    # record is then marked `PRESCRUBBED`, and the log filter does not scrub its fields
    # one by one again (a line per decision).
    evaluation = scrubbed(evaluation)
    d = evaluation.decision
    fields = decision_fields(evaluation)
    policy, target = scrub(d.policy), scrub(d.target)
    fields["policy"], fields["target"] = policy, target
    # The earlier shape: the fields above but the checks, `error_kind` and `decision_time`
    # (as `time`), in their order.
    legacy = {"time": fields["decision_time"]}
    for key in _LEGACY_KEYS:
        if key in fields:
            legacy[key] = fields[key]
    fields["decision"] = legacy
    fields[PRESCRUBBED] = True
    fields[JSON_READY] = True
    log.log(
        level,
        "policy=%s target=%s from=%s to=%s action=%s dry_run=%s reasons=%s",
        policy,
        target,
        d.current,
        d.desired,
        d.action.value,
        str(d.dry_run).lower(),
        " | ".join(d.reasons),
        extra=fields,
    )
