"""The health checks and the Alertmanager webhook answer at once while many evaluate
calls wait, against a real service (`autoscaler run`) whose one scheduler worker is
busy with slow policies (a Prometheus stand-in answering their query after `DELAY` s).

Every route used to share FastAPI's pool of 40 threads, and each waiting
`POST .../evaluate` held one: 45 of them stalled `/healthz` past 30 s, `/readyz` 10 s
and the webhook 40 s (the README's Nomad job checks `/readyz` with a 2 s timeout).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import requests

from tests.support.aws import MotoServer
from tests.support.net import wait_until
from tests.support.service import FakePrometheus, ServiceProcess, create_asg, policy_yaml

pytestmark = pytest.mark.integration

TOKEN = "busy-token-6d21f0"
# Seconds each slow policy's query takes (under --query-timeout): the window in which the
# tests look, so it outlasts their waits on a slow, busy machine by far (with 8 s the 29
# refusals had 2 s to come in); the service is killed at the end, nothing waits it out.
DELAY = 20.0
CALLS = 45  # more than FastAPI's 40 shared threads
SLOW = 3  # slow policies: the one worker is busy with them for SLOW x DELAY s
ANSWER_WITHIN = 2.0  # seconds, as the README's health check allows


@dataclass
class Callers:
    """`CALLS` concurrent POSTs, each on a thread; `answers` are (status, Retry-After)."""

    threads: list[threading.Thread] = field(default_factory=list)
    answers: list[tuple[int, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, url: Callable[[int], str]) -> None:
        def call(i: int) -> None:
            try:
                r = requests.post(url(i), headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
            except requests.RequestException:
                return  # the service is killed at the end of the test, calls still waiting
            with self.lock:
                self.answers.append((r.status_code, r.headers.get("Retry-After")))

        self.threads = [threading.Thread(target=call, args=(i,), daemon=True) for i in range(CALLS)]
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(10)


def _busy_service(
    service_factory: Callable[..., ServiceProcess],
    moto_server: MotoServer,
    fake_prometheus: FakePrometheus,
) -> ServiceProcess:
    fake_prometheus.delay = DELAY
    asg = create_asg(moto_server.url)
    policies = {
        f"s{i}": policy_yaml(f"s{i}", asg=create_asg(moto_server.url), query=f"slow_q{i}")
        for i in range(SLOW)
    }
    policies["fast"] = policy_yaml("fast", asg=asg, count=2, extra="triggers: {alerts: [Hot]}\n")
    service = service_factory(
        prometheus_url=fake_prometheus.url,
        env=moto_server.env,
        token=TOKEN,
        policies=policies,
        args=["--workers=1", f"--query-timeout={DELAY + 2}"],
    )
    return service.start()


def _answers_in_time(service: ServiceProcess) -> dict[str, tuple[int | str, float]]:
    """How `/healthz`, `/readyz` and the webhook answered, and in how many seconds."""
    found: dict[str, tuple[int | str, float]] = {}
    webhook = {"alerts": [{"status": "firing", "labels": {"alertname": "Hot"}}]}
    sends: list[tuple[str, Callable[[], requests.Response]]] = [
        ("healthz", lambda: requests.get(service.url + "/healthz", timeout=5)),
        ("readyz", lambda: requests.get(service.url + "/readyz", timeout=5)),
        (
            "webhook",
            lambda: requests.post(
                service.url + "/v1/alertmanager",
                json=webhook,
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=5,
            ),
        ),
    ]
    for name, send in sends:
        started = time.monotonic()
        try:
            status: int | str = send().status_code
        except requests.RequestException as exc:
            status = type(exc).__name__
        found[name] = (status, round(time.monotonic() - started, 2))
    return found


def _assert_in_time(found: dict[str, tuple[int | str, float]]) -> None:
    late = {
        n: answer for n, answer in found.items() if answer[0] != 200 or answer[1] > ANSWER_WITHIN
    }
    assert not late, f"not answered 200 within {ANSWER_WITHIN} s (status, seconds): {late}"


def test_health_checks_and_the_webhook_answer_while_evaluate_calls_wait(
    service_factory: Callable[..., ServiceProcess],
    moto_server: MotoServer,
    fake_prometheus: FakePrometheus,
) -> None:
    service = _busy_service(service_factory, moto_server, fake_prometheus)
    callers = Callers()
    callers.start(lambda i: f"{service.url}/v1/policies/s{i % SLOW}/evaluate")
    time.sleep(1.5)  # every call has arrived and waits for the busy worker
    try:
        found = _answers_in_time(service)
        with callers.lock:
            answered = list(callers.answers)
    finally:
        service.kill()
        callers.join()
    _assert_in_time(found)
    assert answered == []  # the evaluate calls were all still waiting meanwhile


def test_previews_past_the_cap_are_refused_with_retry_after_and_stall_nothing(
    service_factory: Callable[..., ServiceProcess],
    moto_server: MotoServer,
    fake_prometheus: FakePrometheus,
) -> None:
    # A preview evaluates in the request (DELAY s here): at most 16 are under way, the
    # others are refused at once with 503 and Retry-After, and the health checks answer.
    service = _busy_service(service_factory, moto_server, fake_prometheus)
    callers = Callers()
    callers.start(lambda i: f"{service.url}/v1/policies/s{i % SLOW}/evaluate?dry_run=true")
    time.sleep(1.5)  # every call has arrived
    try:
        found = _answers_in_time(service)
        with contextlib.suppress(TimeoutError):  # (the assertion below says what came)
            wait_until(lambda: len(callers.answers) >= CALLS - 16, timeout=10, what="refusals")
        with callers.lock:
            answered = list(callers.answers)
    finally:
        service.kill()
        callers.join()
    _assert_in_time(found)
    assert answered == [(503, "5")] * (CALLS - 16)


def test_previewing_an_unknown_policy_while_previews_are_full_is_404_not_503(
    service_factory: Callable[..., ServiceProcess],
    moto_server: MotoServer,
    fake_prometheus: FakePrometheus,
) -> None:
    # Before, the lane refused first: a typo in the name was answered "busy, retry in 5 s",
    # and a client honouring Retry-After retried a policy that does not exist.
    service = _busy_service(service_factory, moto_server, fake_prometheus)
    callers = Callers()
    callers.start(lambda i: f"{service.url}/v1/policies/s{i % SLOW}/evaluate?dry_run=true")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        wait_until(lambda: len(callers.answers) >= CALLS - 16, timeout=10, what="a full lane")
        unknown = requests.post(
            f"{service.url}/v1/policies/nope/evaluate?dry_run=true", headers=auth, timeout=5
        )
        known = requests.post(
            f"{service.url}/v1/policies/s0/evaluate?dry_run=true", headers=auth, timeout=5
        )
    finally:
        service.kill()
        callers.join()
    assert (unknown.status_code, unknown.headers.get("Retry-After")) == (404, None)
    assert "nope" in unknown.text
    assert (known.status_code, known.headers.get("Retry-After")) == (503, "5")
