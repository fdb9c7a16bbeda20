"""Notifications: a Slack-compatible payload, retries, and never blocking the scaling."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import requests

from autoscaler import redact
from autoscaler.core.model import Action, Decision
from autoscaler.service.notify import Notifier, payload, redact_url
from tests.support.net import wait_until
from tests.support.service import WebhookReceiver

DECISION = Decision(
    policy="web",
    target="aws-asg:web",
    time=datetime(2026, 11, 24, 12, tzinfo=UTC),
    current=2,
    desired=4,
    action=Action.UP,
    dry_run=True,
    reasons=("p95 0.5 > 0.25: 4",),
)


def test_the_payload_has_a_slack_text_and_the_decision() -> None:
    body = payload(DECISION)
    assert body["text"] == (
        "autoscaler [dry-run]: policy web scaled aws-asg:web up from 2 to 4: p95 0.5 > 0.25: 4"
    )
    assert body["decision"] == DECISION.to_dict()


def test_a_failing_webhook_is_retried(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.statuses = [500, 503]
    results: list[str] = []
    notifier = Notifier([webhook_receiver.url], backoff=0.01, on_result=results.append)
    notifier.notify(DECISION)
    notifier.close(timeout=5)
    assert webhook_receiver.attempts == 3
    assert webhook_receiver.bodies[0]["decision"]["policy"] == "web"
    assert results == ["sent"]


def test_a_client_error_is_not_retried(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.statuses = [404]
    results: list[str] = []
    notifier = Notifier([webhook_receiver.url], backoff=0.01, on_result=results.append)
    notifier.notify(DECISION)
    notifier.close(timeout=5)
    assert (webhook_receiver.attempts, results) == (1, ["failed"])


def test_a_url_that_fails_in_an_unexpected_way_does_not_stop_the_others(
    webhook_receiver: WebhookReceiver,
) -> None:
    # urllib3 refuses a host label over 63 characters only when it connects, with an
    # error that is no `RequestException`: it killed the sender thread, and every later
    # notice to every URL was dropped.
    results: list[str] = []
    bad = "https://" + "a" * 70 + ".example/hook"
    notifier = Notifier([bad, webhook_receiver.url], backoff=0.01, on_result=results.append)
    notifier.notify(DECISION)
    notifier.notify(replace(DECISION, policy="api"))
    notifier.close(timeout=5)
    assert sorted(results) == ["failed", "failed", "sent", "sent"]  # each URL on its own
    assert [b["decision"]["policy"] for b in webhook_receiver.bodies] == ["web", "api"]


def test_a_webhook_that_hangs_does_not_hold_the_notices_of_the_others(
    webhook_receiver: WebhookReceiver,
) -> None:
    # One thread posted to each URL in turn: a dead one (16 s of timeouts and retries per
    # notice) filled the shared queue, and the healthy URL's notices were dropped too.
    hung = threading.Event()
    results: list[str] = []
    dead = "http://127.0.0.1:9/hook"

    class _Hanging(Notifier):
        def _post(self, session: requests.Session, url: str, body: dict[str, object]) -> None:
            if url == dead:
                hung.wait(10)
                return
            super()._post(session, url, body)

    notifier = _Hanging([dead, webhook_receiver.url], queue_size=2, on_result=results.append)
    for i in range(5):
        notifier.notify(replace(DECISION, policy=f"p{i}"))

        def arrived(i: int = i) -> bool:
            return len(webhook_receiver.bodies) > i

        wait_until(arrived, timeout=5, what="a notice")
    assert [b["decision"]["policy"] for b in webhook_receiver.bodies] == [f"p{i}" for i in range(5)]
    hung.set()
    notifier.close(timeout=5)


def test_notify_never_blocks_and_drops_when_the_queue_is_full() -> None:
    stuck = threading.Event()
    results: list[str] = []

    class _Stuck(Notifier):
        def _post(self, session: requests.Session, url: str, body: dict[str, object]) -> None:
            stuck.wait(5)

    notifier = _Stuck(["http://127.0.0.1:9/hook"], queue_size=1, on_result=results.append)
    for i in range(5):
        notifier.notify(replace(DECISION, desired=4 + i))  # returns at once, the sender stuck
    wait_until(lambda: results.count("dropped") >= 3, timeout=2, what="drops")
    stuck.set()
    notifier.close(timeout=5)


def test_urls_are_logged_without_their_secret_path() -> None:
    url = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
    assert redact_url(url) == "https://hooks.slack.com/…"
    assert redact_url("http://user:pw@host:8080/x?token=1") == "http://host:8080/…"


def test_the_payload_never_carries_a_known_secret(webhook_receiver: WebhookReceiver) -> None:
    token = "nomad-token-8c1e0f3a-notify"
    redact.register(token)
    leaky = replace(DECISION, reasons=(f"proxy echoed X-Nomad-Token {token}",))
    notifier = Notifier([webhook_receiver.url], backoff=0.01)

    notifier.notify(leaky)
    notifier.close(timeout=5)

    (body,) = webhook_receiver.bodies
    assert token not in json.dumps(body)
    assert body["decision"]["reasons"] == ["proxy echoed X-Nomad-Token ***"]


def test_webhook_urls_become_secrets_once_a_notifier_holds_them() -> None:
    url = "https://hooks.example/services/T1/B1/hook-secret-5d2c"
    Notifier([url]).close(timeout=1)

    assert "hook-secret-5d2c" not in redact.scrub(f"ConnectionError: {url} refused")


def test_a_dry_run_would_be_action_is_posted_once_while_it_stays_the_same(
    webhook_receiver: WebhookReceiver,
) -> None:
    # Nothing changes the count in dry-run: the same would-be 2 -> 4 came at every
    # interval (240 posts an hour per policy at 15 s).
    notifier = Notifier([webhook_receiver.url])
    for decision in [
        DECISION,
        DECISION,
        replace(DECISION, desired=5),
        replace(DECISION, desired=5),
        DECISION,
        replace(DECISION, policy="api"),
        replace(DECISION, dry_run=False),
        replace(DECISION, dry_run=False),
    ]:
        notifier.notify(decision)
    notifier.close(timeout=5)
    posted = [(b["decision"]["policy"], b["decision"]["desired"]) for b in webhook_receiver.bodies]
    assert posted == [("web", 4), ("web", 5), ("web", 4), ("api", 4), ("web", 4), ("web", 4)]


def test_a_dry_run_would_be_action_is_posted_again_once_it_went_away_and_came_back(
    webhook_receiver: WebhookReceiver,
) -> None:
    # A `none` never reaches `notify`: the would-be 2 -> 4 of a second burst, hours after
    # the first one ended, was never posted. A decision that scales nothing settles it; so
    # does a live action; another policy's does not.
    notifier = Notifier([webhook_receiver.url])
    notifier.notify(DECISION)
    notifier.settled("web")  # the load back to normal: `none`
    notifier.notify(DECISION)  # the second burst
    notifier.notify(DECISION)
    notifier.settled("api")
    notifier.notify(DECISION)
    notifier.notify(replace(DECISION, dry_run=False))  # `dry_run: true` taken off
    notifier.notify(DECISION)  # and put back
    notifier.close(timeout=5)
    posted = [b["decision"]["dry_run"] for b in webhook_receiver.bodies]
    assert posted == [True, True, False, True]


def test_a_failed_notice_logs_the_attempts_made_and_the_http_status(
    webhook_receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    # It said "failed after 3 attempts (HTTPError)" for a 404 sent once and for three
    # 500s alike: neither how often it was tried nor what the receiver answered.
    url = f"{webhook_receiver.url}/services/T000/B000/hook-secret-1e7a"
    for statuses in ([404], [500, 500, 500]):
        webhook_receiver.statuses = list(statuses)
        notifier = Notifier([url], backoff=0.01)
        notifier.notify(DECISION)
        notifier.close(timeout=5)
    failures = [r.getMessage() for r in caplog.records if "failed after" in r.getMessage()]
    origin = redact_url(url)
    assert failures == [
        f"notification to {origin} failed after 1 attempt (HTTP 404)",
        f"notification to {origin} failed after 3 attempts (HTTP 500)",
    ]
