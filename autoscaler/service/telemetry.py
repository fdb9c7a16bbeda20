"""The controller's own metrics, exposed on `/metrics` in the Prometheus text format.

Names follow Prometheus conventions (`promtool check metrics` finds nothing to say): the
`autoscaler_` prefix, base units in the name (`_seconds`), `_total` on counters,
`_timestamp_seconds` on instants, and no `_count`/`_sum`/`_bucket` suffix outside
histograms. Everything lives in a dedicated `CollectorRegistry` (with the standard
`process_*` and `python_*` collectors), so tests can build as many as they like and
nothing leaks into (or from) the process-global registry.

Per-check series (`policy`, `check` labels) exist only for the checks of the policies
loaded now: a reload that removes a policy or a check removes its series, and an
evaluation of a version replaced meanwhile adds none back, so their number stays bounded
by the policy files.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from autoscaler import __version__
from autoscaler.api.request_metrics import RequestMetrics
from autoscaler.core.model import Policy
from autoscaler.engine.evaluation import Evaluation
from autoscaler.errors import Problem
from autoscaler.service.allocator import give_back_free_pages
from autoscaler.service.discovery_sources import SourceHealth
from autoscaler.service.families import CounterFamily, Family, GaugeFamily, HistogramFamily

# Evaluations wait on Prometheus and a cloud API; a query alone is usually milliseconds.
EVALUATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
QUERY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# Error kinds beyond the reconciler's (`target`, `source`, `scale`, `state`).
CRASH = "crash"  # an evaluation raised unexpectedly (a bug)
POLICY = "policy"  # a problem in the policies appeared
NOTIFY = "notify"  # a notification webhook kept failing


class _QueryCounts(Collector):
    """`autoscaler_queries_total{mode}`, read from the coalescing source's counters."""

    def __init__(self, counts: Callable[[], tuple[int, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        sent, shared = self._counts()
        family = CounterMetricFamily(
            "autoscaler_queries",
            "PromQL queries asked for by checks: sent to Prometheus, or shared with an "
            "identical query due at the same moment.",
            labels=["mode"],
        )
        family.add_metric(["sent"], sent)
        family.add_metric(["shared"], shared)
        yield family


class _DroppedDecisions(Collector):
    """`autoscaler_state_decisions_dropped_total`, read from the state store's count."""

    def __init__(self, dropped: Callable[[], int]) -> None:
        self._dropped = dropped

    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily(
            "autoscaler_state_decisions_dropped",
            "Decisions dropped from the history unwritten: the state database took no "
            "writes while more decisions waited than are kept in memory (1,000).",
            value=self._dropped(),
        )


class _DiscoveryHealth(Collector):
    """`autoscaler_discovery_*{source}`: each discovery source in force, read at scrape
    time from `Discovery.health()` (a source no template needs any more has no series)."""

    def __init__(self, health: Callable[[], Iterable[SourceHealth]]) -> None:
        self._health = health

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "autoscaler_discovery_up",
            "1 while a discovery source's last read succeeded; 0 while it fails (its last "
            "good result stays in force).",
            labels=["source"],
        )
        targets = GaugeMetricFamily(
            "autoscaler_discovery_targets",
            "Policies a discovery source's last good result gave (opted-in targets).",
            labels=["source"],
        )
        reads = CounterMetricFamily(
            "autoscaler_discovery_reads",
            "Reads of a discovery source, by result (ok, error).",
            labels=["source", "result"],
        )
        last = GaugeMetricFamily(
            "autoscaler_discovery_last_success_timestamp_seconds",
            "When a discovery source was last read successfully.",
            labels=["source"],
        )
        for health in self._health():
            up.add_metric([health.source], 1.0 if health.up else 0.0)
            targets.add_metric([health.source], health.targets)
            reads.add_metric([health.source, "ok"], health.reads)
            reads.add_metric([health.source, "error"], health.failures)
            if health.last_success is not None:
                last.add_metric([health.source], health.last_success)
        yield from (up, targets, reads, last)


class _NomadStreams(Collector):
    """`autoscaler_nomad_event_stream_up{namespace,region}`, read at scrape time."""

    def __init__(self, streams: Callable[[], Iterable[tuple[str, str, bool]]]) -> None:
        self._streams = streams

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "autoscaler_nomad_event_stream_up",
            "1 while Nomad's job event stream of a namespace vouches for the statuses kept "
            "of steady targets; 0 while it is down, silent or refused (every evaluation "
            "then reads its target).",
            labels=["namespace", "region"],
        )
        for namespace, region, is_up in self._streams():
            up.add_metric([namespace, region], 1.0 if is_up else 0.0)
        yield up


class _CountsByLabel(Collector):
    """A counter family with one label, its counts read from `counts()` at scrape time
    (`autoscaler_leader_transitions_total{transition}`,
    `autoscaler_http_malformed_requests_total{kind}`)."""

    def __init__(
        self, name: str, documentation: str, label: str, counts: Callable[[], Mapping[str, int]]
    ) -> None:
        self._name, self._documentation, self._label = name, documentation, label
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=[self._label])
        for value, n in self._counts().items():
            family.add_metric([value], n)
        yield family


class _Count(Collector):
    """A counter without labels, its count read from `count()` at scrape time
    (`autoscaler_http_send_timeouts_total`)."""

    def __init__(self, name: str, documentation: str, count: Callable[[], int]) -> None:
        self._name, self._documentation, self._count = name, documentation, count

    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily(self._name, self._documentation, value=self._count())


class _HttpRequests(Collector):
    """`autoscaler_http_requests_total{route,method,status}` and
    `autoscaler_http_request_duration_seconds{route}`, read at scrape time."""

    def __init__(self, requests: RequestMetrics) -> None:
        self._requests = requests

    def collect(self) -> Iterable[Metric]:
        seen = self._requests.seen()
        answers = CounterMetricFamily(
            "autoscaler_http_requests",
            "Answers of the HTTP API, refusals before routing included, by route template "
            "(other: no route), method and status code.",
            labels=["route", "method", "status"],
        )
        for labels, n in sorted(seen.answers.items()):
            answers.add_metric(list(labels), n)
        durations = HistogramMetricFamily(
            "autoscaler_http_request_duration_seconds",
            "Time from a request's head to the end of its answer, by route template.",
            labels=["route"],
        )
        bounds = [str(float(b)) for b in seen.buckets] + ["+Inf"]
        for route, (counts, total) in sorted(seen.durations.items()):
            cumulative = itertools.accumulate(counts)
            durations.add_metric([route], list(zip(bounds, cumulative, strict=True)), total)
        yield answers
        yield durations


class _AwsRequests(Collector):
    """`autoscaler_aws_requests_total{region,action}`, read at scrape time."""

    def __init__(self, counts: Callable[[], Iterable[tuple[str, str, int]]]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        sent = CounterMetricFamily(
            "autoscaler_aws_requests",
            "Requests sent to the AWS Auto Scaling API (retries included), by region and "
            "action: what counts against the account's throttling.",
            labels=["region", "action"],
        )
        for region, action, n in self._counts():
            sent.add_metric([region, action], n)
        yield sent


class _Registry(CollectorRegistry):
    """A registry that knows the order its collectors were registered in (the order
    `collect` follows), so that `exposition` can let the per-policy families write their
    own text between the other collectors' metrics."""

    def __init__(self, *, auto_describe: bool) -> None:
        super().__init__(auto_describe=auto_describe)
        self._ordered: dict[Collector, None] = {}
        self._ordered_lock = threading.Lock()

    def register(self, collector: Collector) -> None:
        super().register(collector)
        with self._ordered_lock:
            self._ordered[collector] = None

    def unregister(self, collector: Collector) -> None:
        super().unregister(collector)
        with self._ordered_lock:
            self._ordered.pop(collector, None)

    def exposition(self) -> bytes:
        """What `generate_latest(self)` gives, written faster for the families."""
        with self._ordered_lock:
            collectors = list(self._ordered)
        return b"".join(
            c.text().encode() if isinstance(c, Family) else generate_latest(c) for c in collectors
        )


class Telemetry:
    """Every metric of the service, and the few calls that update them."""

    def __init__(self, *, per_policy_histograms: bool = True) -> None:
        """`per_policy_histograms=False` (`--metrics-histograms total`): the two duration
        histograms without their `policy` and `check` labels, one series set in all (at
        10,000 policies they are 270,000 of the 380,000 lines of `/metrics`)."""
        # `*_created` series double the output and no dashboard uses them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self._succeeded_once: set[str] = set()  # policies whose success clock is running
        self._problems: frozenset[Problem] = frozenset()  # those of the last load, counted
        # (policy, check) pairs of the policies loaded now, each to the one tuple that every
        # family keys its series with; None until the first load. Likewise `(policy,)` in
        # `_ones`. One tuple per series key instead of one per family: 215 bytes less per
        # policy, 2 MB at 10,000.
        self._live_checks: dict[tuple[str, str], tuple[str, str]] | None = None
        self._ones: dict[str, tuple[str]] = {}
        self._disabled: set[str] = set()  # loaded but disabled: no last success to age
        # Held through a reload (`loaded`) and each update of a policy's series (`observe`,
        # `crashed`, `triggered_by`): what counts for a policy the reload removes is either
        # forgotten with it, or not counted at all (made again, its series stayed for ever).
        self._lock = threading.Lock()
        self.registry = _Registry(auto_describe=True)
        r = self.registry
        # The standard process_* (CPU, memory, file descriptors, start time) and python_*
        # (version, garbage collector) series, as the process-global registry has them.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        Gauge(
            "autoscaler_build_info", "Always 1; the version is a label.", ["version"], registry=r
        ).labels(__version__).set(1)
        self.evaluations = CounterFamily(
            "autoscaler_evaluations",
            "Evaluations of a policy, by result: ok, or error (could not fully evaluate).",
            ["policy", "result"],
            registry=r,
        )
        self.decisions = CounterFamily(
            "autoscaler_decisions",
            "Decisions by action (up, down, none, hold).",
            ["policy", "action"],
            registry=r,
        )
        self._per_policy_histograms = per_policy_histograms
        self.evaluation_seconds = HistogramFamily(
            "autoscaler_evaluation_duration_seconds",
            "Time to evaluate a policy: target status, queries, decision and scale call.",
            ["policy"] if per_policy_histograms else [],
            r,
            buckets=EVALUATION_BUCKETS,
        )
        self.query_seconds = HistogramFamily(
            "autoscaler_query_duration_seconds",
            "Time for one check's PromQL query, retries included.",
            ["policy", "check"] if per_policy_histograms else [],
            r,
            buckets=QUERY_BUCKETS,
        )
        # Formerly autoscaler_current_count / autoscaler_desired_count (README: Metrics).
        self.current = GaugeFamily(
            "autoscaler_current_capacity",
            "Count (instances, allocations) the target reported.",
            ["policy"],
            registry=r,
        )
        self.desired = GaugeFamily(
            "autoscaler_desired_capacity",
            "Count the last decision wanted.",
            ["policy"],
            registry=r,
        )
        self.check_value = GaugeFamily(
            "autoscaler_check_value",
            "The value a check's query returned at the last evaluation (NaN when it gave none).",
            ["policy", "check"],
            registry=r,
        )
        self.check_desired = GaugeFamily(
            "autoscaler_check_desired_capacity",
            "The count a check asked for at the last evaluation, before the policy combined "
            "the checks and applied its limits and bounds (NaN when the check failed).",
            ["policy", "check"],
            registry=r,
        )
        self.forecast = GaugeFamily(
            "autoscaler_check_forecast_value",
            "A check's forecast of its own value, `lead` ahead (NaN while it has none).",
            ["policy", "check"],
            registry=r,
        )
        self.forecast_lead = GaugeFamily(
            "autoscaler_check_forecast_lead_seconds",
            "How far ahead the check's forecast looks.",
            ["policy", "check"],
            registry=r,
        )
        self.forecast_error = GaugeFamily(
            "autoscaler_check_forecast_error_ratio",
            "Recent relative error of the check's forecasts (mean |error| / mean value).",
            ["policy", "check"],
            registry=r,
        )
        self.actions = CounterFamily(
            "autoscaler_scaling_actions",
            "Scaling actions taken (or, with dry_run=true, that would have been taken).",
            ["policy", "direction", "dry_run"],
            registry=r,
        )
        self.errors = Counter(
            "autoscaler_errors",
            "Errors by kind: target, source, scale, state, lease, crash, policy, notify.",
            ["kind"],
            registry=r,
        )
        self.policies_loaded = Gauge(
            "autoscaler_policies_loaded", "Valid policies currently loaded.", registry=r
        )
        self.policies_enabled = Gauge(
            "autoscaler_policies_enabled", "Loaded policies that are evaluated.", registry=r
        )
        self.load_errors = Gauge(
            "autoscaler_policy_load_errors",
            "Problems in the policies at the last reload or discovery change (0 when all are "
            "valid); a failing discovery source is none (autoscaler_discovery_up says it).",
            registry=r,
        )
        self.reloads = Counter(
            "autoscaler_reloads",
            "Policy reloads, by result: success, or failure (some file is invalid).",
            ["result"],
            registry=r,
        )
        self.last_reload = Gauge(
            "autoscaler_last_reload_timestamp_seconds",
            "When the policy files were last read.",
            registry=r,
        )
        self.last_success = GaugeFamily(
            "autoscaler_last_successful_evaluation_timestamp_seconds",
            "When the policy was last evaluated without error (or loaded, if never since).",
            ["policy"],
            registry=r,
        )
        self.interval = GaugeFamily(
            "autoscaler_policy_interval_seconds",
            "How often the policy is evaluated (its interval); no series while it is disabled.",
            ["policy"],
            registry=r,
        )
        self.alerts = Counter(
            "autoscaler_alerts_received",
            "Alerts received from Alertmanager, by status (firing, resolved).",
            ["status"],
            registry=r,
        )
        self.alerts_left_out = Counter(
            "autoscaler_alerts_truncated",
            "Alerts Alertmanager left out of notifications (max_alerts), names unknown.",
            registry=r,
        )
        self.triggered = Counter(
            "autoscaler_triggered_evaluations",
            "Evaluations asked for out of schedule (triggers before a run share it), by source.",
            ["policy", "source"],
            registry=r,
        )
        self.evaluation_errors = CounterFamily(
            "autoscaler_evaluation_errors",
            "Evaluations of a policy that could not be completed, by kind: target (unreadable), "
            "source (Prometheus unreachable), scale (the scale call failed), state, lease, "
            "crash.",
            ["policy", "kind"],
            registry=r,
        )
        self.missing_data_since = GaugeFamily(
            "autoscaler_missing_data_since_timestamp_seconds",
            "Since when no check of the policy has given usable data (it holds, or falls "
            "back); no series while one does.",
            ["policy"],
            registry=r,
        )
        self.notifications = Counter(
            "autoscaler_notifications",
            "Outgoing webhook notifications, by result (sent, failed, dropped).",
            ["result"],
            registry=r,
        )

    def watch_queries(self, counts: Callable[[], tuple[int, int]]) -> None:
        """Export `autoscaler_queries_total` from `counts() -> (sent, shared)`."""
        self.registry.register(_QueryCounts(counts))

    def watch_discovery(self, health: Callable[[], Iterable[SourceHealth]]) -> None:
        """Export `autoscaler_discovery_*` from `health()`, read at each scrape."""
        self.registry.register(_DiscoveryHealth(health))

    def watch_nomad_streams(self, streams: Callable[[], Iterable[tuple[str, str, bool]]]) -> None:
        """Export `autoscaler_nomad_event_stream_up` from `streams()`, read at each scrape."""
        self.registry.register(_NomadStreams(streams))

    def watch_malformed_requests(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Export `autoscaler_http_malformed_requests_total` from `counts()`, read at each
        scrape."""
        self.registry.register(
            _CountsByLabel(
                "autoscaler_http_malformed_requests",
                "Requests to the HTTP API that were not HTTP the server accepts, by kind: "
                "invalid (answered 400), unsupported_upgrade (an Upgrade header, not upgraded).",
                "kind",
                counts,
            )
        )

    def watch_http_connections(
        self, counts: Callable[[], Mapping[str, int]], send_timeouts: Callable[[], int]
    ) -> None:
        """Export `autoscaler_http_connections_over_limit_total` from `counts()` and
        `autoscaler_http_send_timeouts_total` from `send_timeouts()`, read at each scrape."""
        self.registry.register(
            _CountsByLabel(
                "autoscaler_http_connections_over_limit",
                "Connections to the HTTP API beyond --api-max-connections, by what was done: "
                "closed_idle (the connection idle the longest was closed to make room), "
                "closed_receiving (none idle: the oldest still sending its request's body was "
                "answered 408 and closed to make room), closed_stalled (none idle or "
                "receiving: the oldest whose client had received nothing of its answer for "
                "5 s was closed to "
                "make room), refused (every connection had a request being handled: "
                "answered 503).",
                "action",
                counts,
            )
        )
        self.registry.register(
            _Count(
                "autoscaler_http_send_timeouts",
                "Connections to the HTTP API closed because their client read nothing of an "
                "answer for 60 s (what was left of it dropped).",
                send_timeouts,
            )
        )

    def watch_http_requests(self, requests: RequestMetrics) -> RequestMetrics:
        """Export `autoscaler_http_requests_total` and
        `autoscaler_http_request_duration_seconds` from the API's `requests`, read at each
        scrape; `requests`, for the API to count in."""
        self.registry.register(_HttpRequests(requests))
        return requests

    def watch_aws_requests(self, counts: Callable[[], Iterable[tuple[str, str, int]]]) -> None:
        """Export `autoscaler_aws_requests_total` from `counts()`, read at each scrape."""
        self.registry.register(_AwsRequests(counts))

    def watch_state(
        self, durable: Callable[[], bool], dropped: Callable[[], int] | None = None
    ) -> None:
        """Export `autoscaler_state_durable` from `durable()`, and with `dropped`
        `autoscaler_state_decisions_dropped_total` from it, read at each scrape."""
        Gauge(
            "autoscaler_state_durable",
            "1 while decisions are written to the state database; 0 while they are kept in "
            "memory only (and scale-in is held).",
            registry=self.registry,
        ).set_function(lambda: 1.0 if durable() else 0.0)
        if dropped is not None:
            self.registry.register(_DroppedDecisions(dropped))

    def watch_leader(
        self,
        leading: Callable[[], bool],
        transitions: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        """Export `autoscaler_leader` from `leading()`, and with `transitions` (a leader
        lease) `autoscaler_leader_transitions_total` from it, read at each scrape."""
        Gauge(
            "autoscaler_leader",
            "1 while this replica evaluates the policies (the leader, or the only replica); "
            "0 on a standby.",
            registry=self.registry,
        ).set_function(lambda: 1.0 if leading() else 0.0)
        if transitions is not None:
            self.registry.register(
                _CountsByLabel(
                    "autoscaler_leader_transitions",
                    "Times this replica started leading (elected) or stopped: its lease lapsed "
                    "(not renewed in time), was taken over by another replica, or was released.",
                    "transition",
                    transitions,
                )
            )

    def observe(self, evaluation: Evaluation, *, at: float | None = None) -> None:
        """Record one applied evaluation (not a preview)."""
        with self._lock:  # not halfway through a reload (see `loaded`)
            self._observe(evaluation, at)

    def _observe(self, evaluation: Evaluation, at: float | None) -> None:
        d = evaluation.decision
        policy = d.policy
        one = self._ones.get(policy) or (policy,)
        # A policy removed while this evaluation ran lost its series with the reload: they
        # are not made again (they would stay for the process's life; its last-success
        # timestamp would age, and the stale-policy alert fire for a policy that is gone).
        # Nor is a disabled one's last success.
        live = self._is_live(policy)
        if live:
            self.evaluations.inc((policy, "ok" if evaluation.ok else "error"))
            self.decisions.inc((policy, d.action.value))
        per_policy = self._per_policy_histograms
        if live or not per_policy:
            self.evaluation_seconds.observe(one if per_policy else (), evaluation.duration)
        for check, seconds in evaluation.query_seconds:
            if not per_policy:
                self.query_seconds.observe((), seconds)
            elif (pair := self._live(policy, check)) is not None:
                self.query_seconds.observe(pair, seconds)
        for result in d.checks:
            if (labels := self._live(policy, result.name)) is not None:
                self.check_value.set(labels, _or_nan(result.value))
                self.check_desired.set(labels, _or_nan(result.desired))
                if result.forecast is not None:
                    reading = result.forecast
                    self.forecast.set(labels, _or_nan(reading.value))
                    self.forecast_lead.set(labels, reading.lead.total_seconds())
                    self.forecast_error.set(labels, _or_nan(reading.error))
        if d.current is not None and live:
            self.current.set(one, d.current)
        if d.desired is not None and live:
            self.desired.set(one, d.desired)
        if d.changes_target and live:
            self.actions.inc((policy, d.action.value, str(d.dry_run).lower()))
        if evaluation.error_kind:
            self.errors.labels(evaluation.error_kind).inc()
            if live:
                self.evaluation_errors.inc((policy, evaluation.error_kind))
        memory = evaluation.memory
        if memory is not None and live:  # (None: no decision was made, nothing learnt)
            since = memory.missing_data_since
            if memory.missing_data_streak and since is not None and policy not in self._disabled:
                self.missing_data_since.set(one, since.timestamp())
            else:
                self.missing_data_since.remove(one)
        if evaluation.ok and live and policy not in self._disabled:
            self._succeeded_once.add(policy)
            self.last_success.set(one, time.time() if at is None else at)

    def triggered_by(self, policy: str, source: str) -> None:
        """One evaluation of `policy` started out of schedule by `source` (alert, api).

        Not counted for a policy a reload removed since it was triggered: its series went
        with the reload, and counting would make it again, for the process's life."""
        with self._lock:
            if self._is_live(policy):
                self.triggered.labels(policy, source).inc()

    def crashed(self, policy: str) -> None:
        """An evaluation raised instead of returning a decision."""
        with self._lock:
            if self._is_live(policy):  # (see `observe`)
                self.evaluations.inc((policy, "error"))
                self.evaluation_errors.inc((policy, CRASH))
        self.errors.labels(CRASH).inc()

    def loaded(
        self,
        policies: Iterable[Policy],
        problems: Collection[Problem],
        *,
        removed: Iterable[str],
        files_read: bool,
    ) -> None:
        """Record the policies in force after a reload of the files (`files_read`) or a
        discovery change, and drop the per-policy series of removed ones.

        `problems` are those of the policies (files, discovered targets), not of failing
        discovery sources: an outage of Nomad or AWS is `autoscaler_discovery_up`, and must
        not fire the alert on invalid policy files.

        Only a reload counts in `autoscaler_reloads_total` and moves
        `autoscaler_last_reload_timestamp_seconds`: a discovery change reads no file. Each
        problem counts in `autoscaler_errors_total{kind="policy"}` once, when it appears:
        the reloads and discovery changes that find it again (a target found, another file
        saved) are no new error, and how often they come is not how broken the policies are."""
        with self._lock:
            self._load(policies, problems, removed=removed, files_read=files_read)

    def _load(
        self,
        policies: Iterable[Policy],
        problems: Collection[Problem],
        *,
        removed: Iterable[str],
        files_read: bool,
    ) -> None:
        policies = list(policies)
        self.policies_loaded.set(len(policies))
        self.policies_enabled.set(sum(1 for p in policies if p.enabled))
        self.load_errors.set(len(problems))
        if files_read:
            self.reloads.labels("failure" if problems else "success").inc()
            self.last_reload.set(time.time())
        now_found = frozenset(problems)
        if appeared := len(now_found - self._problems):
            self.errors.labels(POLICY).inc(appeared)
        self._problems = now_found
        # A disabled policy is not evaluated: its "last success" would age for ever, and
        # the stale-policy alert fire for a policy switched off on purpose.
        for policy in policies:
            if not policy.enabled:  # (nor data to miss for ever, nor an interval)
                self.missing_data_since.remove((policy.name,))
                self.interval.remove((policy.name,))
            if not policy.enabled and policy.name in self._succeeded_once:
                self._succeeded_once.discard(policy.name)
                self.last_success.remove((policy.name,))
        ones = self._ones
        self._ones = {p.name: ones.get(p.name) or (p.name,) for p in policies}
        if removed:
            self._forget(set(removed))
        # What the staleness alert allows beside its 5 minutes: a policy evaluated every 10
        # minutes is not stale in between.
        for policy in policies:
            if policy.enabled:
                self.interval.set(self._ones[policy.name], policy.interval.total_seconds())
        self._disabled = {p.name for p in policies if not p.enabled}
        pairs = self._live_checks or {}
        live = {
            key: pairs.get(key) or key
            for key in ((p.name, c.name) for p in policies for c in p.checks)
        }
        # A check whose `forecast` was removed loses its forecast series with the reload.
        forecasting = {
            (p.name, c.name) for p in policies for c in p.checks if c.forecast is not None
        }
        self._live_checks = live
        per_checks: list[GaugeFamily | HistogramFamily] = [self.check_value, self.check_desired]
        if self._per_policy_histograms:
            per_checks.append(self.query_seconds)
        for per_check in per_checks:
            for labels in per_check.series() - live.keys():
                per_check.remove(labels)
        for per_check in (self.forecast, self.forecast_lead, self.forecast_error):
            for labels in per_check.series() - forecasting:
                per_check.remove(labels)
        # A policy that has never evaluated cleanly must still age: start its clock at load
        # time, so "no success for 5 minutes" alerts fire for one failing since startup.
        now = time.time()
        for policy in policies:
            if policy.enabled and policy.name not in self._succeeded_once:
                self._succeeded_once.add(policy.name)
                self.last_success.set(self._ones[policy.name], now)

    def _is_live(self, policy: str) -> bool:
        """Whether `policy` is loaded now (every policy counts until the first load)."""
        return self._live_checks is None or policy in self._ones

    def _forget(self, names: set[str]) -> None:
        """Drop every series of the policies `names`, which are gone: the counters and the
        duration histogram outlive reloads, not their policy (discovery churning targets,
        blue/green groups named `web-v001`, `web-v002`, ... grew /metrics without end)."""
        for name in names:
            self._succeeded_once.discard(name)
            for gauge in (
                self.current,
                self.desired,
                self.last_success,
                self.missing_data_since,
                self.interval,
            ):
                gauge.remove((name,))
        families: list[CounterFamily | HistogramFamily] = [
            self.evaluations,
            self.decisions,
            self.actions,
            self.evaluation_errors,
        ]
        if self._per_policy_histograms:
            families.append(self.evaluation_seconds)
        for family in families:
            for labels in family.series():
                if labels and labels[0] in names:
                    family.remove(labels)
        for name in names:
            for source in ("alert", "api"):
                with contextlib.suppress(KeyError):  # never triggered that way
                    self.triggered.remove(name, source)

    def _live(self, policy: str, check: str) -> tuple[str, str] | None:
        """The labels of the check's series, or None when it belongs to no policy loaded
        now (every check counts until the first load)."""
        live = self._live_checks
        return (policy, check) if live is None else live.get((policy, check))

    def notified(self, result: str) -> None:
        """One notification was sent, failed after its retries, or dropped (queue full)."""
        self.notifications.labels(result).inc()
        if result != "sent":
            self.errors.labels(NOTIFY).inc()

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type: `generate_latest` of the registry,
        with each per-policy family writing its own lines (`families`). What writing it
        freed inside glibc's arenas goes back to the system (`allocator`)."""
        body = self.registry.exposition()
        give_back_free_pages()
        return body, CONTENT_TYPE_LATEST


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value
