"""Nomad targets that follow the job event stream: a steady target is not read again.

python-nomad over real HTTP against the Nomad API stand-in's `/v1/event/stream` (chunked
newline-delimited JSON, heartbeats, Job events on register, scale and purge).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from autoscaler.adapters.targets import TargetFactory
from autoscaler.adapters.targets.nomad import NomadScaler
from autoscaler.adapters.targets.nomad_settings import NomadSettings
from autoscaler.adapters.targets.nomad_watch import HEARTBEAT, RETRY_MIN, SILENCE, JobWatch
from autoscaler.core.model import NomadTarget
from tests.support.net import wait_until
from tests.support.nomad_api import NomadApiStandIn

pytestmark = pytest.mark.integration

META = {"autoscaler.policy": "chat-api"}
STATUS_READS = ("/v1/job/chat/scale", "/v1/job/chat", "/v1/job/chat/deployment")


def reads(stand_in: NomadApiStandIn) -> list[str]:
    """The status reads (GETs but the event stream's) since the last call."""
    paths = [r.path for r in stand_in.requests_to("GET") if r.path != "/v1/event/stream"]
    stand_in.requests.clear()
    return paths


@pytest.fixture
def nomad(nomad_api: NomadApiStandIn) -> NomadApiStandIn:
    nomad_api.event_heartbeat = 0.1
    return nomad_api


@pytest.fixture
def watch(nomad: NomadApiStandIn) -> Iterator[JobWatch]:
    watch = JobWatch(address=nomad.address, token=None, namespace="default", silence=1.0)
    yield watch
    watch.close()


def scaler_for(nomad: NomadApiStandIn, watch: JobWatch | None, **settings: Any) -> NomadScaler:
    values: dict[str, Any] = {"address": nomad.address, "timeout": 0.5, "deadline": 1.5}
    values.update(settings)
    return NomadScaler(NomadTarget(job="chat", group="web"), NomadSettings(**values), watch=watch)


def steady_job(nomad: NomadApiStandIn, count: int = 3) -> None:
    nomad.register_job("chat", groups={"web": count})
    nomad.set_deployment("chat", "successful")


def watched_scaler(nomad: NomadApiStandIn, watch: JobWatch, **settings: Any) -> NomadScaler:
    """A scaler of the steady job "chat", once the stream vouches for it."""
    steady_job(nomad)
    scaler = scaler_for(nomad, watch, **settings)
    wait_until(lambda: watch.token("chat") is not None, timeout=15)
    return scaler


def test_a_steady_target_is_read_once_while_the_stream_vouches_for_it(
    nomad: NomadApiStandIn, watch: JobWatch
) -> None:
    scaler = watched_scaler(nomad, watch)
    first = scaler.status()
    assert reads(nomad) == list(STATUS_READS)
    for _ in range(5):
        assert scaler.status() is first
    assert reads(nomad) == []


def test_a_version_marked_stable_is_kept_too(nomad: NomadApiStandIn, watch: JobWatch) -> None:
    """As Nomad does once a deployment succeeded: the job's ModifyIndex moves (the scale
    status shows it), its JobModifyIndex does not."""
    steady_job(nomad)
    nomad.touch_job("chat")
    nomad._events.clear()  # not replayed on the stream: it connects only now
    scaler = scaler_for(nomad, watch)
    wait_until(lambda: watch.token("chat") is not None, timeout=15)
    first = scaler.status()
    assert first.ready
    assert reads(nomad) == list(STATUS_READS)
    for _ in range(3):
        assert scaler.status() is first
    assert reads(nomad) == []


def test_until_the_stream_has_spoken_every_status_is_read(nomad: NomadApiStandIn) -> None:
    nomad.event_heartbeat = 30.0  # (Nomad's) no heartbeat, and no event, during the test
    watch = JobWatch(address=nomad.address, token=None, namespace="default", silence=60.0)
    try:
        steady_job(nomad)
        nomad._events.clear()  # the register's event is not replayed on the stream
        scaler = scaler_for(nomad, watch)
        scaler.status()
        scaler.status()
        assert watch.token("chat") is None
        assert reads(nomad) == [*STATUS_READS, "/v1/job/chat/scale"]
    finally:
        watch.close()


def test_a_scale_by_someone_else_is_read_at_the_next_status(
    nomad: NomadApiStandIn, watch: JobWatch
) -> None:
    scaler = watched_scaler(nomad, watch)
    scaler.status()
    before = watch.token("chat")

    scaler_for(nomad, None).scale(6, reason="by hand", meta={})  # as `nomad job scale` would
    wait_until(lambda: watch.token("chat") != before, timeout=15)
    reads(nomad)

    status = scaler.status()
    assert status.count == 6
    assert status.last_scaled_at is not None
    assert reads(nomad)[0] == "/v1/job/chat/scale"


def test_an_event_about_another_job_keeps_the_status(
    nomad: NomadApiStandIn, watch: JobWatch
) -> None:
    scaler = watched_scaler(nomad, watch)
    first = scaler.status()
    heard = watch.events
    nomad.register_job("billing", groups={"api": 2})
    wait_until(lambda: watch.events > heard, timeout=15)
    reads(nomad)
    assert scaler.status() is first
    assert reads(nomad) == []
    assert "billing" not in watch._changes  # nobody asked about it: not counted


def test_our_own_scale_is_read_back_even_before_its_event(
    nomad: NomadApiStandIn, watch: JobWatch
) -> None:
    scaler = watched_scaler(nomad, watch)
    scaler.status()
    nomad.drop_event_streams()  # no event can arrive in between...
    wait_until(lambda: watch.token("chat") is None, timeout=15)
    scaler.scale(5, reason="up", meta=META)
    assert scaler.status().count == 5  # ...and the count is read back all the same


def test_an_active_deployment_is_read_at_every_status(
    nomad: NomadApiStandIn, watch: JobWatch
) -> None:
    """A deployment's progress is not a Job event: while one runs, nothing is kept."""
    nomad.register_job("chat", groups={"web": 3})
    nomad.set_deployment("chat", "running")
    scaler = scaler_for(nomad, watch)
    wait_until(lambda: watch.token("chat") is not None, timeout=15)
    assert not scaler.status().ready
    assert not scaler.status().ready
    assert reads(nomad) == [*STATUS_READS, "/v1/job/chat/scale", "/v1/job/chat/deployment"]
    nomad.set_deployment("chat", "successful")  # no Job event for this
    assert scaler.status().ready
    assert scaler.status().ready
    assert reads(nomad) == ["/v1/job/chat/scale", "/v1/job/chat/deployment"]


def test_a_stopped_job_is_seen_through_its_event(nomad: NomadApiStandIn, watch: JobWatch) -> None:
    scaler = watched_scaler(nomad, watch)
    assert scaler.status().ready
    before = watch.token("chat")
    nomad.register_job("chat", groups={"web": 3}, stopped=True)
    wait_until(lambda: watch.token("chat") != before, timeout=15)
    status = scaler.status()
    assert not status.ready
    assert status.not_ready_reason == "job 'chat' is stopped"


def test_a_broken_stream_means_a_read_at_every_status_until_it_is_back(
    nomad: NomadApiStandIn, watch: JobWatch
) -> None:
    scaler = watched_scaler(nomad, watch)
    scaler.status()
    before = watch.token("chat")

    nomad.event_stream_refusal = (500, "server restarting")
    nomad.drop_event_streams()
    wait_until(lambda: watch.token("chat") is None, timeout=15)
    reads(nomad)
    scaler.status()
    scaler.status()
    assert reads(nomad) == ["/v1/job/chat/scale", "/v1/job/chat/scale"]

    nomad.event_stream_refusal = None  # back (the watch retries within a few seconds)
    wait_until(lambda: watch.token("chat") is not None, timeout=10)
    after = watch.token("chat")
    assert after is not None and before is not None and after[0] > before[0]  # a new epoch
    scaler.status()  # read once: events may have been missed while it was down
    scaler.status()
    assert reads(nomad) == ["/v1/job/chat/scale"]


def test_a_silent_stream_is_not_trusted(nomad: NomadApiStandIn, watch: JobWatch) -> None:
    """A connection that says nothing for longer than `silence` (Nomad heartbeats every
    30 s) may be hung: its word is void until it speaks again."""
    scaler = watched_scaler(nomad, watch)
    scaler.status()
    nomad.event_streams_silent = True
    wait_until(lambda: watch.token("chat") is None, timeout=10)
    reads(nomad)
    scaler.status()
    assert reads(nomad) == ["/v1/job/chat/scale"]
    nomad.event_streams_silent = False
    wait_until(lambda: watch.token("chat") is not None, timeout=10)


def test_a_refused_stream_is_said_once_and_every_status_is_read(
    nomad: NomadApiStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    nomad.enable_acl({"reader": {"default": {"read-job-scaling"}}})  # no read-job
    watch = JobWatch(address=nomad.address, token="reader", namespace="default", silence=1.0)
    try:
        nomad.register_job("chat", groups={"web": 3})
        with caplog.at_level(logging.WARNING, logger="autoscaler.adapters.targets.nomad_watch"):
            assert watch.token("chat") is None
            wait_until(lambda: bool(caplog.records), timeout=15)
        (record,) = caplog.records
        message = record.getMessage()
        assert "refused its job event stream (HTTP 403: Permission denied)" in message
        assert "grant the token read-job" in message
        assert "namespace 'default'" in message
        assert watch.token("chat") is None
    finally:
        watch.close()


def test_the_service_factory_shares_one_stream_per_namespace(nomad: NomadApiStandIn) -> None:
    factory = TargetFactory(nomad=NomadSettings(address=nomad.address), watch_nomad=True)
    try:
        a = factory(NomadTarget(job="a", group="web"))
        b = factory(NomadTarget(job="b", group="web"))
        c = factory(NomadTarget(job="c", group="web", namespace="batch"))
        assert isinstance(a, NomadScaler) and isinstance(b, NomadScaler)
        assert isinstance(c, NomadScaler)
        assert a._watch is b._watch
        assert a._watch is not None and a._watch.namespace == "default"
        assert c._watch is not None and c._watch.namespace == "batch"
    finally:
        factory.close()
    # `plan` and other one-off reads do not follow the stream.
    assert (
        TargetFactory(nomad=NomadSettings(address=nomad.address)).nomad_watch(
            NomadTarget(job="a", group="web")
        )
        is None
    )


def test_with_acls_the_stream_is_read_with_the_token_and_vouches(nomad: NomadApiStandIn) -> None:
    nomad.enable_acl({"reader": {"default": {"read-job", "scale-job"}}})
    watch = JobWatch(address=nomad.address, token="reader", namespace="default", silence=1.0)
    try:
        scaler = watched_scaler(nomad, watch, token="reader")
        streams = nomad.requests_to("GET", "/v1/event/stream")
        assert streams
        assert all(r.headers.get("x-nomad-token") == "reader" for r in streams)
        first = scaler.status()
        reads(nomad)
        assert scaler.status() is first
        assert reads(nomad) == []
    finally:
        watch.close()


def test_a_quiet_stream_heartbeating_at_nomads_period_stays_one_trusted_connection(
    nomad: NomadApiStandIn,
) -> None:
    # Nomad heartbeats every 30 s; the watch waited 25 s: every quiet stream broke, and
    # every status was read again, about once a minute. The real ratio, scaled down: to
    # 1 s and 1.5 s, so that a heartbeat a loaded machine delays still comes well within
    # the silence (scaled by 100, 0.15 s apart, one late heartbeat broke the stream). The
    # old 25 s wait, scaled alike (0.83 s), is still shorter than a heartbeat period.
    scale = 30.0
    nomad.event_heartbeat = HEARTBEAT / scale
    watch = JobWatch(
        address=nomad.address, token=None, namespace="default", silence=SILENCE / scale
    )
    try:
        steady_job(nomad)
        wait_until(lambda: watch.token("chat") is not None, timeout=15)
        first = watch.token("chat")
        time.sleep(5 * HEARTBEAT / scale)  # five heartbeat periods, nothing else said
        assert watch.token("chat") == first
        assert len(nomad.requests_to("GET", "/v1/event/stream")) == 1
    finally:
        watch.close()


def test_a_stream_that_had_spoken_reconnects_at_once_after_each_break(
    nomad: NomadApiStandIn, watch: JobWatch
) -> None:
    # A read timeout is an exception: the retry delay doubled at every break (up to 30 s)
    # although each connection had worked, so the stream was down ever longer.
    steady_job(nomad)
    wait_until(lambda: watch.token("chat") is not None, timeout=15)
    for _ in range(3):
        nomad.event_streams_silent = True  # the connection goes quiet: a read timeout
        wait_until(lambda: watch.token("chat") is None, timeout=15)
        nomad.event_streams_silent = False
        broke = time.monotonic()
        wait_until(lambda: watch.token("chat") is not None, timeout=10)
        # Not 2, 4, 8 s (each within 20 % either way): the second break's 3.2 s at the
        # least is beyond this bound, which leaves a busy machine 1.8 s to reconnect.
        assert time.monotonic() - broke < RETRY_MIN * 1.2 + 1.8
