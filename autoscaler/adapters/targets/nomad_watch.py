"""Nomad's event stream as the signal that a job changed, so a steady target is not re-read.

A Nomad target's status (its count, bounds, last count change, whether it may be scaled)
changes only with its job: a scale, a new version, a stop, a purge. Each of those is a
`Job` event on Nomad's event stream (`GET /v1/event/stream?topic=Job:*`, Nomad 1.0 and
later, ACL `read-job`). `JobWatch` follows that stream for one namespace of one cluster
on one connection and hands out *tokens*: a token taken before a status read equals the
one taken later only if no event about that job arrived in between and the stream stayed
up all along. `NomadScaler.status` keeps its last status with the token taken before
reading it and answers from it while the token holds, so 10,000 targets evaluated every
10 s do not send 1,000 status reads a second to Nomad (and the service does not spend
most of its CPU on them).

Safe by construction, never stale by design:

- No token (so: a read every time) until the stream has spoken on this connection (an
  event or Nomad's heartbeat, sent every 10 s: the subscription is then known to be in
  place), nor while it has been silent for more than `silence` seconds, nor while it is
  down. Every connection is a new epoch, which voids every token handed out before it:
  events may have been missed in between.
- Over-invalidating costs one read; an event of a shape this module does not know voids
  every token.
- What the stream does not carry (a deployment's progress) is never answered from a kept
  status: the scaler keeps only a status that is ready, with its version's deployment
  ended (`NomadScaler.status`), and a scale call reads the count fresh first anyway.

When Nomad refuses the stream (no `read-job` for the token, an older Nomad, the event
broker disabled), a warning says so once and every evaluation reads its status as before.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Collection
from typing import Any

import nomad.api
import requests
from nomad.api.exceptions import BaseNomadException

from autoscaler.adapters.http_env import ca_bundle, settle
from autoscaler.adapters.targets.nomad_errors import redact_address, scrub, short

log = logging.getLogger(__name__)

TOPIC = "Job:*"
# Nomad sends a heartbeat `{}` every 30 s on an idle stream (`nomad/event_endpoint.go`:
# `stream.NewJsonStream(ctx, 30*time.Second)`): silence beyond this means a hung
# connection (or a proxy holding the answer back), and nothing it says is trusted.
HEARTBEAT = 30.0
SILENCE = 1.5 * HEARTBEAT
RETRY_MIN, RETRY_MAX = 1.0, 30.0  # after a broken stream, doubling
REFUSED_RETRY = 300.0  # after Nomad refused the stream outright (ACL, version, disabled)

Token = tuple[int, int]


def changed_jobs(message: Any) -> list[str] | None:
    """The job IDs a message of the stream says changed: [] for a heartbeat (`{}`) or
    events of other topics; None when it carries something this module cannot read, which
    must void every token."""
    if not isinstance(message, dict):
        return None
    events = message.get("Events")
    if events is None:
        return []
    if not isinstance(events, list):
        return None
    jobs: list[str] = []
    for event in events:
        if not isinstance(event, dict):
            return None
        if event.get("Topic") != "Job":
            continue
        key = event.get("Key")
        if not isinstance(key, str) or not key:
            return None
        jobs.append(key)
    return jobs


class _Refused(Exception):
    """Nomad answered the stream request with an error status: it will not serve it."""


class JobWatch:
    """Follows the `Job` events of one namespace (and region) of one Nomad cluster.

    The connection is opened by the first `token` call, in a daemon thread of its own, and
    kept (reconnecting with backoff) until `close`.
    """

    def __init__(
        self,
        *,
        address: str,
        token: str | None,
        namespace: str,
        region: str | None = None,
        verify: bool | str = True,
        cert: tuple[str, str] | str | tuple[()] = (),
        connect_timeout: float = 10.0,
        silence: float = SILENCE,
    ) -> None:
        self._address = address.rstrip("/")
        self._shown = redact_address(address)
        self.namespace = namespace
        self.region = region
        self._silence = silence
        self._connect_timeout = connect_timeout
        session = settle(requests.Session(), self._address)  # its own: a stream holds it
        self._api = nomad.api.event.stream(
            address=self._address,
            token=token,
            timeout=connect_timeout,
            verify=ca_bundle(verify),
            cert=cert,
            session=session,
        )
        self._lock = threading.Lock()
        self._epoch = 0
        self._heard = False  # the current connection has spoken: its subscription holds
        self._fresh_until = 0.0
        # Per job a target asked about: the events about it so far. Jobs nobody asked about
        # are not counted (a namespace may dispatch millions of batch jobs over time).
        self._changes: dict[str, int] = {}
        # Above every count handed out: where a job asked about anew starts, so a status
        # kept under the token of a job forgotten since (`retain`) never matches again.
        self._fresh = 0
        self.events = 0  # `Job` events heard, in all (for tests and diagnostics)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False

    def __repr__(self) -> str:
        return f"JobWatch({self._shown!r}, namespace={self.namespace!r})"

    # --- what the scaler asks ---------------------------------------------------------------

    def token(self, job: str) -> Token | None:
        """A token for `job`'s state as of now, or None when the stream cannot vouch for it
        (not connected yet, down, or silent too long): the caller must then read."""
        if self._thread is None:
            self._start()
        with self._lock:
            if not self._vouches():
                return None
            count = self._changes.get(job)
            if count is None:
                count = self._changes[job] = self._fresh
                self._fresh += 1
            return (self._epoch, count)

    def retain(self, jobs: Collection[str]) -> None:
        """Stop counting the events of jobs not in `jobs` (no target reads them now)."""
        with self._lock:
            self._changes = {job: n for job, n in self._changes.items() if job in jobs}

    def __len__(self) -> int:
        """How many jobs' events are counted."""
        with self._lock:
            return len(self._changes)

    def up(self) -> bool:
        """Whether the stream vouches for kept statuses now (what `token` needs)."""
        with self._lock:
            return self._vouches()

    def _vouches(self) -> bool:
        return self._heard and not self._stop.is_set() and time.monotonic() <= self._fresh_until

    def close(self) -> None:
        """Stop following the stream: the thread ends at the stream's next line (a heartbeat
        at the latest) or with the process (it is a daemon). Closing the connection under
        the reading thread would wait for that line all the same (the reader holds the
        socket's buffer lock), and `close` must not delay a shutdown."""
        self._stop.set()
        with self._lock:
            self._heard = False

    # --- the stream ---------------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(
                target=self._run, name=f"nomad-job-events-{self.namespace}", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        delay = RETRY_MIN
        while not self._stop.is_set():
            try:
                self._follow()
                delay = RETRY_MIN
            except _Refused as exc:
                if not self._warned:
                    self._warned = True
                    log.warning(
                        "Nomad at %s refused its job event stream (%s): each evaluation of a "
                        "Nomad target in namespace '%s' reads its status (one request); grant "
                        "the token read-job there (Nomad 1.0 or later) to spare them",
                        self._shown,
                        exc,
                        self.namespace,
                    )
                delay = REFUSED_RETRY
            except Exception as exc:  # whatever broke it: read every status meanwhile
                if self._stop.is_set():
                    return  # `close` cut the connection under the reader
                healthy = self._heard  # it had spoken: a break, not a stream that never works
                expected = (BaseNomadException, requests.RequestException, OSError, ValueError)
                log.log(
                    logging.INFO if isinstance(exc, expected) else logging.WARNING,
                    "Nomad job event stream at %s (namespace '%s') broke, reading every "
                    "status until it is back: %s",
                    self._shown,
                    self.namespace,
                    short(exc, self._address),
                    exc_info=not isinstance(exc, expected),
                )
                delay = RETRY_MIN if healthy else min(RETRY_MAX, delay * 2)
            finally:
                self._lost()
            self._stop.wait(delay * random.uniform(0.8, 1.2))

    def _follow(self) -> None:
        """One connection: read its lines until it ends (returns) or breaks (raises)."""
        params = {"topic": TOPIC, "namespace": self.namespace, "index": "0"}
        if self.region:
            params["region"] = self.region
        try:
            response = self._api.request(
                method="get",
                params=params,
                timeout=(self._connect_timeout, self._silence),
                stream=True,
            )
        except BaseNomadException as exc:
            answer = exc.nomad_resp
            if isinstance(answer, requests.Response):
                text = scrub(answer.text.strip(), self._address)[:200]
                raise _Refused(f"HTTP {answer.status_code}: {text}") from None
            raise
        with response:
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if line:  # a bare newline keeps nothing alive that a heartbeat does not
                    self._hear(json.loads(line))

    def _hear(self, message: Any) -> None:
        jobs = changed_jobs(message)
        with self._lock:
            if not self._heard:  # the first word on a connection: a new epoch
                self._heard = True
                self._epoch += 1
                log.debug("following Nomad's job events at %s", self._shown)
            self._fresh_until = time.monotonic() + self._silence
            if jobs is None:
                self._epoch += 1
                return
            self.events += len(jobs)
            for job in jobs:
                count = self._changes.get(job)
                if count is not None:
                    self._changes[job] = count + 1
                    self._fresh = max(self._fresh, count + 2)

    def _lost(self) -> None:
        with self._lock:
            self._heard = False
