"""`PrometheusSource.query_range` against a real Prometheus holding backfilled history.

The real server pins the grid (exact, sub-second start), the split under Prometheus' limit
of 11,000 points per series and the join of the pieces; a small stand-in pins what a real
server will not do on demand: fail once with a 503, or check credentials.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from autoscaler.adapters.sources import PrometheusSettings, PrometheusSource
from autoscaler.core.series import own_series
from autoscaler.errors import QueryError, SourceUnavailable
from tests.support.prometheus import PrometheusServer

pytestmark = pytest.mark.integration

START = datetime(2026, 1, 1, tzinfo=UTC)
HOURS = 4
SECOND = timedelta(seconds=1)


def openmetrics() -> str:
    """`fine` every 15 s for 4 hours (its value is the sample's number), `dup` twice."""
    t0 = int(START.timestamp())
    lines = ["# TYPE fine gauge\n"]
    lines += [f"fine {i} {t0 + 15 * i}\n" for i in range(HOURS * 240)]
    lines.append("# TYPE dup gauge\n")
    for job in ("a", "b"):
        lines += [f'dup{{job="{job}"}} 1 {t0 + 60 * i}\n' for i in range(10)]
    lines.append("# TYPE grp gauge\n")
    for value, (job, pod) in enumerate(GROUPED, start=1):
        escaped = job.replace("\\", "\\\\").replace('"', '\\"')
        lines += [f'grp{{job="{escaped}",pod="{pod}"}} {value} {t0 + 60 * i}\n' for i in range(10)]
    return "".join(lines)


# (job, pod) of the `grp` series: a label value with PromQL's and label_replace's specials.
GROUPED = [("a", "1"), ("a", "2"), ("b", "1"), ('x$1"q\\', "1")]


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus-range"))
    server.backfill(openmetrics())
    with server:
        yield server


@pytest.fixture
def source(history: PrometheusServer) -> PrometheusSource:
    return PrometheusSource(PrometheusSettings(url=history.url, timeout=20, deadline=40))


def test_a_range_longer_than_11000_points_is_split_and_joined(source: PrometheusSource) -> None:
    end = START + timedelta(hours=HOURS) - SECOND  # 14,400 instants at 1 s
    (series,) = source.query_range("fine", start=START, end=end, step=SECOND)
    assert dict(series.labels) == {"__name__": "fine"}
    times = [t for t, _ in series.points]
    assert len(times) == 14_400 and times == [START.timestamp() + i for i in range(14_400)]
    # Each instant reads the latest sample at or before it, as an instant query would.
    assert all(v == i // 15 for i, (_, v) in enumerate(series.points))
    pieces = source.query_range("fine", start=START, end=end, step=SECOND, max_points=1000)
    assert pieces == [series]


def test_unsplit_the_same_range_is_refused_by_prometheus(source: PrometheusSource) -> None:
    end = START + timedelta(hours=HOURS) - SECOND
    with pytest.raises(QueryError, match="11,000 points"):
        source.query_range("fine", start=START, end=end, step=SECOND, max_points=20_000)


def test_the_grid_starts_exactly_where_asked_even_between_seconds(
    source: PrometheusSource,
) -> None:
    start = START + timedelta(minutes=10, milliseconds=500)
    (series,) = source.query_range("fine", start=start, end=start + 4 * SECOND, step=SECOND)
    assert [t for t, _ in series.points] == [start.timestamp() + i for i in range(5)]


def test_every_series_comes_back_with_its_labels(source: PrometheusSource) -> None:
    start, step = START, timedelta(minutes=1)
    found = source.query_range("dup", start=start, end=start + 9 * step, step=step)
    assert sorted(s.labels["job"] for s in found) == ["a", "b"]
    assert all(len(s.points) == 10 for s in found)


def test_scalars_nan_and_no_series(source: PrometheusSource) -> None:
    step = timedelta(minutes=1)
    (scalar,) = source.query_range("0/0", start=START, end=START + step, step=step)
    assert scalar.labels == {} and all(math.isnan(v) for _, v in scalar.points)
    assert source.query_range("absent_metric", start=START, end=START + step, step=step) == []


def test_a_range_vector_is_rejected_by_prometheus_as_a_query_error(
    source: PrometheusSource,
) -> None:
    with pytest.raises(QueryError, match="range vector"):
        source.query_range("fine[5m]", start=START, end=START + SECOND, step=SECOND)


# --- what a real server will not do on demand -----------------------------------------------


@dataclass
class Scripted:
    """An HTTP server answering from a script (the last answer repeats); records requests."""

    answers: list[tuple[int, dict[str, object]]]
    url: str = ""
    seen: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    state = Scripted([])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            state.seen.append({**query, ":path": parts.path, **dict(self.headers.items())})
            script = state.answers
            status, body = script.pop(0) if len(script) > 1 else script[0]
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


MATRIX: dict[str, object] = {"status": "success", "data": {"resultType": "matrix", "result": []}}


def test_a_503_is_retried_and_credentials_and_strictness_are_sent(scripted: Scripted) -> None:
    scripted.answers = [(503, {"status": "error", "error": "starting"}), (200, MATRIX)]
    url = scripted.url
    source = PrometheusSource(
        PrometheusSettings(url=url, bearer_token="s3cret-token", timeout=1, deadline=5)
    )
    assert source.query_range("up", start=START, end=START + SECOND, step=SECOND) == []
    first, second = scripted.seen
    assert first == second and second[":path"] == "/api/v1/query_range"
    assert second["partial_response"] == "false" and second["step"] == "1"
    assert (second["start"], second["end"]) == ("1767225600", "1767225601")
    assert second["Authorization"] == "Bearer s3cret-token"


def test_refused_credentials_are_source_unavailable(scripted: Scripted) -> None:
    scripted.answers = [(401, {"status": "error", "error": "unauthorized"})]
    source = PrometheusSource(PrometheusSettings(url=scripted.url, timeout=1, deadline=2))
    with pytest.raises(SourceUnavailable, match="refused the credentials"):
        source.query_range("up", start=START, end=START + SECOND, step=SECOND)
    assert len(scripted.seen) == 1


def test_an_answer_that_is_not_a_matrix_is_a_query_error(scripted: Scripted) -> None:
    vector: dict[str, object] = {
        "status": "success",
        "data": {"resultType": "vector", "result": []},
    }
    scripted.answers = [(200, vector)]
    source = PrometheusSource(PrometheusSettings(url=scripted.url, timeout=1, deadline=2))
    with pytest.raises(QueryError, match="of type 'vector', not a matrix"):
        source.query_range("up", start=START, end=START + SECOND, step=SECOND)


@pytest.mark.parametrize(
    ("job", "value"), [("a", 1 + 2), ("b", 3), ('x$1"q\\', 4), ("absent", None)]
)
def test_a_grouped_query_narrowed_to_one_target_returns_its_series_alone(
    source: PrometheusSource, job: str, value: float | None
) -> None:
    """What a template's target asks for its history: the grouped query's series with its
    labels, and nothing else (not the other targets' series)."""
    query = own_series("sum by (job) (grp)", (("job", job),))
    end = START + timedelta(minutes=9)
    found = source.query_range(query, start=START, end=end, step=timedelta(minutes=1))
    if value is None:
        assert found == []
        return
    (series,) = found
    assert dict(series.labels) == {"job": job}
    assert [v for _, v in series.points] == [value] * 10
