"""The shapes of the HTTP API's requests and answers (pydantic), documented in OpenAPI.

They are the API's contract: a field renamed here is a breaking change for every script
and dashboard that reads the API, so extend, don't rename. Times are ISO 8601 UTC,
durations are seconds. Free text (`Text`: reasons, errors, messages) is scrubbed of every
known secret (`autoscaler.redact`) whatever produced it, e.g. a decision recorded by an
older version.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from autoscaler.core.model import Decision
from autoscaler.errors import Problem
from autoscaler.redact import scrub

Text = Annotated[str, AfterValidator(scrub)]


class ForecastOut(BaseModel):
    """A check's forecast at this evaluation (extension): its value `lead` ahead, or why not."""

    value: float | None = Field(description="forecast value; null when there is none")
    lead_seconds: float = Field(description="how far ahead the forecast looks")
    error: float | None = Field(
        description="recent relative error of the forecasts at this lead (0.12 = 12 %)"
    )
    season_seconds: float | None = Field(description="period of the seasonal profile used")
    reason: Text | None = Field(description="why there is no forecast (the check is reactive)")
    only: bool = Field(description="forecast_only: shown, not acted on")


class AnomalyOut(BaseModel):
    """The anomaly guard's reading of a check's value (extension)."""

    z: float = Field(description="robust z-score against the guard's window")
    low: float
    high: float = Field(description="the largest plausible value")
    implausible: bool
    streak: int = Field(description="implausible evaluations in a row, this one included")
    samples: int = Field(description="values in the window")


class CheckOut(BaseModel):
    """One check as evaluated: its value and desired count, or its error."""

    name: str
    query: str | None
    value: float | None
    desired: int | None
    error: Text | None
    forecast: ForecastOut | None = None
    anomaly: AnomalyOut | None = None


class DecisionOut(BaseModel):
    """One decision, with a reason for every step that mattered."""

    policy: str
    target: str
    time: datetime
    current: int | None
    desired: int | None
    action: Literal["up", "down", "none", "hold"]
    dry_run: bool
    reasons: list[Text]
    checks: list[CheckOut]

    @classmethod
    def of(cls, decision: Decision) -> DecisionOut:
        return cls.model_validate(decision.to_dict())


class LoadError(BaseModel):
    """A problem in a policy file (`FILE:LINE: FIELD: message`); in `load_warnings`, a
    warning: valid, most likely not meant, loaded all the same."""

    file: str
    line: int
    field: str
    message: Text

    @classmethod
    def of(cls, problem: Problem) -> LoadError:
        return cls(
            file=problem.file, line=problem.line, field=problem.field, message=problem.message
        )


class CooldownOut(BaseModel):
    """Seconds left before a scale-up / scale-down may happen; 0 when free to act."""

    up_seconds: float
    down_seconds: float
    last_scaled_at: datetime | None = Field(description="our last scaling action on the target")


class PolicyOut(BaseModel):
    """A loaded policy and its live status."""

    name: str
    description: str
    enabled: bool
    dry_run: bool
    target: str
    target_type: str
    min: int
    max: int
    interval_seconds: float
    triggers: list[str] = Field(description="alert names that make it evaluate at once")
    source: str = Field(description="the file it was loaded from")
    current: int | None = Field(description="count at the last evaluation")
    desired: int | None = Field(description="count the last decision wanted")
    last_decision: DecisionOut | None
    evaluating: bool
    next_evaluation_at: datetime | None
    cooldown_remaining: CooldownOut
    last_error: Text | None
    last_error_kind: str | None = Field(description="target, source, scale, state, lease or crash")
    load_errors: list[LoadError] = Field(
        description="problems in its file (a discovered policy: in its template's file and of "
        "its own target); while there are any, the last good version runs"
    )
    load_warnings: list[LoadError] = Field(
        default_factory=list,
        description="warnings of its file (a discovered policy: of its template's file); the "
        "policy runs as loaded",
    )


Role = Literal["leader", "standby"]
WARNINGS = (
    "warnings in every policy file (e.g. a `fallback` block that `on_missing_data: hold` "
    "ignores): their policies are loaded all the same"
)
ROLE = "`leader` (this replica evaluates) or `standby` (`--ha`: another replica does)"


class PolicyList(BaseModel):
    policies: list[PolicyOut]
    load_errors: list[LoadError] = Field(description="problems in every policy file")
    loaded_at: datetime | None = Field(description="when the policy files were last read")
    role: Role = Field(default="leader", description=ROLE)
    load_warnings: list[LoadError] = Field(default_factory=list, description=WARNINGS)


class DecisionList(BaseModel):
    decisions: list[DecisionOut] = Field(description="newest first")


class EvaluationOut(BaseModel):
    """The outcome of `POST /v1/policies/{name}/evaluate`."""

    policy: str
    preview: bool = Field(description="true for ?dry_run=true: nothing applied or recorded")
    scaled: bool = Field(description="a scale call succeeded")
    error: Text | None
    error_kind: str | None
    duration_seconds: float
    decision: DecisionOut


class ReloadOut(BaseModel):
    """What a reload changed; `kept_files` still run their last good version."""

    changed: bool
    added: list[str]
    updated: list[str]
    removed: list[str]
    kept_files: list[str]
    load_errors: list[LoadError]
    load_warnings: list[LoadError] = Field(default_factory=list, description=WARNINGS)


class AlertIn(BaseModel):
    """One alert of an Alertmanager notification (other fields are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")

    status: str | None = Field(None, description="firing or resolved; else the notification's")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class AlertmanagerWebhook(BaseModel):
    """Alertmanager's webhook body (version 4); `alerts` is used, and `truncatedAlerts` and
    `groupKey` (kept as sent, among the other fields) are logged when alerts were left out."""

    model_config = ConfigDict(extra="allow")

    version: str | None = None
    status: str | None = None
    receiver: str | None = None
    alerts: list[AlertIn]


class AlertOut(BaseModel):
    received: int = Field(description="alerts in the notification")
    triggered: list[str] = Field(description="policies made to evaluate at once")


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool
    reason: Text | None = None
    role: Role = Field(default="leader", description=ROLE)


class LeaderOut(BaseModel):
    """`GET /v1/leader`: this replica's role and the leader lease as it last saw it."""

    ha: bool = Field(description="several replicas share the state (PostgreSQL lease)")
    role: Role = Field(description=ROLE)
    replica: str = Field(description="this replica's id (--replica-id)")
    leader: str | None = Field(description="the replica that leads; null while nobody does")
    epoch: int | None = Field(description="the lease epoch, one more at every takeover")
    lease_expires_at: datetime | None = Field(description="database time the lease lapses")
    lease_ttl_seconds: float | None
    problem: Text | None = Field(description="why the lease could not be read lately")
