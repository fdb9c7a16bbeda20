"""What each check remembers of its own values: its forecast model and the anomaly window.

The reconciler hands every evaluation's observations to `CheckHistories.enrich`, which
feeds them to the check's `core.forecast.SeasonalModel` and anomaly window and returns
them with the forecast and the anomaly guard's reading attached, for `core.decide` to use
and every report to show. A value the guard finds implausible is learned by the forecast
only once confirmed, so the forecast cannot act on what the guard refuses to. What the
process has not seen itself (after a start, or a gap while the target was busy) is read
from Prometheus with range queries: the forecast's `history` at its resolution, the
guard's window at the policy's interval. A range query that fails (in any way) is retried
at most every `RETRY_AFTER`; until then the forecast says why it has too little history,
and the guard waits for enough evaluations of its own.

Histories live in memory, not in the state database: Prometheus already keeps them, so a
restarted (or newly elected) controller reads them back instead of persisting copies.
The same code runs under `run`, `plan`, `simulate` and `backtest`; only the range source
differs (Prometheus, a simulated trace, recorded history).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from autoscaler.core.anomaly import assess, screened
from autoscaler.core.forecast import SeasonalModel
from autoscaler.core.frozen import built
from autoscaler.core.model import (
    AnomalyGuard,
    AnomalyReading,
    Check,
    ForecastReading,
    ForecastSettings,
    Observation,
    Policy,
)
from autoscaler.core.ports import RangeSource
from autoscaler.core.series import Select, describe_select, matching, own_series
from autoscaler.errors import QueryError, SourceUnavailable

log = logging.getLogger(__name__)

RETRY_AFTER = timedelta(minutes=5)
# The histories learn from one evaluation per policy interval: one sooner than this share of
# the interval after the last one learned (a run an alert or the API triggered, a backtest
# stepping finer than the interval) is judged, but not learned (see `_enrich`). Scheduled
# runs are at least 1 − SCHEDULE_JITTER interval apart.
SCHEDULE_JITTER = 0.1  # the scheduler spreads each policy's runs by ±10 % of its interval
LEARN_GAP = 1 - SCHEDULE_JITTER
# Entries of checks nobody evaluated for this long are dropped (a removed policy).
FORGET_AFTER = timedelta(days=1)
_OBSERVATION = built(Observation)  # `Observation(...)`, cheaper: one per check evaluated


@dataclass
class _Entry:
    """One check's memory: the forecast model, the guard's recent values and streak."""

    query: str
    settings: ForecastSettings | None = None
    lead: timedelta | None = None
    # A template's grouped check: the range query returns every target's series, and this
    # check's history is the one carrying these labels (as its instant value is).
    select: tuple[tuple[str, str], ...] = ()
    model: SeasonalModel | None = None
    recent: deque[tuple[float, float]] = field(default_factory=deque)
    streak: int = 0
    learned_at: float | None = None  # epoch seconds of the last evaluation learned
    read_back: bool = False  # the forecast's history was read (or Prometheus has none)
    window_filled: bool = False
    history_error: str | None = None
    next_try: float = -math.inf  # epoch seconds: no range query before this
    seen: float = 0.0
    check: Check | None = None  # the check object last found the same as this entry
    # The model's last reading without a value and that reading with `history_error` added
    # to its reason: the model answers with the same reading until a bucket completes.
    explained: tuple[ForecastReading, str, ForecastReading] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


# A policy's checks with a query, by name, each with its forecast's lead (None: none).
_Checks = dict[str, tuple[Check, timedelta | None]]


class CheckHistories:
    """The forecast models and anomaly windows of every check, keyed by policy and check."""

    def __init__(self, source: RangeSource | None = None) -> None:
        self._source = source
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()
        self._sweeps = 0
        self._last_plan: tuple[Policy, AnomalyGuard | None, _Checks] | None = None

    def enrich(
        self,
        policy: Policy,
        observations: Sequence[Observation],
        now: datetime,
        *,
        learn: bool = True,
    ) -> list[Observation]:
        """`observations` with each check's forecast and anomaly reading attached.

        `learn=False` (a preview: `plan`, `?dry_run=true`) reads the histories without
        adding this evaluation to them, so a preview never changes what `run` decides.
        """
        guard, checks = self._plan(policy)
        if not checks:  # no check with a forecast, and no guard: nothing to attach
            return list(observations)
        at = now.timestamp()
        enriched: list[Observation] = []
        for observation in observations:
            planned = checks.get(observation.check)
            if planned is None:
                enriched.append(observation)
                continue
            check, lead = planned
            entry = self._entry(policy, check, lead, at)
            with entry.lock:
                enriched.append(
                    self._enrich(policy, check, entry, observation, at=at, learn=learn, guard=guard)
                )
        self._sweep(at)
        return enriched

    def _plan(self, policy: Policy) -> tuple[AnomalyGuard | None, _Checks]:
        """The policy's anomaly guard (None when off) and its checks with a query, by name,
        with their forecast's lead (no checks when neither the guard nor any forecast is
        on: nothing to learn or attach).

        Remembered for the policy object last seen (compared by identity, and kept alive
        by the reference), since replays ask for the same policy thousands of times."""
        last = self._last_plan
        if last is not None and last[0] is policy:
            return last[1], last[2]
        guard = policy.anomaly if policy.anomaly is not None and policy.anomaly.enabled else None
        checks: _Checks = {}
        if guard is not None or any(c.forecast is not None for c in policy.checks):
            for c in policy.checks:
                if c.query is not None:
                    lead = policy.forecast_lead(c) if c.forecast is not None else None
                    checks[c.name] = (c, lead)
        self._last_plan = (policy, guard, checks)
        return guard, checks

    def _entry(self, policy: Policy, check: Check, lead: timedelta | None, at: float) -> _Entry:
        assert check.query is not None
        key = (policy.name, check.name)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or not (
                (entry.check is check and entry.lead == lead) or _same(entry, check, lead)
            ):
                entry = _Entry(check.query, check.forecast, lead, check.select)  # new or changed
                self._entries[key] = entry
            entry.check = check  # the same object next time: only the lead to compare
            entry.seen = at
            return entry

    def _enrich(
        self,
        policy: Policy,
        check: Check,
        entry: _Entry,
        observation: Observation,
        *,
        at: float,
        learn: bool,
        guard: AnomalyGuard | None,
    ) -> Observation:
        value = observation.value if observation.error is None else None
        usable = value is not None and math.isfinite(value)
        # One evaluation per interval is learned, so evaluations triggered in between (an
        # alert storm) change when the policy decides, never what: they neither fill the
        # window or a forecast bucket with their value nor advance the streak.
        paced = entry.learned_at is None or (
            at - entry.learned_at >= LEARN_GAP * policy.interval.total_seconds()
        )
        anomaly = None
        if guard is not None and usable:
            assert value is not None
            self._fill_window(policy, guard, entry, at)
            window = [v for t, v in entry.recent if t > at - guard.window.total_seconds()]
            anomaly = assess(window, value, guard, entry.streak)
            held = anomaly is not None and anomaly.implausible and not paced
            if held:
                assert anomaly is not None
                # Counted as the evaluation learned last (or as the first), not after it.
                anomaly = replace(anomaly, streak=max(entry.streak, 1))
            if learn and not held:
                # (a plausible value ends the streak whenever it comes)
                entry.streak = anomaly.streak if anomaly is not None else 0
            if learn and paced:
                entry.recent.append((at, value))
                while entry.recent and entry.recent[0][0] <= at - guard.window.total_seconds():
                    entry.recent.popleft()
        forecast = None
        if entry.settings is not None and entry.lead is not None:
            model = self._model(entry, at, guard)
            if learn and paced and usable and (anomaly is None or _learnable(anomaly, guard)):
                assert value is not None
                model.add(at, value)
            forecast = model.forecast(at)
            if forecast.value is None and entry.history_error is not None:
                forecast = _explained(entry, forecast, entry.history_error)
        if learn and paced and usable:
            entry.learned_at = at
        if forecast is None and anomaly is None:
            return observation
        return _OBSERVATION(  # not `replace`: replays build hundreds of thousands of these
            check=observation.check,
            value=observation.value,
            error=observation.error,
            forecast=forecast,
            anomaly=anomaly,
        )

    # --- reading history back ----------------------------------------------------------

    def _model(self, entry: _Entry, at: float, guard: AnomalyGuard | None) -> SeasonalModel:
        """The entry's model, with the history it has not seen read from Prometheus.

        The whole `history` is read once (until that succeeds, the model learns from the
        evaluations alone, and a successful read replaces what it learned); after that,
        only a gap longer than two buckets since the last value is read again. With the
        anomaly guard on, what is read goes through its judgement first (`screened`): a
        value it refused live is not learned from the history either.
        """
        assert entry.settings is not None
        assert entry.lead is not None
        if entry.model is None:
            entry.model = SeasonalModel(entry.settings, entry.lead)
        model, settings = entry.model, entry.settings
        step = model.step
        last = model.last_time
        if entry.read_back and last is not None and at - last <= 2 * step:
            return model  # nothing missed
        if self._source is None or at < entry.next_try:
            return model
        start = at - settings.history.total_seconds()
        if entry.read_back and last is not None:
            start = max(start, last)
        start = math.ceil(start / step) * step
        end = math.floor(at / step) * step - step  # the last whole bucket before now
        if end < start:
            return model
        points = self._read(entry, (start, end, step), at)
        if points is None:
            return model
        if not points and (not entry.read_back or last is None):
            entry.read_back = True
            entry.history_error = "Prometheus holds no history of the query yet"
            if last is None:
                # Nothing at all yet (a metric not exported yet): not a range query of
                # the whole history at every evaluation, once per `RETRY_AFTER`.
                entry.next_try = at + RETRY_AFTER.total_seconds()
            return model
        if guard is not None:  # judged after what the guard judged before the gap, if any
            points = screened(points, guard, entry.recent if entry.read_back else ())
        if not entry.read_back:
            entry.read_back = True
            model = entry.model = SeasonalModel(settings, entry.lead)  # history replaces it
        model.extend(points)
        return model

    def _fill_window(self, policy: Policy, guard: AnomalyGuard, entry: _Entry, at: float) -> None:
        """Read the guard's window back once, at the policy's interval, when it is empty."""
        if entry.window_filled or entry.recent or self._source is None or at < entry.next_try:
            return
        step = max(1.0, policy.interval.total_seconds())
        start = at - guard.window.total_seconds() + step
        end = at - step
        if end < start:
            entry.window_filled = True
            return
        points = self._read(entry, (start, end, step), at)
        if points is not None:
            entry.window_filled = True
            entry.recent.extend((t, v) for t, v in points if math.isfinite(v))

    def _read(
        self, entry: _Entry, span: tuple[float, float, float], at: float
    ) -> list[tuple[float, float]] | None:
        """The single series of the entry's query over `span` (start, end, step in epoch
        seconds), or None when it could not be read (the entry then says why, and waits
        `RETRY_AFTER` before the next range query)."""
        assert self._source is not None
        promql, (start, end, step) = entry.query, span
        try:
            series = self._source.query_range(
                own_series(promql, entry.select),  # a template's target: its series alone
                start=datetime.fromtimestamp(start, UTC),
                end=datetime.fromtimestamp(end, UTC),
                step=timedelta(seconds=step),
            )
        except (QueryError, SourceUnavailable) as exc:
            entry.history_error = f"history unavailable: {exc}"
            entry.next_try = at + RETRY_AFTER.total_seconds()
            log.warning("reading the history of %r failed: %s", promql, exc)
            return None
        except Exception as exc:  # a library error no adapter anticipated: reactive, loudly
            entry.history_error = f"history unavailable: {type(exc).__name__}: {exc}"
            entry.next_try = at + RETRY_AFTER.total_seconds()
            log.exception("reading the history of %r failed", promql)
            return None
        series = matching(series, entry.select)  # narrowed by Prometheus already
        if len(series) > 1:
            entry.history_error = f"history unavailable: {several_series(series, entry.select)}"
            entry.next_try = at + RETRY_AFTER.total_seconds()
            return None
        entry.history_error = None
        return list(series[0].points) if series else []

    def retain(self, policies: Collection[str]) -> None:
        """Drop the memory of every check of a policy not in `policies` (removed): one that
        comes back reads its history from Prometheus again, as after a restart. (An
        evaluation still in flight for a removed policy may make an entry again: the next
        `retain`, or the daily sweep, drops it.)"""
        with self._lock:
            for key in [k for k in self._entries if k[0] not in policies]:
                del self._entries[key]
            last = self._last_plan
            if last is not None and last[0].name not in policies:
                self._last_plan = None

    def __len__(self) -> int:
        """How many checks have a memory here."""
        return len(self._entries)

    def _sweep(self, at: float) -> None:
        """Now and then, drop the entries of checks nobody evaluated for a day."""
        self._sweeps += 1
        if self._sweeps % 1000:
            return
        cutoff = at - FORGET_AFTER.total_seconds()
        with self._lock:
            for key in [k for k, e in self._entries.items() if e.seen < cutoff]:
                del self._entries[key]


def _explained(entry: _Entry, forecast: ForecastReading, why: str) -> ForecastReading:
    """`forecast` (without a value) with `why` the history is missing added to its reason;
    the same object as last time when both are (a replay's first day asks 5,760 times)."""
    last = entry.explained
    if last is not None and last[0] is forecast and last[1] is why:
        return last[2]
    explained = replace(forecast, reason=f"{forecast.reason}; {why}")
    entry.explained = (forecast, why, explained)
    return explained


def _learnable(anomaly: AnomalyReading | None, guard: AnomalyGuard | None) -> bool:
    """Whether the forecast may learn a value the guard judged: not while it is implausible
    and unconfirmed. One wild value would lift the forecast's recent level (a mean) for
    its whole window, and the forecast would then act on what the guard refused to."""
    if anomaly is None or guard is None or not anomaly.implausible:
        return True
    return anomaly.streak >= guard.confirm


def range_source(source: object) -> RangeSource | None:
    """`source` when it answers range queries (Prometheus does), else None."""
    return source if isinstance(source, RangeSource) else None


def several_series(series: Sequence[object], select: Select) -> str:
    """Why a history query that returned several `series` (of the target's `select`, if
    any) gives no history: `run` and a backtest's history before --from say it alike."""
    among = " with " + describe_select(select) if select else ""
    return (
        f"the query returned {len(series)} series{among} over the range; a check needs exactly one"
    )


def _same(entry: _Entry, check: Check, lead: timedelta | None) -> bool:
    """Whether `entry` learned what `check` asks now (same query, settings and lead)."""
    return (
        entry.query == check.query
        and entry.select == check.select
        and (entry.settings is check.forecast or entry.settings == check.forecast)
        and entry.lead == lead
    )
