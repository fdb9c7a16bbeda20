"""Outgoing webhooks on scaling actions, sent from a background thread.

A notification must never slow down or fail a scaling action: the evaluation only puts the
decision on a bounded queue (dropping it, counted, when the queue is full), and one thread
posts it to every URL, retrying with tenacity. The payload is the decision as JSON plus a
`text` field, so Slack-compatible receivers (Slack, Mattermost, Rocket.Chat) show it as is.
Webhook URLs often embed a secret (Slack's do), so they are registered as secrets
(`autoscaler.redact`) and only scheme and host are ever logged; the payload is scrubbed too.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

import requests
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from autoscaler.core.model import Decision
from autoscaler.core.names import noun
from autoscaler.redact import register_url, scrub_data, url_origin

log = logging.getLogger("autoscaler.notify")

_STOP = object()


def redact_url(url: str) -> str:
    """`scheme://host[:port]/…`: enough to tell webhooks apart, without path secrets."""
    return url_origin(url)


def _retryable(exc: BaseException) -> bool:
    """Connection problems, timeouts, 5xx, 408 and 429 may pass; other 4xx will not."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        return status >= 500 or status in (408, 429)
    return isinstance(exc, requests.RequestException)


def _failure(exc: BaseException) -> str:
    """`HTTP 404` for an answer, else the exception's type: its text can contain the URL,
    and so its secret."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__


def payload(decision: Decision) -> dict[str, Any]:
    """The JSON body: a Slack-compatible `text` line and the full decision."""
    d = decision
    dry = " [dry-run]" if d.dry_run else ""
    text = (
        f"autoscaler{dry}: policy {d.policy} scaled {d.target} {d.action.value} "
        f"from {d.current} to {d.desired}: " + "; ".join(d.reasons)
    )
    body: dict[str, Any] = scrub_data({"text": text, "decision": d.to_dict()})
    return body


class Notifier:
    """Posts decisions to webhooks, each from a background thread and queue of its own (a
    dead webhook, 16 s of timeouts and retries per notice, must not hold the notices of
    the others); `notify` never blocks."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout: float = 5.0,
        attempts: int = 3,
        backoff: float = 0.5,
        queue_size: int = 100,
        on_result: Callable[[str], None] | None = None,
    ) -> None:
        self._urls = tuple(urls)
        for url in self._urls:
            register_url(url, whole=True)
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._on_result = on_result or (lambda _result: None)
        self._senders = [_Sender(self, url, queue_size) for url in self._urls]
        self._lock = threading.Lock()
        self._dry_said: dict[str, tuple[object, ...]] = {}  # policy -> its last dry-run notice

    @property
    def enabled(self) -> bool:
        return bool(self._urls)

    def notify(self, decision: Decision) -> None:
        """Queue `decision` for every webhook; for one whose queue is full, drop it (and
        count that): the others still get it.

        A dry-run decision is posted once while the would-be action stays the same (the
        same direction, from and to): nothing changes the count, so it came again at every
        interval, 240 posts an hour per policy at 15 s, filling Slack and the queues. Once
        it goes away (a live action here, `settled` for a decision that scales nothing),
        it is posted again when it comes back."""
        if not self._senders:
            return
        if decision.dry_run:
            said = (decision.action, decision.current, decision.desired)
            with self._lock:
                if self._dry_said.get(decision.policy) == said:
                    return
                self._dry_said[decision.policy] = said
        else:
            self.settled(decision.policy)
        for sender in self._senders:
            try:
                sender.queue.put_nowait(decision)
            except queue.Full:
                log.warning(
                    "notification queue of %s full: dropped the notice of %s",
                    redact_url(sender.url),
                    decision.policy,
                )
                self._on_result("dropped")

    def settled(self, policy: str) -> None:
        """`policy` decided something that is not its last dry-run notice (`none`, `hold`, a
        live action; a different would-be action goes through `notify`): forget that
        notice, so the would-be action, when it comes back, is posted again. Called for
        every decision that does not change the target, so it costs a dict lookup when
        there is nothing to forget."""
        if policy in self._dry_said:  # read without the lock: only this policy's runs write
            with self._lock:
                self._dry_said.pop(policy, None)

    def retain(self, policies: Collection[str]) -> None:
        """Forget the last dry-run notice of every policy not in `policies` (removed): one
        that comes back posts its would-be action once again."""
        with self._lock:
            self._dry_said = {p: said for p, said in self._dry_said.items() if p in policies}

    def close(self, timeout: float = 3.0) -> None:
        """Send what is queued within `timeout` seconds, then stop the threads."""
        if not self._senders:
            return
        deadline = time.monotonic() + timeout
        for sender in self._senders:
            with contextlib.suppress(queue.Full):
                sender.queue.put(_STOP, timeout=max(0.0, deadline - time.monotonic()))
        for sender in self._senders:
            sender.thread.join(max(0.0, deadline - time.monotonic()))
        if any(sender.thread.is_alive() for sender in self._senders):
            log.warning("notifications still queued at shutdown were not sent")
        for sender in self._senders:
            sender.session.close()

    def _send(self, session: requests.Session, url: str, body: dict[str, Any]) -> None:
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._backoff, max=5),
            reraise=True,
        )
        try:
            retrying(self._post, session, url, body)
        except Exception as exc:  # anything (a URL urllib3 refuses late): the thread lives on
            # The attempts really made: a 404 is sent once, a 500 up to `attempts` times.
            made = retrying.statistics.get("attempt_number", 1)
            log.warning(
                "notification to %s failed after %d %s (%s)",
                redact_url(url),
                made,
                noun(made, "attempt"),
                _failure(exc),
            )
            self._on_result("failed")
        else:
            self._on_result("sent")

    def _post(self, session: requests.Session, url: str, body: dict[str, Any]) -> None:
        response = session.post(url, json=body, timeout=self._timeout)
        response.raise_for_status()


class _Sender:
    """One webhook's queue, session and thread."""

    def __init__(self, notifier: Notifier, url: str, queue_size: int) -> None:
        self.url = url
        self.queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self.session = requests.Session()
        self._notifier = notifier
        self.thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.queue.get()
            if item is _STOP:
                return
            assert isinstance(item, Decision)
            self._notifier._send(self.session, self.url, payload(item))
