"""Signals: Erlang C against textbook values, the M/M/c latency quantile, no-data cases."""

from __future__ import annotations

import math

import pytest

from autoscaler.replay.signals import LATENCY_CAP_SERVICE_TIMES, erlang_c, latency_p95, signal_value


@pytest.mark.parametrize(
    ("servers", "offered", "expected"),
    [
        pytest.param(1, 0.5, 0.5, id="M/M/1: P(wait) = rho"),
        pytest.param(2, 1.0, 1 / 3, id="2 servers, 1 Erlang"),
        pytest.param(3, 2.0, 4 / 9, id="3 servers, 2 Erlangs"),
        # 120 customers an hour, 3 minutes each, 10 assistants: "about 0.10" in the
        # classic exercise; 0.1013 exactly (checked with rational arithmetic).
        pytest.param(10, 6.0, 0.1013, id="10 servers, 6 Erlangs"),
        # Call-centre staffing tables at 10 Erlangs.
        pytest.param(11, 10.0, 0.6821, id="11 servers, 10 Erlangs"),
        pytest.param(12, 10.0, 0.4494, id="12 servers, 10 Erlangs"),
    ],
)
def test_erlang_c_matches_textbook_values(servers: int, offered: float, expected: float) -> None:
    assert erlang_c(servers, offered) == pytest.approx(expected, abs=5e-5)


def test_erlang_c_edges() -> None:
    assert erlang_c(4, 0.0) == 0.0
    assert erlang_c(4, 4.0) == 1.0  # unstable: everyone waits
    assert 0 < erlang_c(2000, 1900.0) < 1  # the recursion stays finite for big fleets
    with pytest.raises(ValueError, match="at least one server"):
        erlang_c(0, 1.0)


def test_p95_of_an_m_m_1_queue_is_the_closed_form() -> None:
    # M/M/1 sojourn time is exponential with rate mu - lambda.
    assert latency_p95(6.0, 1, 10.0) == pytest.approx(math.log(20) / 4, rel=1e-9)


def test_p95_of_an_idle_fleet_is_the_service_time_quantile() -> None:
    assert latency_p95(0.0, 5, 10.0) == pytest.approx(math.log(20) / 10, rel=1e-9)


def test_p95_with_more_servers_is_lower_and_waits_only_near_saturation() -> None:
    crowded = latency_p95(95.0, 10, 10.0)
    relaxed = latency_p95(70.0, 10, 10.0)
    assert crowded is not None and relaxed is not None
    assert crowded > relaxed > math.log(20) / 10


def test_overload_reads_the_cap_like_a_histograms_top_bucket() -> None:
    cap = LATENCY_CAP_SERVICE_TIMES / 10.0
    assert latency_p95(100.0, 10, 10.0) == cap
    assert latency_p95(5.0, 0, 10.0) == cap
    assert latency_p95(0.0, 0, 10.0) is None


@pytest.mark.parametrize(
    ("signal", "ready", "expected"),
    [
        ("load", 4, 60.0),
        ("per_instance", 4, 15.0),
        ("utilization", 4, 0.75),
        ("per_instance", 0, None),
        ("utilization", 0, None),
    ],
)
def test_signal_values(signal: str, ready: int, expected: float | None) -> None:
    assert signal_value(signal, 60.0, ready, 20.0) == expected


def test_unknown_signal_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="load, per_instance, utilization, latency_p95"):
        signal_value("cpu", 1.0, 1, 1.0)
