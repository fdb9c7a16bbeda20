"""PrometheusSource against a real Prometheus, and against tiny HTTP/TCP stand-ins.

The real server pins how answers are read (values, series counts, NaN, ±Inf, result types,
PromQL errors); the stand-ins pin what a real server will not do on demand: fail with 5xx
once, hang, drop connections, demand credentials, or serve a certificate from a private CA.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import socket
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from autoscaler.adapters.sources import PrometheusSettings, PrometheusSource
from autoscaler.adapters.sources.prometheus import PING_DEADLINE
from autoscaler.errors import QueryError, SourceUnavailable
from tests.support.prometheus import Metrics, PrometheusServer, Sample
from tests.support.prometheus_proxy import serve_prometheus_proxy
from tests.support.tls import make_ca_and_client_cert, make_ca_and_server_cert, server_context

pytestmark = pytest.mark.integration

TIMEOUT, DEADLINE = 0.5, 1.5
# A failure not retried ends in one attempt. The tests of it give the source a deadline
# of RETRIED_FOR s, which retries (0.1 to 1 s apart) would run on for 4 s or more; 1 s
# leaves a busy machine room for the one attempt (0.5 s, against DEADLINE, left little).
NOT_RETRIED, RETRIED_FOR = 1.0, 5.0
OK_BODY = json.dumps(
    {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "42"]}]},
    }
).encode()


def source_for(url: str, **settings: Any) -> PrometheusSource:
    """A source with short timeouts, so failure tests take about `DEADLINE` seconds."""
    return PrometheusSource(
        PrometheusSettings(url=url, **{"timeout": TIMEOUT, "deadline": DEADLINE, **settings})
    )


@pytest.fixture
def source(prometheus: PrometheusServer) -> PrometheusSource:
    return source_for(prometheus.url)


# --- stand-ins ----------------------------------------------------------------------------


@dataclass
class StandIn:
    """An HTTP server that answers from a script (the last answer repeats) and records requests.

    An answer is `(status, body)`, or `(status, body, headers)` to add headers (`Location`).
    """

    answers: list[tuple[int, bytes] | tuple[int, bytes, dict[str, str]]]
    url: str = ""
    requests: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture
def stand_in() -> Iterator[Callable[..., StandIn]]:
    servers: list[ThreadingHTTPServer] = []

    def start(
        *answers: tuple[int, bytes] | tuple[int, bytes, dict[str, str]],
        tls: ssl.SSLContext | None = None,
    ) -> StandIn:
        state = StandIn(list(answers))

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                state.requests.append({**dict(self.headers.items()), ":path": self.path})
                script = state.answers
                status, body, *extra = script.pop(0) if len(script) > 1 else script[0]
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for name, value in (extra[0] if extra else {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        scheme = "https" if tls else "http"
        state.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@dataclass
class TcpStandIn:
    """A TCP listener that counts connections and either drops them or never answers."""

    url: str
    connections: int = 0


@pytest.fixture
def tcp_stand_in() -> Iterator[Callable[[bool], TcpStandIn]]:
    listeners: list[socket.socket] = []
    held: list[socket.socket] = []

    def start(answer_never: bool) -> TcpStandIn:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)
        state = TcpStandIn(f"http://127.0.0.1:{listener.getsockname()[1]}")

        def serve() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                state.connections += 1
                if answer_never:
                    held.append(conn)
                else:
                    conn.close()

        threading.Thread(target=serve, daemon=True).start()
        return state

    yield start
    for sock in listeners + held:
        sock.close()


def attempts_in(message: str) -> int:
    match = re.search(r"after (\d+) attempt", message)
    assert match, message
    return int(match.group(1))


# --- reading answers from a real Prometheus ----------------------------------------------


def test_single_series_value_is_returned(source: PrometheusSource, metrics: Metrics) -> None:
    name = metrics.push("latency", 0.25, {"job": "api"})
    assert source.query(f'{name}{{job="api"}}') == 0.25


@pytest.mark.parametrize(
    ("promql", "expected"),
    [
        pytest.param("1+1", 2.0, id="literal"),
        pytest.param("vector(3)", 3.0, id="vector-without-labels"),
        pytest.param("scalar(vector(4.5))", 4.5, id="scalar-function"),
        pytest.param("-1e-3", -0.001, id="exponent"),
    ],
)
def test_scalar_and_label_free_results_are_values(
    source: PrometheusSource, promql: str, expected: float
) -> None:
    assert source.query(promql) == expected


def test_aggregated_series_give_one_value(source: PrometheusSource, metrics: Metrics) -> None:
    metrics.push_many(Sample("cpu", v, {"instance": str(i)}) for i, v in enumerate([1, 2, 3]))
    assert source.query(f"sum({metrics.name('cpu')})") == 6.0


def test_no_series_names_metric_and_matchers_as_the_fix(
    source: PrometheusSource, metrics: Metrics
) -> None:
    with pytest.raises(QueryError, match="no series: check the metric name and label matchers"):
        source.query(metrics.name("missing"))


def test_several_series_are_refused_with_count_labels_and_advice(
    source: PrometheusSource, metrics: Metrics
) -> None:
    metrics.push_many(Sample("cpu", 1, {"instance": f"i-{i}"}) for i in range(4))
    with pytest.raises(QueryError) as caught:
        source.query(metrics.name("cpu"))
    message = str(caught.value)
    assert "returned 4 series" in message
    assert "instance='i-0'" in message
    assert message.count("instance=") == 3
    assert "and 1 more" in message
    assert "sum()" in message


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param(math.nan, "NaN", id="nan"),
        pytest.param(math.inf, "+Inf", id="plus-inf"),
        pytest.param(-math.inf, "-Inf", id="minus-inf"),
    ],
)
def test_non_finite_series_values_are_refused(
    source: PrometheusSource, metrics: Metrics, value: float, shown: str
) -> None:
    name = metrics.push("ratio", value)
    with pytest.raises(QueryError, match=re.escape(shown)):
        source.query(name)


@pytest.mark.parametrize("promql", ["0/0", "1/0", "-1/0"])
def test_non_finite_scalars_are_refused(source: PrometheusSource, promql: str) -> None:
    with pytest.raises(QueryError, match=r"division by zero|NaN"):
        source.query(promql)


def test_range_vector_is_refused_with_advice(source: PrometheusSource, metrics: Metrics) -> None:
    name = metrics.push("requests", 5)
    with pytest.raises(QueryError, match=r"range vector.*avg_over_time"):
        source.query(f"{name}[5m]")


def test_empty_range_vector_is_still_called_a_range_vector(
    source: PrometheusSource, metrics: Metrics
) -> None:
    with pytest.raises(QueryError, match="range vector"):
        source.query(f"({metrics.name('nothing')}[5m])")


@pytest.mark.parametrize("promql", ['"hello"', '"1"'])
def test_string_results_are_refused_even_when_numeric(
    source: PrometheusSource, promql: str
) -> None:
    with pytest.raises(QueryError, match="string, not a number"):
        source.query(promql)


# --- the answer's type must be the expression's type ---------------------------------------


def _body(result_type: str | None, result: Any) -> bytes:
    data: dict[str, Any] = {"result": result}
    if result_type is not None:
        data["resultType"] = result_type
    return json.dumps({"status": "success", "data": data}).encode()


SAMPLE = [1.0, "12"]
VECTOR = [{"metric": {}, "value": SAMPLE}]
MATRIX = [{"metric": {}, "values": [SAMPLE]}]


@pytest.mark.parametrize(
    ("promql", "result_type", "result"),
    [
        # A proxy answered a vector query with a string holding a number: it was read as 12
        # and the group went 5 -> 2.
        pytest.param("sum(load)", "string", SAMPLE, id="string-for-vector"),
        pytest.param("sum(load)", "scalar", SAMPLE, id="scalar-for-vector"),
        pytest.param("sum(load)", "matrix", MATRIX, id="matrix-for-vector"),
        pytest.param("sum(load)", None, VECTOR, id="vector-without-result-type"),
        pytest.param("scalar(sum(load))", "vector", VECTOR, id="vector-for-scalar"),
        pytest.param("1 + 1", "string", SAMPLE, id="string-for-scalar"),
        pytest.param("sum(load", "string", SAMPLE, id="string-for-unparsed"),
        pytest.param("sum(load", "matrix", MATRIX, id="matrix-for-unparsed"),
    ],
)
def test_a_result_of_another_type_than_the_expression_fails_the_check(
    stand_in: Callable[..., StandIn], promql: str, result_type: str | None, result: Any
) -> None:
    server = stand_in((200, _body(result_type, result)))
    with pytest.raises(QueryError) as caught:
        source_for(server.url).query(promql)
    assert not isinstance(caught.value, SourceUnavailable)
    assert (result_type or "no resultType") in str(caught.value)
    assert len(server.requests) == 1  # a wrong answer is not retried


@pytest.mark.parametrize(
    ("promql", "result_type", "result"),
    [
        pytest.param("sum(load)", "vector", VECTOR, id="vector"),
        pytest.param("scalar(sum(load))", "scalar", SAMPLE, id="scalar"),
        pytest.param("-(2 * 6)", "scalar", SAMPLE, id="scalar-arithmetic"),
        pytest.param("sum(load", "vector", VECTOR, id="vector-for-unparsed"),
        pytest.param("sum(load", "scalar", SAMPLE, id="scalar-for-unparsed"),
    ],
)
def test_a_result_of_the_expressions_type_is_read(
    stand_in: Callable[..., StandIn], promql: str, result_type: str, result: Any
) -> None:
    server = stand_in((200, _body(result_type, result)))
    assert source_for(server.url).query(promql) == 12.0


def test_promql_syntax_error_carries_prometheus_text_and_is_not_retried(
    prometheus: PrometheusServer,
) -> None:
    source = source_for(prometheus.url, deadline=RETRIED_FOR)
    started = time.monotonic()
    with pytest.raises(QueryError, match=r"HTTP 400.*parse error") as caught:
        source.query("sum(rate(http_requests_total[5m])")
    assert time.monotonic() - started < NOT_RETRIED
    assert not isinstance(caught.value, SourceUnavailable)


def test_ping_returns_when_prometheus_answers(source: PrometheusSource) -> None:
    source.ping()


# --- failures and retries -----------------------------------------------------------------


def test_prometheus_down_raises_source_unavailable_within_deadline_after_retries(
    dead_prometheus_url: str,
) -> None:
    source = source_for(dead_prometheus_url)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as caught:
        source.query("up")
    assert time.monotonic() - started < DEADLINE + 2
    message = str(caught.value)
    assert dead_prometheus_url in message
    assert "Connection refused" in message
    assert attempts_in(message) > 1


def test_ping_of_dead_prometheus_raises_source_unavailable(dead_prometheus_url: str) -> None:
    with pytest.raises(SourceUnavailable):
        source_for(dead_prometheus_url).ping()


def test_a_ping_gives_up_in_time_for_a_health_check_with_the_default_settings(
    dead_prometheus_url: str,
) -> None:
    # With the defaults (2 s per query, 6 s of retries) /readyz took 6 s during an outage:
    # the health checks (4 s, Nomad's 2 s) timed out instead of reading the reason.
    source = PrometheusSource(PrometheusSettings(url=dead_prometheus_url))
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="Connection refused"):
        source.ping()
    assert time.monotonic() - started < PING_DEADLINE + 0.5


def test_dropped_connections_are_retried_until_the_deadline(
    tcp_stand_in: Callable[[bool], TcpStandIn],
) -> None:
    server = tcp_stand_in(False)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable) as caught:
        source_for(server.url).query("up")
    assert time.monotonic() - started < DEADLINE + 2
    assert server.connections > 1
    assert attempts_in(str(caught.value)) == server.connections


def test_server_that_never_answers_gives_up_within_deadline(
    tcp_stand_in: Callable[[bool], TcpStandIn],
) -> None:
    server = tcp_stand_in(True)
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="timed out"):
        source_for(server.url).query("up")
    elapsed = time.monotonic() - started
    assert TIMEOUT < elapsed < DEADLINE + 2
    assert server.connections > 1


@pytest.fixture
def trickling() -> Iterator[str]:
    """A server whose headers come at once and whose body (`OK_BODY`, ~100 bytes) comes a
    byte every 50 ms: each wait for the socket is short, the whole answer takes 5 s."""
    listener = socket.create_server(("127.0.0.1", 0))
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    head += b"Content-Length: %d\r\n\r\n" % len(OK_BODY)

    def answer(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(head)
                for byte in OK_BODY:
                    conn.sendall(bytes([byte]))
                    time.sleep(0.05)
            except OSError:
                return

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def test_an_answer_whose_body_trickles_in_gives_up_within_the_deadline(trickling: str) -> None:
    """requests' timeout bounds each wait for the socket: a body that keeps coming a byte
    at a time held one attempt (and the evaluation) for as long as the server took."""
    source = source_for(trickling)
    for read in (lambda: source.query("up"), lambda: source.query_series("sum by (job) (up)")):
        started = time.monotonic()
        with pytest.raises(SourceUnavailable, match="its body came too slowly") as caught:
            read()
        assert time.monotonic() - started < DEADLINE + 2  # not the body's 5 s
        assert attempts_in(str(caught.value)) > 1


@pytest.mark.parametrize("status", [503, 500, 429])
def test_transient_status_then_success_returns_the_value(
    stand_in: Callable[..., StandIn], status: int
) -> None:
    server = stand_in((status, b"busy"), (200, OK_BODY))
    assert source_for(server.url).query("up") == 42.0
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [429, 503])
def test_a_retry_after_past_the_deadline_stops_the_retries_at_once(
    stand_in: Callable[..., StandIn], status: int
) -> None:
    """A rate-limited backend (a Mimir or Cortex tenant limit, a proxy) that asks to be
    asked again in 30 s was asked again every 0.1 to 1 s until the deadline, by every
    policy; now it is asked once, and the check says what it answered."""
    server = stand_in((status, b"too many requests", {"Retry-After": "30"}), (200, OK_BODY))
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match=rf"HTTP {status}: .*\(Retry-After: 30s\)"):
        source_for(server.url, deadline=RETRIED_FOR).query("up")
    assert time.monotonic() - started < NOT_RETRIED
    assert len(server.requests) == 1


def test_a_retry_after_within_the_deadline_is_waited_for(stand_in: Callable[..., StandIn]) -> None:
    def later() -> str:  # an HTTP date 1 to 2 s from now (the date has whole seconds)
        return (datetime.now(UTC) + timedelta(seconds=2)).strftime("%a, %d %b %Y %H:%M:%S GMT")

    def seconds() -> str:
        return "1"

    for asks in (seconds, later):  # seconds, or an HTTP date
        header = asks()
        server = stand_in((429, b"slow down", {"Retry-After": header}), (200, OK_BODY))
        started = time.monotonic()
        assert source_for(server.url, deadline=3.0).query("up") == 42.0
        assert time.monotonic() - started >= 0.9, header
        assert len(server.requests) == 2


def test_persistent_503_becomes_source_unavailable_with_status(
    stand_in: Callable[..., StandIn],
) -> None:
    server = stand_in((503, b"Service Unavailable"))
    with pytest.raises(SourceUnavailable, match="HTTP 503: Service Unavailable"):
        source_for(server.url).query("up")
    assert len(server.requests) > 1


def test_execution_error_422_is_not_retried(stand_in: Callable[..., StandIn]) -> None:
    body = b'{"status":"error","errorType":"execution","error":"many-to-many matching"}'
    server = stand_in((422, body))
    with pytest.raises(QueryError, match=r"HTTP 422.*many-to-many matching") as caught:
        source_for(server.url).query("a / b")
    assert not isinstance(caught.value, SourceUnavailable)
    assert len(server.requests) == 1


def test_rejected_credentials_are_source_unavailable_without_retry(
    stand_in: Callable[..., StandIn],
) -> None:
    server = stand_in((401, b"Unauthorized"))
    with pytest.raises(SourceUnavailable, match="refused the credentials"):
        source_for(server.url, bearer_token="wrong").query("up")
    assert len(server.requests) == 1


def test_answer_that_is_not_the_prometheus_api_is_a_query_error(
    stand_in: Callable[..., StandIn],
) -> None:
    server = stand_in((200, b"<html>login</html>"))
    with pytest.raises(QueryError, match="not a Prometheus API response"):
        source_for(server.url).query("up")
    assert len(server.requests) == 1


# --- authentication and TLS ---------------------------------------------------------------


def test_bearer_token_is_sent_as_authorization_header(stand_in: Callable[..., StandIn]) -> None:
    server = stand_in((200, OK_BODY))
    source_for(server.url, bearer_token="s3cr3t-token").query("up")
    assert server.requests[0]["Authorization"] == "Bearer s3cr3t-token"


def test_basic_auth_is_sent(stand_in: Callable[..., StandIn]) -> None:
    server = stand_in((200, OK_BODY))
    source_for(server.url, username="bob", password="hunter2").query("up")
    assert server.requests[0]["Authorization"] == "Basic Ym9iOmh1bnRlcjI="  # bob:hunter2


def test_partial_responses_are_refused(stand_in: Callable[..., StandIn]) -> None:
    # Thanos would otherwise sum only the stores it reached, and half the load scales in.
    server = stand_in((200, OK_BODY))
    source_for(server.url).query("up")
    assert "partial_response=false" in server.requests[0][":path"]


def test_extra_headers_are_sent(stand_in: Callable[..., StandIn]) -> None:
    server = stand_in((200, OK_BODY))
    source_for(server.url, headers={"X-Scope-OrgID": "tenant-7"}).query("up")
    assert server.requests[0]["X-Scope-OrgID"] == "tenant-7"


def test_a_redirect_to_another_server_is_refused_and_never_gets_the_headers(
    stand_in: Callable[..., StandIn],
) -> None:
    """requests would follow it, dropping only Authorization and Cookie: the API key would
    reach the other server, and its Prometheus-shaped answer would be used for scaling."""
    elsewhere = stand_in((200, OK_BODY))
    server = stand_in((302, b"", {"Location": f"{elsewhere.url}/login?next=%2Fapi"}))
    source = source_for(server.url, headers={"X-Api-Key": "k3y-for-prometheus-only"})
    for read in (
        lambda: source.query("up"),
        lambda: source.query_series("sum by (job) (up)"),
        lambda: source.query_range(
            "up",
            start=datetime.now(UTC) - timedelta(minutes=1),
            end=datetime.now(UTC),
            step=timedelta(seconds=15),
        ),
    ):
        with pytest.raises(QueryError) as caught:
            read()
        message = str(caught.value)
        assert not isinstance(caught.value, SourceUnavailable), message
        assert f"Prometheus at {server.url} redirected the request to {elsewhere.url}/login" in (
            message
        )
        assert "point --prometheus-url (prometheus.url) at the address that answers" in message
    with pytest.raises(SourceUnavailable, match="redirected the request to"):
        source.ping()
    assert elsewhere.requests == []
    assert len(server.requests) == 4  # refused at once, not retried


def test_a_redirect_within_the_same_server_is_followed(stand_in: Callable[..., StandIn]) -> None:
    server = stand_in((307, b"", {"Location": "/prefix/api/v1/query?query=up"}), (200, OK_BODY))
    assert source_for(server.url, headers={"X-Api-Key": "k3y"}).query("up") == 42.0
    assert [r[":path"] for r in server.requests][1] == "/prefix/api/v1/query?query=up"
    assert all(r["X-Api-Key"] == "k3y" for r in server.requests)


def test_certificate_of_a_private_ca_is_rejected_without_ca_bundle_and_accepted_with_it(
    stand_in: Callable[..., StandIn], tmp_path: Path
) -> None:
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    server = stand_in((200, OK_BODY), tls=server_context(cert, key))
    started = time.monotonic()
    with pytest.raises(SourceUnavailable, match="set ca_bundle"):
        source_for(server.url, deadline=RETRIED_FOR).query("up")
    assert time.monotonic() - started < NOT_RETRIED, "a certificate failure is not worth a retry"
    assert source_for(server.url, ca_bundle=str(ca)).query("up") == 42.0


def test_a_server_asking_for_a_client_certificate_gets_the_one_configured(
    stand_in: Callable[..., StandIn], tmp_path: Path
) -> None:
    """Prometheus' `web.config.file` (or a mesh's sidecar) may require mutual TLS: without a
    client certificate the handshake fails and the message says what to set."""
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    client_ca, client_cert, client_key = make_ca_and_client_cert(tmp_path)
    server = stand_in((200, OK_BODY), tls=server_context(cert, key, client_ca=client_ca))
    with pytest.raises(SourceUnavailable, match="set client_cert and client_key"):
        source_for(server.url, ca_bundle=str(ca)).query("up")
    mutual = source_for(
        server.url, ca_bundle=str(ca), client_cert=str(client_cert), client_key=str(client_key)
    )
    assert mutual.query("up") == 42.0
    assert len(mutual.query_series("sum by (job) (up)")) == 1
    now = datetime.now(UTC)
    with pytest.raises(QueryError, match="not a matrix"):  # answered: the handshake passed
        mutual.query_range("up", start=now, end=now, step=timedelta(seconds=1))
    combined = tmp_path / "client-and-key.pem"  # one file holding both, as requests takes it
    combined.write_bytes(client_cert.read_bytes() + client_key.read_bytes())
    assert source_for(server.url, ca_bundle=str(ca), client_cert=str(combined)).query("up") == 42.0
    with pytest.raises(ValueError, match="client_key is set without client_cert"):
        PrometheusSettings(url=server.url, client_key=str(client_key))


def test_secrets_never_appear_in_errors_or_repr(
    stand_in: Callable[..., StandIn], dead_prometheus_url: str
) -> None:
    secrets = ["tok-SECRET-1", "pw-SECRET-2", "hdr-SECRET-3", "url-SECRET-4"]
    # A misbehaving server that echoes the credentials back in its error bodies.
    echo = f"Authorization: Bearer {secrets[0]}; X-Key: {secrets[2]}".encode()
    server = stand_in((401, echo))
    settings = PrometheusSettings(
        url=server.url, bearer_token=secrets[0], headers={"X-Key": secrets[2]}
    )
    basic = PrometheusSettings(
        url=dead_prometheus_url.replace("://", f"://bob:{secrets[3]}@"),
        username="bob",
        password=secrets[1],
        timeout=TIMEOUT,
        deadline=DEADLINE,
    )
    texts = [repr(settings), str(settings), repr(basic), repr(PrometheusSource(basic))]
    with pytest.raises(SourceUnavailable) as refused:
        PrometheusSource(settings).query("up")
    with pytest.raises(SourceUnavailable) as down:
        PrometheusSource(basic).query("up")
    for caught in (refused, down):
        error: BaseException | None = caught.value
        while error is not None:  # the whole chain a logged traceback would show
            texts.append(str(error))
            error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    for text in texts:
        for secret in secrets:
            assert secret not in text, text
    assert "***" in str(refused.value)


def test_conflicting_auth_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="either bearer_token or username"):
        PrometheusSettings(bearer_token="t", username="u", password="p")


def test_backfilled_history_is_read_through_range_functions(
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:
    server = prometheus_factory(start=False)
    now = int(time.time())
    server.backfill("".join(f"load {i % 4} {now - 3600 + 60 * i}\n" for i in range(58)))
    server.start()
    source = source_for(server.url)
    assert source.query("count_over_time(load[2h])") == 58.0
    assert source.query("max_over_time(load[2h])") == 3.0


# --- grouped queries ----------------------------------------------------------------------


def test_a_grouped_query_gives_every_series_once_parsed(
    source: PrometheusSource, metrics: Metrics
) -> None:
    metrics.push_many([Sample("rps", 12, {"job": "web"}), Sample("rps", 3.5, {"job": "api"})])
    found = source.query_series(f"sum by (job) ({metrics.name('rps')})")
    assert len(found) == 2
    assert (found.pick((("job", "web"),)), found.pick((("job", "api"),))) == (12.0, 3.5)
    with pytest.raises(QueryError, match="no series with job='cart'"):
        found.pick((("job", "cart"),))


def test_a_grouped_query_is_sent_as_an_instant_query_is(stand_in: Callable[..., StandIn]) -> None:
    """The grouped query's own request (decoded straight into pairs) carries what every
    query carries: the path, the query, `partial_response=false`, credentials, headers."""
    server = stand_in((200, _body("vector", [{"metric": {"job": "web"}, "value": [1.0, "7"]}])))
    settings = {"username": "bob", "password": "hunter2", "headers": {"X-Org": "7"}}
    source_for(server.url, **settings).query("sum(x)")
    source_for(server.url, **settings).query_series("sum by (job) (x)")
    single, grouped = server.requests
    assert grouped[":path"] == single[":path"].replace("sum%28x%29", "sum+by+%28job%29+%28x%29")
    assert "partial_response=false" in grouped[":path"]
    for header in ("Authorization", "X-Org"):
        assert grouped[header] == single[header]


def test_the_next_answer_to_a_grouped_query_keeps_the_label_dicts_of_the_one_before(
    stand_in: Callable[..., StandIn],
) -> None:
    series = [{"metric": {"job": j}, "value": [1.0, "7"]} for j in ("web", "api")]
    server = stand_in((200, _body("vector", series)))
    source = source_for(server.url)
    first = source.query_series("sum by (job) (x)")
    second = source.query_series("sum by (job) (x)")
    assert second is not first
    assert all(a[0] is b[0] for a, b in zip(first.series, second.series, strict=True))
    assert second.pick((("job", "api"),)) == 7.0


def test_a_native_histogram_series_fails_only_the_target_that_reads_it(
    stand_in: Callable[..., StandIn],
) -> None:
    # A native histogram has `histogram`, not `value`: the whole answer failed, so every
    # target of the template held, though the others' series were plain numbers.
    histogram = {"count": "3", "sum": "1.5", "buckets": [[0, "0.5", "1", "3"]]}
    series = [
        {"metric": {"job": "web"}, "value": [1.0, "7"]},
        {"metric": {"job": "api"}, "histogram": [1.0, histogram]},
    ]
    server = stand_in((200, _body("vector", series)))
    found = source_for(server.url).query_series("sum by (job) (x)")
    assert found.pick((("job", "web"),)) == 7.0
    with pytest.raises(QueryError, match=r"job='api' .* is unusable: a native histogram, not a"):
        found.pick((("job", "api"),))


def test_a_grouped_query_refused_by_prometheus_says_why(stand_in: Callable[..., StandIn]) -> None:
    body = json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error"})
    server = stand_in((400, body.encode()))
    with pytest.raises(QueryError, match=r"rejected query .* \(HTTP 400\): parse error"):
        source_for(server.url).query_series("sum by (job) (x")


def test_a_grouped_query_must_give_an_instant_vector(source: PrometheusSource) -> None:
    with pytest.raises(QueryError, match="must give an instant vector"):
        source.query_series("scalar(vector(1))")


def test_an_answer_with_reordered_keys_is_still_typed(stand_in: Callable[..., StandIn]) -> None:
    # A proxy may write `data` before `status`: the result type is then read in full.
    body = json.dumps(
        {
            "data": {
                "result": [{"metric": {"job": "web"}, "value": [1.0, "7"]}],
                "resultType": "vector",
            },
            "status": "success",
        }
    ).encode()
    server = stand_in((200, body))
    found = source_for(server.url).query_series("sum by (job) (x)")
    assert found.pick((("job", "web"),)) == 7.0
    assert source_for(server.url).query("sum(x)") == 7.0


def test_an_answer_with_warnings_is_refused_since_its_data_may_be_partial(
    prometheus_factory: Callable[..., PrometheusServer], dead_prometheus_url: str
) -> None:
    """A real Prometheus whose `remote_read` endpoint is down answers "success" with the
    series it holds locally and a warning: a sum over part of the data looks like less
    load, so the answer is refused (instant, grouped and range queries alike)."""
    remote = {"url": f"{dead_prometheus_url}/api/v1/read", "read_recent": True}
    server = prometheus_factory(config={"remote_read": [remote]})
    server.push_many(
        [Sample("partial_load", 5, {"job": "a"}), Sample("partial_load", 7, {"job": "b"})]
    )
    source = PrometheusSource(PrometheusSettings(url=server.url, timeout=5, deadline=10))
    for read in (
        lambda: source.query("sum(partial_load)"),
        lambda: source.query_series("sum by (job) (partial_load)"),
        lambda: source.query_range(
            "sum(partial_load)",
            start=datetime.now(UTC) - timedelta(minutes=1),
            end=datetime.now(UTC),
            step=timedelta(seconds=15),
        ),
    ):
        with pytest.raises(QueryError) as caught:
            read()
        message = str(caught.value)
        assert "answered with warnings, so its data may be partial" in message
        assert "remote_read" in message and "connection refused" in message
    assert source.query("1") == 1.0  # no series read, no warning: a literal still answers


def test_info_notes_listed_as_warnings_do_not_fail_the_check(
    stand_in: Callable[..., StandIn],
) -> None:
    """Prometheus 2.47 to 2.53 answered its info-level notes among the warnings (later ones
    as `infos`): a rate() over a metric without _total would otherwise fail forever. A real
    warning beside one is still refused, and shown alone."""
    info = (
        "PromQL info: metric might not be a counter, name does not end in "
        '_total/_sum/_count/_bucket: "http_requests"'
    )
    warning = "PromQL warning: encountered a mix of histograms and floats for metric name"
    vector = {"resultType": "vector", "result": [{"metric": {"job": "a"}, "value": [1.0, "4"]}]}
    matrix = {"resultType": "matrix", "result": [{"metric": {}, "values": [[1.0, "4"]]}]}

    def answering(data: dict[str, Any], *warnings: str) -> PrometheusSource:
        body = {"status": "success", "data": data, "warnings": list(warnings)}
        return source_for(stand_in((200, json.dumps(body).encode())).url)

    def reads(source: PrometheusSource, ranged: PrometheusSource) -> list[Callable[[], object]]:
        now = datetime.now(UTC)
        return [
            lambda: source.query("sum(rate(http_requests[5m]))"),
            lambda: source.query_series("sum by (job) (rate(http_requests[5m]))"),
            lambda: ranged.query_range(
                "sum(rate(http_requests[5m]))", start=now, end=now, step=timedelta(seconds=15)
            ),
        ]

    read_ok = reads(answering(vector, info), answering(matrix, info))
    assert [type(read()).__name__ for read in read_ok] == ["float", "SeriesSet", "list"]
    for read in reads(answering(vector, info, warning), answering(matrix, warning, info)):
        with pytest.raises(QueryError, match="answered with warnings") as caught:
            read()
        assert warning in str(caught.value) and "PromQL info" not in str(caught.value)


def _victoria(partial: bool, data: dict[str, Any]) -> bytes:
    """An answer as VictoriaMetrics writes it: `isPartial` between `status` and `data`."""
    body = {"status": "success", "isPartial": partial, "data": data}
    return json.dumps(body, separators=(",", ":")).encode()


def test_an_answer_marked_partial_is_refused_and_partial_answers_are_denied(
    stand_in: Callable[..., StandIn],
) -> None:
    """VictoriaMetrics' cluster answers "success" with `"isPartial": true` by default when a
    vmstorage node is down: a sum over the nodes it reached looks like less load. Every
    request asks it not to (`deny_partial_response=1`), and an answer still marked partial
    (a vmselect that ignores it, another server in front) is refused; `false` is read."""
    vector = {"resultType": "vector", "result": [{"metric": {"job": "a"}, "value": [1.0, "4"]}]}
    matrix = {"resultType": "matrix", "result": [{"metric": {}, "values": [[1.0, "4"]]}]}

    def reads(partial: bool) -> tuple[StandIn, list[Callable[[], object]]]:
        server = stand_in((200, _victoria(partial, vector)))
        ranged = stand_in((200, _victoria(partial, matrix)))
        source, range_source = source_for(server.url), source_for(ranged.url)
        now = datetime.now(UTC)
        return server, [
            lambda: source.query("sum(x)"),
            lambda: source.query_series("sum by (job) (x)"),
            lambda: range_source.query_range(
                "sum(x)", start=now, end=now, step=timedelta(seconds=15)
            ),
        ]

    server, read_ok = reads(partial=False)
    assert [type(read()).__name__ for read in read_ok] == ["float", "SeriesSet", "list"]
    assert all("deny_partial_response=1" in r[":path"] for r in server.requests)
    _, read_partial = reads(partial=True)
    for read in read_partial:
        with pytest.raises(QueryError, match="marked as partial") as caught:
            read()
        assert not isinstance(caught.value, SourceUnavailable)


def test_a_scraped_series_whose_target_is_down_has_no_value_at_the_next_scrape(
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:
    """Prometheus ends a series with a staleness marker at the first failed scrape of its
    target: the check finds no series (and holds) within a scrape interval, not after the
    5-minute lookback of its last value."""

    class Exporter(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"exporter_load 7\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    exporter = ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
    threading.Thread(target=exporter.serve_forever, args=(0.05,), daemon=True).start()
    target = f"127.0.0.1:{exporter.server_address[1]}"
    scrape = {"job_name": "exporter", "static_configs": [{"targets": [target]}]}
    server = prometheus_factory(config={"scrape_configs": [scrape]})
    source = source_for(server.url)
    try:
        for _ in range(100):  # the first scrape lands after ~5 s
            with contextlib.suppress(QueryError):
                assert source.query("exporter_load") == 7.0
                break
            time.sleep(0.2)
        else:
            pytest.fail("the exporter was never scraped")
    finally:
        exporter.shutdown()
        exporter.server_close()
    down = time.monotonic()
    with pytest.raises(QueryError, match="returned no series"):  # noqa: PT012
        while time.monotonic() - down < 60:
            source.query("exporter_load")
            time.sleep(0.2)
    # A scrape interval (1 s) on a fast machine; not the 5-minute lookback.
    assert time.monotonic() - down < 30


def test_a_pushed_series_without_staleness_markers_is_read_for_the_lookback_unless_guarded(
    source: PrometheusSource, metrics: Metrics
) -> None:
    """What the README says of a series no staleness marker ends (remote write from a
    sender that died, federation, a Pushgateway): Prometheus answers its last value for
    the lookback, and the answer does not say how old it is; a guard in the query on the
    newest sample's age makes it "no series" instead."""
    load = metrics.push("load", 5, timestamp=time.time() - 120)
    assert source.query(f"sum({load})") == 5.0
    guarded = f"sum({load}) and on() (time() - max(timestamp({load})) < 60)"
    with pytest.raises(QueryError, match="returned no series"):
        source.query(guarded)
    metrics.push("load", 6)
    assert source.query(guarded) == 6.0


def test_info_notes_are_logged_once_per_query_and_note(
    stand_in: Callable[..., StandIn], caplog: pytest.LogCaptureFixture
) -> None:
    """An info-level note (Prometheus 2.54 and later answer them as `infos`; 2.47 to 2.53
    among the warnings) often says the query is not what was meant (a rate() over a gauge):
    the operator sees it in the log, once, not at every evaluation."""
    counter = 'PromQL info: metric might not be a counter, name does not end in _total: "reqs"'
    older = 'PromQL info: ignored histogram in sum aggregation: "lat"'
    vector = {"resultType": "vector", "result": [{"metric": {"job": "a"}, "value": [1.0, "4"]}]}
    body = {"status": "success", "data": vector, "infos": [counter], "warnings": [older]}
    source = source_for(stand_in((200, json.dumps(body).encode())).url)
    caplog.set_level("INFO", logger="autoscaler.adapters.sources.prometheus")
    for _ in range(3):
        assert source.query("sum(rate(reqs[5m]))") == 4.0
        source.query_series("sum by (job) (rate(reqs[5m]))")
    logged = [r.getMessage() for r in caplog.records if "Prometheus noted" in r.getMessage()]
    assert sorted(logged) == sorted(
        f"Prometheus noted of {what} {query!r} (logged once): {note}"
        for what, query in (
            ("query", "sum(rate(reqs[5m]))"),
            ("query", "sum by (job) (rate(reqs[5m]))"),
        )
        for note in (older, counter)
    )


def test_a_query_too_long_for_a_url_is_sent_as_a_form(
    prometheus: PrometheusServer, metrics: Metrics
) -> None:
    """A proxy in front of Prometheus (nginx, Apache) refuses a URL over 8 KB with 414;
    Prometheus' API takes the same parameters as a form (POST), which no proxy limits so."""
    metrics.push_many([Sample("wide", 2, {"job": "web"}), Sample("wide", 3, {"job": "api"})])
    jobs = "|".join(["web", "api", *(f"job-{i:05d}" for i in range(1500))])  # ~15 KB
    selector = f'{metrics.name("wide")}{{job=~"{jobs}"}}'
    now = datetime.now(UTC)
    with serve_prometheus_proxy(prometheus.url, url_limit=8192) as proxy:
        source = source_for(proxy.url)
        assert source.query(f"sum({selector})") == 5.0
        found = source.query_series(f"sum by (job) ({selector})")
        assert (found.pick((("job", "web"),)), found.pick((("job", "api"),))) == (2.0, 3.0)
        (series,) = source.query_range(
            f"sum({selector})",
            start=now - timedelta(seconds=30),
            end=now,
            step=timedelta(seconds=10),
        )
        assert [v for _, v in series.points][-1] == 5.0
        assert source.query(f"sum({metrics.name('wide')})") == 5.0  # a short one, as before


def _engine_queries(prometheus: PrometheusServer) -> float:
    """Prometheus' own count of the queries it is executing (`prometheus_engine_queries`)."""
    with urllib.request.urlopen(f"{prometheus.url}/metrics", timeout=5) as response:
        text = response.read().decode()
    (line,) = (x for x in text.splitlines() if x.startswith("prometheus_engine_queries "))
    return float(line.split()[1])


def test_prometheus_stops_a_query_when_the_attempt_gives_up(
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:
    """Every attempt tells Prometheus its timeout (`timeout=`): behind a proxy that does not
    pass on a client's hang-up (an AWS ALB, this test's proxy), a query the attempt gave up
    on ran on for Prometheus' own 2 minutes, each retry adding one, until its query slots
    were full and every query waited."""
    slow = "count_over_time(vector(time())[12h:10ms])"  # some 3 s of evaluation
    prometheus = prometheus_factory()  # its own: no other test's query is counted
    with serve_prometheus_proxy(prometheus.url) as proxy:
        source = PrometheusSource(PrometheusSettings(url=proxy.url, timeout=0.5, deadline=0.5))
        with pytest.raises(SourceUnavailable):
            source.query(slow)
        time.sleep(0.5)
        assert _engine_queries(prometheus) == 0
