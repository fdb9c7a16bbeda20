"""Backtests on recorded values: the production decisions, counted and explained."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from autoscaler.core.model import (
    Check,
    Cooldown,
    ForecastSettings,
    NomadTarget,
    Policy,
    Stabilization,
    Strategy,
    TargetStatus,
)
from autoscaler.core.series import own_series
from autoscaler.errors import QueryError, SourceUnavailable
from autoscaler.replay import backtest
from autoscaler.replay.backtest import Options, count_query_for, run_backtest
from autoscaler.replay.harness import Replay
from autoscaler.replay.history import StoredHistory
from tests.unit.replay.fakes import (
    HOUR,
    MINUTE,
    QUERY,
    T0,
    FakeRange,
    load,
    minutes,
    policy,
    series,
)


def test_changes_counts_and_instance_hours_of_one_policy() -> None:
    source = FakeRange({QUERY: load({range(0, 30): 35.0, range(30, 60): 75.0})})
    result = run_backtest([policy()], source, Options(start=T0, end=T0 + HOUR, start_count=2))
    (web,) = result.policies
    assert (web.evaluations, web.actions, web.min_count, web.max_count) == (60, 2, 2, 8)
    assert [(minutes(c.at), c.old, c.new) for c in web.changes] == [(0, 2, 4), (30, 4, 8)]
    assert web.changes[1].reasons == ("rps: 75 / 10 per instance → 8",)
    assert web.instance_hours == pytest.approx((30 * 4 + 30 * 8) / 60)
    assert web.holds == 0 and web.no_data == 0 and web.errors == [] and web.notes == []


def test_the_json_contract_of_a_policy() -> None:
    source = FakeRange({QUERY: load({range(0, 60): 35.0})})
    result = run_backtest([policy()], source, Options(start=T0, end=T0 + HOUR, start_count=2))
    document = result.to_dict()
    assert document["from"] == "2026-01-01T00:00:00Z" and document["to"] == "2026-01-01T01:00:00Z"
    (web,) = document["policies"]
    assert list(web)[:7] == [
        "policy",
        "evaluations",
        "actions",
        "instance_hours",
        "min_count",
        "max_count",
        "changes",
    ]
    assert web["changes"] == [
        {
            "at": "2026-01-01T00:00:00Z",
            "from": 2,
            "to": 4,
            "reasons": ["rps: 35 / 10 per instance → 4"],
        }
    ]
    assert (web["step"], web["start_count"], web["instance_hours"]) == ("1m", 2, 4.0)


def test_a_gap_in_the_data_holds_and_never_scales_in() -> None:
    # 8 instances' worth of load, 20 minutes of nothing, then load for 2.
    source = FakeRange({QUERY: load({range(0, 20): 80.0, range(40, 60): 20.0})})
    result = run_backtest([policy()], source, Options(start=T0, end=T0 + HOUR, start_count=8))
    (web,) = result.policies
    assert [(minutes(c.at), c.old, c.new) for c in web.changes] == [(40, 8, 2)]
    assert (web.holds, web.no_data) == (20, 20)
    failures = web.check_failures["rps"]
    assert (failures.evaluations, minutes(failures.first_at)) == (20, 20)
    assert failures.first_error == "no data (no series)"
    assert web.min_count == 2 and web.instance_hours == pytest.approx((40 * 8 + 20 * 2) / 60)


def test_cooldowns_and_stabilization_behave_as_in_run() -> None:
    stabilized = policy(stabilization=Stabilization(up=timedelta(0), down=timedelta(minutes=10)))
    source = FakeRange({QUERY: load({range(0, 5): 95.0, range(5, 60): 15.0})})
    result = run_backtest([stabilized], source, Options(start=T0, end=T0 + HOUR, start_count=1))
    (web,) = result.policies
    # Up at once; down once the 10-minute window (strictly after now - 10m, as the HPA) has
    # forgotten the last peak recommendation, made at minute 4.
    assert [(minutes(c.at), c.new) for c in web.changes] == [(0, 10), (14, 2)]
    assert web.holds == 0


def test_identical_queries_of_several_policies_are_sent_once() -> None:
    source = FakeRange({QUERY: load({range(0, 60): 35.0}), "other": load({range(0, 60): 5.0})})
    policies = [policy("a"), policy("b"), policy("c", query="other")]
    result = run_backtest(policies, source, Options(start=T0, end=T0 + HOUR, start_count=2))
    assert result.range_queries == 2 and len(source.asked) == 2
    assert [p.max_count for p in result.policies] == [4, 4, 2]


def test_range_queries_count_the_history_read_before_the_window() -> None:
    # The forecast's history and the guard's window are range queries sent to Prometheus
    # too: `range_queries` says how many were sent, whatever they were for.
    forecasting = Check(
        name="rps",
        strategy=Strategy.PER_INSTANCE,
        query=QUERY,
        target=10,
        forecast=ForecastSettings(),
    )
    policies = [policy("ahead", checks=(forecasting,)), policy("reactive", query="other")]
    source = FakeRange({QUERY: load({range(0, 60): 35.0}), "other": load({range(0, 60): 5.0})})
    result = run_backtest(policies, source, Options(start=T0, end=T0 + HOUR, start_count=2))
    assert len(source.asked) == 3  # QUERY before --from and in the window; "other" in it
    assert result.range_queries == 3


def test_step_overrides_each_policy_interval() -> None:
    source = FakeRange({QUERY: load({range(0, 60): 35.0})})
    own = run_backtest(
        [policy(interval=timedelta(seconds=15))], source, Options(start=T0, end=T0 + HOUR)
    )
    stepped = run_backtest(
        [policy(interval=timedelta(seconds=15))],
        source,
        Options(start=T0, end=T0 + HOUR, step=5 * MINUTE),
    )
    assert own.policies[0].evaluations == 240 and stepped.policies[0].evaluations == 12
    assert [step for *_, step in source.asked] == [timedelta(seconds=15), 5 * MINUTE]
    assert own.policies[0].notes == ["start count 1 = the policy's min (no --start-count given)"]


def test_a_dry_run_policy_is_backtested_as_if_live() -> None:
    source = FakeRange({QUERY: load({range(0, 60): 35.0})})
    result = run_backtest([policy(dry_run=True)], source, Options(start=T0, end=T0 + HOUR))
    assert result.policies[0].actions == 1


def test_a_rejected_query_holds_every_evaluation_and_is_reported() -> None:
    source = FakeRange({QUERY: QueryError("Prometheus rejected query (HTTP 400): parse error")})
    result = run_backtest([policy()], source, Options(start=T0, end=T0 + HOUR, start_count=3))
    (web,) = result.policies
    assert (web.actions, web.holds, web.min_count, web.max_count) == (0, 60, 3, 3)
    assert web.errors == [f"{QUERY}: Prometheus rejected query (HTTP 400): parse error"]


def test_recorded_counts_side_by_side_and_the_start_from_the_recorded_count() -> None:
    counts = 'max(desired{asg="$asg"})'
    source = FakeRange(
        {
            QUERY: load({range(0, 60): 35.0}),
            'max(desired{asg="web"})': load({range(0, 10): 6.0, range(10, 50): 5.0}),
        }
    )
    options = Options(start=T0, end=T0 + HOUR, count_query=counts)
    (web,) = run_backtest([policy()], source, options).policies
    assert web.start_count == 6 and web.notes == ["start count 6: the recorded count at the start"]
    assert [(minutes(c.at), c.old, c.new) for c in web.changes] == [(0, 6, 4)]
    recorded = web.recorded
    assert recorded is not None
    assert (recorded.min_count, recorded.max_count, recorded.changes, recorded.missing) == (
        5,
        6,
        1,
        10,
    )
    assert recorded.instance_hours == pytest.approx((10 * 6 + 40 * 5) / 60)
    assert [(minutes(at), rec, sim) for at, rec, sim in recorded.counts] == [
        (0, 6, 4),
        (10, 5, 4),
        (50, None, 4),
    ]
    document = web.to_dict()
    assert document["recorded"]["query"] == 'max(desired{asg="web"})'
    assert document["counts"][1] == {"at": "2026-01-01T00:10:00Z", "recorded": 5, "simulated": 4}


def test_rescale_turns_recorded_utilization_into_simulated_utilization() -> None:
    utilization = Check(name="cpu", strategy=Strategy.TARGET_VALUE, query="cpu", target=0.5)
    cpu_policy = policy(checks=(utilization,), cooldown=Cooldown(up=HOUR, down=HOUR))
    source = FakeRange(
        {"cpu": load({range(0, 60): 0.9}), "count": load({range(0, 30): 4.0, range(30, 60): 0.0})}
    )
    options = Options(
        start=T0, end=T0 + HOUR, count_query="count", start_count=2, rescale=frozenset({"cpu"})
    )
    (web,) = run_backtest([cpu_policy], source, options).policies
    # 0.9 busy on 4 recorded instances is 1.8 on the 2 simulated: ceil(2 * 1.8 / 0.5) = 8.
    assert [(c.old, c.new) for c in web.changes] == [(2, 8)]
    assert web.changes[0].reasons[0].startswith("cpu: 1.8 / 0.5")
    assert any("assumes the load spreads evenly" in note for note in web.notes)
    # With a recorded count of 0 there is nothing to rescale by: the check fails, and holds.
    assert web.check_failures["cpu"].first_error == "no recorded count to rescale cpu by"
    assert web.check_failures["cpu"].evaluations == 30


def test_count_query_placeholders_come_from_each_target() -> None:
    asg = policy()
    nomad = policy("api", target=NomadTarget(job="api", group="web", namespace="prod"))
    template = 'x{policy="$policy", asg="$asg", region="$region"}'
    assert count_query_for(template, asg) == 'x{policy="web", asg="web", region="eu-west-3"}'
    assert count_query_for('sum(y{job="$job",group="$group",ns="$namespace"})', nomad) == (
        'sum(y{job="api",group="web",ns="prod"})'
    )
    with pytest.raises(ValueError, match=r"uses \$asg, but policy api's nomad target offers"):
        count_query_for(template, nomad)
    with pytest.raises(ValueError, match=r"literal \$ as \$\$"):
        count_query_for("x $", asg)


def test_worker_processes_give_the_same_backtest_as_one_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = FakeRange(
        {
            QUERY: load({range(0, 20): 35.0, range(20, 30): None, range(30, 60): 95.0}),
            "other": load({range(0, 60): 12.0}),
            "count": load({range(0, 60): 3.0}),
        }
    )
    policies = [policy("a"), policy("b", query="other"), policy("c"), policy("d", query="other")]
    options = Options(start=T0, end=T0 + HOUR, count_query="count")
    alone = run_backtest(policies, source, options)
    with monkeypatch.context() as patch:
        patch.setattr(backtest, "EVALUATIONS_PER_WORKER", 100)  # 4 x 60 evaluations: 2 workers
        shared = run_backtest(policies, source, options, jobs=2)
    assert shared.to_dict() == alone.to_dict()
    assert [p.policy for p in shared.policies] == ["a", "b", "c", "d"]


def test_a_grouped_check_learns_its_forecast_from_its_own_series_of_the_grouped_query() -> None:
    grouped = "sum by (job) (rate(x[2m]))"
    check = Check(
        name="rps",
        strategy=Strategy.PER_INSTANCE,
        query=grouped,
        target=10,
        select=(("job", "b"),),
        forecast=ForecastSettings(),
    )
    mine = series(*[20.0] * 4, job="b")
    source = FakeRange({grouped: [series(*[90.0] * 4, job="a"), mine]})
    options = Options(start=T0, end=T0 + HOUR)
    plan = backtest._with_past(backtest._plan(policy(checks=(check,)), options), source, options)
    # Held as the check's history asks for it (its own series, as Prometheus answers `run`).
    own = own_series(grouped, (("job", "b"),))
    assert plan.past == (((own, 60.0), mine.points),)  # at the forecast's resolution
    assert plan.past_labels == ((own, (("job", "b"),)),)
    assert plan.past_errors == ()
    # And the replay reads it, as the check's history asks for it.
    history = StoredHistory(dict(plan.past), {q: dict(pairs) for q, pairs in plan.past_labels})
    later = T0 + 5 * MINUTE  # the four points are before it
    replay = Replay(policy(checks=(check,)), start=later, count=2, history=history)
    evaluation = replay.evaluate(later, {"rps": 20.0}, TargetStatus(count=2))
    reading = evaluation.decision.checks[0].forecast
    assert reading is not None and reading.reason is not None
    assert "holds no history" not in reading.reason, reading.reason
    assert "history of 5m is shorter" in reading.reason, reading.reason  # 4 points and now


def test_a_history_before_the_window_with_several_series_is_reported_not_dropped() -> None:
    """As under `run`, which says "history unavailable: the query returned 2 series": the
    forecast learns nothing before --from, and the policy's errors say why."""
    check = replace(policy().checks[0], forecast=ForecastSettings())
    source = FakeRange({QUERY: [series(*[20.0] * 4, job="a"), series(*[30.0] * 4, job="b")]})
    options = Options(start=T0, end=T0 + HOUR, start_count=2)
    why = (
        f"{QUERY}: history before --from: the query returned 2 series over the range; "
        "a check needs exactly one"
    )
    plan = backtest._with_past(backtest._plan(policy(checks=(check,)), options), source, options)
    assert (plan.past, plan.past_errors) == ((), (why,))
    (web,) = run_backtest([policy(checks=(check,))], source, options).policies
    assert why in web.errors


def test_no_history_before_the_window_is_no_error() -> None:
    check = replace(policy().checks[0], forecast=ForecastSettings())
    options = Options(start=T0, end=T0 + HOUR)
    plan = backtest._plan(policy(checks=(check,)), options)
    plan = backtest._with_past(plan, FakeRange({QUERY: []}), options)
    assert (plan.past, plan.past_errors) == ((), ())


def test_the_targets_of_a_template_share_one_lookback_query_and_one_range_query() -> None:
    grouped = "sum by (job) (rate(x[2m]))"

    def target(job: str) -> Policy:
        check = Check(
            name="rps",
            strategy=Strategy.PER_INSTANCE,
            query=grouped,
            target=10,
            select=(("job", job),),
            forecast=ForecastSettings(),
        )
        return policy(f"web-{job}", checks=(check,))

    answer = [series(*[35.0] * 120, job="a"), series(*[75.0] * 120, job="b")]
    source = FakeRange({grouped: answer})
    result = run_backtest(
        [target("a"), target("b")], source, Options(start=T0, end=T0 + HOUR, start_count=2)
    )
    assert len(source.asked) == 2  # the lookback before --from, and the window
    assert result.range_queries == 2  # each counted once: every range query sent
    assert [p.max_count for p in result.policies] == [4, 8]  # each read its own series


def test_an_unreachable_prometheus_stops_at_the_first_history_read() -> None:
    """Unreachable is not a rejected query (`SourceUnavailable` is a `QueryError`): the
    backtest stops there (exit 3), instead of waiting out a deadline per forecast's query."""
    forecast = ForecastSettings()
    checks = (replace(policy().checks[0], forecast=forecast),)
    other = 'sum(rate(http_requests_total{service="api"}[1m]))'
    api = policy("api", other, checks=(replace(checks[0], query=other),))
    source = FakeRange({QUERY: SourceUnavailable("refused"), other: SourceUnavailable("refused")})
    with pytest.raises(SourceUnavailable):
        run_backtest([policy(checks=checks), api], source, Options(start=T0, end=T0 + HOUR))
    assert len(source.asked) == 1


def test_a_recorded_count_beyond_any_max_is_no_count() -> None:
    """As the core holds on a target reporting such a count: 1e20 is not a count that ran
    (it started the replay there: every evaluation "not evaluated", absurd instance-hours)."""
    source = FakeRange({QUERY: load({range(0, 60): 35.0}), "count": load({range(0, 60): 1e20})})
    options = Options(start=T0, end=T0 + HOUR, count_query="count")
    (web,) = run_backtest([policy()], source, options).policies
    assert web.start_count == 1 and web.no_data == 0
    assert web.notes == ["start count 1 = the policy's min (no recorded count at the start)"]
    assert web.recorded is not None and web.recorded.missing == 60
