"""The Nomad target against the Nomad API stand-in, with python-nomad over real HTTP(S)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from autoscaler.adapters.deadline import monotonic
from autoscaler.adapters.targets.nomad import NomadScaler
from autoscaler.adapters.targets.nomad_settings import NomadSettings
from autoscaler.core.model import NomadTarget
from autoscaler.errors import (
    TargetBusy,
    TargetDeadline,
    TargetError,
    TargetForbidden,
    TargetNotFound,
    TargetUnavailable,
)
from tests.support.net import free_port, slow_lookups, wait_until
from tests.support.nomad_api import NomadApiStandIn

pytestmark = pytest.mark.integration

SECRET = "6f1c1f6e-3c1b-4d5e-9a3e-5b0b2f7f0a11"
META = {"autoscaler.policy": "chat-api", "autoscaler.check.p95-latency": "0.31"}


def settings_for(stand_in: NomadApiStandIn, **overrides: Any) -> NomadSettings:
    """Short time limits so failure paths stay fast."""
    values: dict[str, Any] = {"address": stand_in.address, "timeout": 0.5, "deadline": 1.5}
    values.update(overrides)
    return NomadSettings(**values)


def scaler_for(
    stand_in: NomadApiStandIn, job: str = "chat", group: str = "web", **overrides: Any
) -> NomadScaler:
    return NomadScaler(NomadTarget(job=job, group=group), settings_for(stand_in, **overrides))


# --- reading and scaling --------------------------------------------------------------------


def test_status_reports_the_groups_desired_count_and_is_ready(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job("chat", groups={"web": 3, "worker": 7})

    status = scaler_for(nomad_api, group="worker").status()

    assert status.count == 7
    assert status.ready
    assert status.not_ready_reason is None
    assert status.last_scaled_at is None


def test_count_falls_back_to_the_job_spec_when_the_scale_status_lacks_the_group(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat", groups={"web": 4, "worker": 7})
    nomad_api.scale_status_omits = {"worker"}

    assert scaler_for(nomad_api, group="worker").status().count == 7
    assert scaler_for(nomad_api, group="web").status().count == 4


@pytest.mark.parametrize(("start", "to"), [(3, 5), (5, 2)], ids=["up", "down"])
def test_scale_sets_the_groups_count(nomad_api: NomadApiStandIn, start: int, to: int) -> None:
    nomad_api.register_job("chat", groups={"web": start})
    scaler = scaler_for(nomad_api)

    scaler.scale(to, reason="autoscaler policy chat-api: p95 above target", meta=META)

    assert nomad_api.group_count("chat", "web") == to
    assert scaler.status().count == to


def test_a_count_changed_by_hand_since_the_decision_is_not_overwritten(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat", groups={"web": 2})
    scaler = scaler_for(nomad_api)
    decided_on = scaler.status().count
    # `nomad job scale chat web 9` between our read and our write
    requests.post(
        f"{nomad_api.address}/v1/job/chat/scale",
        json={"Count": 9, "Target": {"Group": "web"}, "Message": "by hand"},
        timeout=5,
    ).raise_for_status()

    with pytest.raises(TargetBusy, match="changed from 2 to 9"):
        scaler.scale(4, reason="up", meta=META, expected=decided_on)

    assert nomad_api.group_count("chat", "web") == 9
    assert scaler.status().count == 9  # the next evaluation reads it again, and goes on
    scaler.scale(10, reason="up", meta=META, expected=9)
    assert nomad_api.group_count("chat", "web") == 10


def test_a_new_version_registered_just_before_our_scale_is_not_scaled_over(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat", groups={"web": 3})
    scaler = scaler_for(nomad_api)
    decided_on = scaler.status().count
    # `nomad job run` of a jobspec with count = 5 lands after our last read, just before
    # our scale request: Nomad (1.8.2+) refuses a scale whose job modify index is stale.
    nomad_api.before_next_scale = lambda: nomad_api.new_version("chat", {"web": 5})

    with pytest.raises(TargetBusy, match="job 'chat' changed since it was read"):
        scaler.scale(4, reason="up", meta=META, expected=decided_on)

    assert nomad_api.group_count("chat", "web") == 5
    assert len(nomad_api.requests_to("POST", "/scale")) == 1  # refused, not retried
    assert scaler.status().count == 5  # the next evaluation reads the new version
    scaler.scale(6, reason="up", meta=META, expected=5)
    assert nomad_api.group_count("chat", "web") == 6


def test_the_scale_request_carries_the_version_read_not_the_jobs_last_change(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat", groups={"web": 3})
    nomad_api.touch_job("chat")  # e.g. its version marked stable: ModifyIndex moves alone
    job = requests.get(f"{nomad_api.address}/v1/job/chat", timeout=5).json()
    assert job["ModifyIndex"] != job["JobModifyIndex"]
    scaler = scaler_for(nomad_api)

    scaler.scale(4, reason="up", meta=META, expected=scaler.status().count)

    (post,) = nomad_api.requests_to("POST", "/scale")
    assert post.body["EnforceIndex"] is True
    assert post.body["JobModifyIndex"] == job["JobModifyIndex"]
    assert nomad_api.group_count("chat", "web") == 4


def _by_hand(stand_in: NomadApiStandIn, count: int) -> None:
    """`nomad job scale chat web COUNT`."""
    requests.post(
        f"{stand_in.address}/v1/job/chat/scale",
        json={"Count": count, "Target": {"Group": "web"}, "Message": "by hand"},
        timeout=5,
    ).raise_for_status()


def _ours(stand_in: NomadApiStandIn) -> list[Any]:
    """Our scale requests (not those made by hand)."""
    return [r for r in stand_in.requests_to("POST", "/scale") if r.body["Message"] != "by hand"]


def _meanwhile(
    stand_in: NomadApiStandIn, act: Callable[[], None], *, timeout: float = 3.0
) -> Callable[[], None]:
    """Scale chat/web from 2 to 4 while its first scale request is answered HTTP 500 after
    1 s (unanswered with a shorter `timeout`); in that time `act` runs (someone else's
    change). The call's outcome: the call has ended by then (leaving the pool waits for it;
    the scaler's deadline bounds it)."""
    stand_in.register_job("chat", groups={"web": 2})
    scaler = scaler_for(stand_in, timeout=timeout, deadline=5.0)
    stand_in.fail_requests_of("chat", 500, "rpc error: EOF", methods=["POST"], delay=1.0)
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(scaler.scale, 4, reason="up", meta=META, expected=2)
        wait_until(lambda: len(_ours(stand_in)) == 1, timeout=5.0)
        stand_in.heal("chat")
        act()
        return call.result


def test_a_count_changed_by_hand_while_the_scale_is_retried_is_not_overwritten(
    nomad_api: NomadApiStandIn,
) -> None:
    # Checked once, before the first attempt, the count was overwritten by the retry.
    outcome = _meanwhile(nomad_api, lambda: _by_hand(nomad_api, 9))

    with pytest.raises(TargetBusy, match="changed from 2 to 9"):
        outcome()

    assert nomad_api.group_count("chat", "web") == 9  # our "up" to 4 would have been a scale-in
    assert len(_ours(nomad_api)) == 1


def test_a_retried_scale_that_finds_its_own_count_already_set_is_done(
    nomad_api: NomadApiStandIn,
) -> None:
    # The group at the count being set is what an earlier attempt that landed leaves (its
    # answer a 5xx or lost): not someone else's move, and nothing to send again.
    outcome = _meanwhile(nomad_api, lambda: _by_hand(nomad_api, 4))

    outcome()

    assert nomad_api.group_count("chat", "web") == 4
    assert len(_ours(nomad_api)) == 1


def test_a_job_stopped_while_the_scale_is_retried_is_not_scaled(
    nomad_api: NomadApiStandIn,
) -> None:
    # `nomad job stop chat`: sent again, the scale would start it with our count.
    outcome = _meanwhile(
        nomad_api, lambda: nomad_api.register_job("chat", groups={"web": 2}, stopped=True)
    )

    with pytest.raises(TargetBusy, match="was stopped"):
        outcome()

    assert len(_ours(nomad_api)) == 1


def test_a_count_changed_while_an_unanswered_scale_is_retried_may_have_been_applied(
    nomad_api: NomadApiStandIn,
) -> None:
    # The first attempt timed out unanswered: it may have landed, whatever the re-read found.
    outcome = _meanwhile(nomad_api, lambda: _by_hand(nomad_api, 9), timeout=0.6)

    with pytest.raises(TargetUnavailable, match="changed from 2 to 9") as info:
        outcome()

    assert info.value.maybe_applied
    assert nomad_api.group_count("chat", "web") == 9
    assert len(_ours(nomad_api)) == 1


@pytest.mark.parametrize(
    ("body", "got"),
    [
        pytest.param("", "an empty answer", id="empty"),
        pytest.param("null", "an empty answer", id="json-null"),
        pytest.param("[]", "a JSON list", id="json-list"),
    ],
)
def test_a_read_answered_with_no_json_object_is_a_failed_read_that_says_so(
    nomad_api: NomadApiStandIn, body: str, got: str
) -> None:
    # A proxy's answer, not Nomad's: an AttributeError deep in the adapter before, which
    # escaped the scale call (`run --once` stopped there, a cooldown with no scale recorded).
    nomad_api.register_job("chat", groups={"web": 2})
    scaler = scaler_for(nomad_api)
    nomad_api.fail_next(1, status=200, body=body)
    with pytest.raises(TargetError, match=f"answered the scale read of .* with {got}, not a JSON"):
        scaler.status()

    nomad_api.fail_next(1, status=200, body=body)  # the read before the scale request
    with pytest.raises(TargetError, match=f"with {got}, not a JSON object"):
        scaler.scale(4, reason="up", meta=META, expected=2)
    assert nomad_api.requests_to("POST") == []  # nothing sent on a read that said nothing
    assert nomad_api.group_count("chat", "web") == 2


def test_a_job_without_a_deployment_answered_null_or_empty_is_ready(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat", groups={"web": 2})  # no deployment: Nomad answers null
    assert scaler_for(nomad_api).status().ready


def test_a_scale_request_accepted_with_a_non_json_body_may_have_been_applied(
    nomad_api: NomadApiStandIn,
) -> None:
    # A 2xx was sent back: Nomad (or what stands before it) took the request. Reported as
    # failed before, the cooldown it started was withdrawn although it may have landed.
    nomad_api.register_job("chat", groups={"web": 2})
    nomad_api.fail_requests_of("chat", status=200, body="<html>ok</html>", methods=["POST"])
    with pytest.raises(TargetUnavailable, match="non-JSON body: it may have been applied") as info:
        scaler_for(nomad_api).scale(4, reason="up", meta=META)
    assert info.value.maybe_applied


def test_scale_to_zero_and_back_from_zero(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job("chat", groups={"web": 2})
    scaler = scaler_for(nomad_api)

    scaler.scale(0, reason="idle", meta=META)
    assert scaler.status().count == 0

    scaler.scale(3, reason="traffic is back", meta=META)
    assert scaler.status().count == 3
    assert [e["Count"] for e in nomad_api.scale_events("chat", "web")] == [3, 0]


def test_scale_request_carries_count_group_message_meta_and_no_policy_override(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat", groups={"web": 2})

    scaler_for(nomad_api).scale(4, reason="p95 0.31s above 0.25s", meta=META)

    (post,) = nomad_api.requests_to("POST", "/scale")
    assert post.path == "/v1/job/chat/scale"
    assert post.body == {
        "Count": 4,
        "Target": {"Group": "web"},
        "Message": "policy chat-api: p95 0.31s above 0.25s",
        "Meta": META,
        "PolicyOverride": False,
    }
    (event,) = nomad_api.scale_events("chat", "web")
    assert event["Message"] == "policy chat-api: p95 0.31s above 0.25s"
    assert event["Meta"] == META
    assert event["PreviousCount"] == 2
    assert event["EvalID"]


def test_message_is_the_reason_when_it_already_names_the_policy(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat")

    scaler_for(nomad_api).scale(4, reason="autoscaler policy chat-api: up", meta=META)

    (post,) = nomad_api.requests_to("POST", "/scale")
    assert post.body["Message"] == "autoscaler policy chat-api: up"


# --- the group's own bounds (its `scaling` block) -------------------------------------------


def test_status_reports_the_groups_scaling_bounds(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job("chat", groups={"web": 3, "worker": 7}, scaling={"web": (2, 8)})

    web = scaler_for(nomad_api).status()
    worker = scaler_for(nomad_api, group="worker").status()

    assert (web.count, web.min_size, web.max_size) == (3, 2, 8)
    assert (worker.min_size, worker.max_size) == (None, None)


def test_a_group_without_a_scaling_block_has_no_bounds(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job("chat", groups={"web": 3})

    status = scaler_for(nomad_api).status()

    assert (status.min_size, status.max_size) == (None, None)


@pytest.mark.parametrize(
    ("to", "refusal"),
    [
        (9, "group count was greater than scaling policy maximum: 9 > 8"),
        (1, "group count was less than scaling policy minimum: 1 < 2"),
    ],
    ids=["above-max", "below-min"],
)
def test_a_scale_outside_the_groups_bounds_is_refused_with_nomads_text(
    nomad_api: NomadApiStandIn, to: int, refusal: str
) -> None:
    nomad_api.register_job("chat", groups={"web": 3}, scaling={"web": (2, 8)})

    with pytest.raises(TargetError, match=rf"\(HTTP 400\): {refusal}$") as caught:
        scaler_for(nomad_api).scale(to, reason="up", meta=META)

    assert type(caught.value) is TargetError  # neither busy nor unavailable: not retried
    assert nomad_api.group_count("chat", "web") == 3
    assert len(nomad_api.requests_to("POST", "/scale")) == 1
    assert nomad_api.scale_events("chat", "web") == []


def test_policy_override_does_not_lift_the_groups_bounds(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job("chat", groups={"web": 3}, scaling={"web": (2, 8)})
    url = f"{nomad_api.address}/v1/job/chat/scale"

    above = requests.post(
        url, json={"Count": 9, "Target": {"Group": "web"}, "PolicyOverride": True}, timeout=5
    )
    at_max = requests.post(url, json={"Count": 8, "Target": {"Group": "web"}}, timeout=5)

    assert (above.status_code, above.text) == (
        400,
        "group count was greater than scaling policy maximum: 9 > 8",
    )
    assert at_max.status_code == 200
    assert nomad_api.group_count("chat", "web") == 8


def test_the_minimum_is_checked_before_an_active_deployment(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job("chat", groups={"web": 3}, scaling={"web": (2, 8)})
    nomad_api.set_deployment("chat", "running")

    with pytest.raises(TargetError, match="less than scaling policy minimum: 0 < 2"):
        scaler_for(nomad_api).scale(0, reason="idle", meta=META)
    with pytest.raises(TargetBusy):
        scaler_for(nomad_api).scale(4, reason="up", meta=META)


# --- holds ----------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["running", "pending", "paused", "blocked", "initializing"])
def test_active_deployment_holds_and_sends_no_scale(nomad_api: NomadApiStandIn, state: str) -> None:
    nomad_api.register_job("chat")
    nomad_api.set_deployment("chat", state)

    status = scaler_for(nomad_api).status()

    assert not status.ready
    assert status.not_ready_reason is not None
    assert state in status.not_ready_reason
    assert status.count == 3
    assert nomad_api.requests_to("POST") == []


@pytest.mark.parametrize(
    ("state", "description", "hint"),
    [
        (
            "running",
            "Deployment is running but requires manual promotion",
            "nomad deployment promote",
        ),
        ("paused", "Deployment is paused", "nomad deployment resume"),
    ],
)
def test_a_deployment_waiting_on_an_operator_holds_saying_what_it_waits_for(
    nomad_api: NomadApiStandIn, state: str, description: str, hint: str
) -> None:
    # Canaries awaiting promotion keep a deployment `running` for as long as nobody
    # promotes them (hours, days): the hold must say it waits on a person, not on time.
    nomad_api.register_job("chat")
    ident = nomad_api.set_deployment("chat", state, description=description)

    reason = scaler_for(nomad_api).status().not_ready_reason

    assert reason is not None
    assert description.lower().removeprefix("deployment is ") in reason
    assert f"{hint} {ident}" in reason
    assert reason.endswith("Nomad refuses scaling until it ends")


def test_a_running_deployment_holds_without_repeating_nomads_plain_description(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat")
    ident = nomad_api.set_deployment("chat", "running")

    reason = scaler_for(nomad_api).status().not_ready_reason

    assert reason == (
        f"deployment {ident[:8]} of job 'chat' is running; Nomad refuses scaling until it ends"
    )


@pytest.mark.parametrize("state", ["successful", "failed", "cancelled"])
def test_finished_deployment_does_not_hold(nomad_api: NomadApiStandIn, state: str) -> None:
    nomad_api.register_job("chat")
    nomad_api.set_deployment("chat", state)

    assert scaler_for(nomad_api).status().ready


def test_scale_refused_by_an_active_deployment_raises_target_busy(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat", groups={"web": 3})
    scaler = scaler_for(nomad_api)
    assert scaler.status().ready
    nomad_api.set_deployment("chat", "running")  # started between our read and our scale

    with pytest.raises(TargetBusy, match="active deployment"):
        scaler.scale(5, reason="up", meta=META)

    assert nomad_api.group_count("chat", "web") == 3
    assert len(nomad_api.requests_to("POST", "/scale")) == 1  # refused, not retried


def test_stopped_job_is_not_ready(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job("chat", stopped=True)

    status = scaler_for(nomad_api).status()

    assert not status.ready
    assert status.not_ready_reason == "job 'chat' is stopped"


# --- what cannot be scaled ------------------------------------------------------------------


def test_missing_job_raises_not_found_naming_job_and_namespace(nomad_api: NomadApiStandIn) -> None:
    scaler = NomadScaler(
        NomadTarget(job="ghost", group="web", namespace="apps"), settings_for(nomad_api)
    )

    with pytest.raises(TargetNotFound, match="job 'ghost' not found in namespace 'apps'"):
        scaler.status()
    with pytest.raises(TargetNotFound, match="job 'ghost' not found"):
        scaler.scale(2, reason="up", meta=META)


def test_missing_group_raises_not_found_listing_the_jobs_groups(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat", groups={"web": 1, "api": 2})
    scaler = scaler_for(nomad_api, group="wbe")

    with pytest.raises(
        TargetNotFound, match="task group 'wbe' not found in job 'chat'; groups: api, web"
    ):
        scaler.status()
    with pytest.raises(TargetNotFound, match="task group 'wbe' not found in job 'chat'"):
        scaler.scale(2, reason="up", meta=META)


@pytest.mark.parametrize("kind", ["periodic", "parameterized"])
def test_periodic_and_parameterized_jobs_are_refused(nomad_api: NomadApiStandIn, kind: str) -> None:
    nomad_api.register_job(
        "report", periodic=kind == "periodic", parameterized=kind == "parameterized"
    )

    with pytest.raises(TargetError, match=f"job 'report' is {kind}"):
        scaler_for(nomad_api, job="report").status()


@pytest.mark.parametrize("kind", ["system", "sysbatch"])
def test_system_and_sysbatch_jobs_are_refused_before_any_scale(
    nomad_api: NomadApiStandIn, kind: str
) -> None:
    # Nomad itself refuses a system job's count above 1 only once a scale is sent, and
    # takes a sysbatch job's count only to ignore it.
    nomad_api.register_job("agent", {"web": 1}, type=kind)

    with pytest.raises(TargetError, match=f"job 'agent' is of type {kind}: .* no count to scale"):
        scaler_for(nomad_api, job="agent").status()


# --- ACLs and the token ---------------------------------------------------------------------


def test_token_without_scale_job_raises_forbidden_naming_scale_job(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat")
    nomad_api.enable_acl({SECRET: {"default": ["read-job"]}})
    scaler = scaler_for(nomad_api, token=SECRET)
    assert scaler.status().count == 3

    with pytest.raises(TargetForbidden) as caught:
        scaler.scale(5, reason="up", meta=META)

    assert "'scale-job' capability in namespace 'default'" in str(caught.value)
    assert "Permission denied" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_token_without_read_job_raises_forbidden_naming_read_job(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat", namespace="apps")
    nomad_api.enable_acl({SECRET: {"apps": ["scale-job"], "default": ["read-job"]}})
    scaler = NomadScaler(
        NomadTarget(job="chat", group="web", namespace="apps"),
        settings_for(nomad_api, token=SECRET),
    )

    with pytest.raises(TargetForbidden, match="'read-job' capability in namespace 'apps'"):
        scaler.status()


def test_a_scheduler_rejecting_job_registration_holds_and_does_not_blame_the_token(
    nomad_api: NomadApiStandIn,
) -> None:
    # `nomad operator scheduler set-config -reject-job-registration=true` (load shedding):
    # Nomad refuses every non-management scale with a 403 that names no capability.
    nomad_api.register_job("chat", groups={"web": 3})
    nomad_api.enable_acl({SECRET: {"default": ["read-job", "scale-job"]}})
    nomad_api.reject_job_registration = True
    scaler = scaler_for(nomad_api, token=SECRET)
    assert scaler.status().count == 3

    with pytest.raises(TargetBusy) as caught:
        scaler.scale(5, reason="up", meta=META)

    text = str(caught.value)
    assert "disabled by the scheduler configuration" in text
    assert "reject_job_registration" in text
    assert "capability" not in text
    assert nomad_api.group_count("chat", "web") == 3
    assert len(nomad_api.requests_to("POST", "/scale")) == 1  # not retried

    nomad_api.reject_job_registration = False  # the operator lifts it
    scaler.scale(5, reason="up", meta=META)
    assert nomad_api.group_count("chat", "web") == 5


def test_a_management_token_scales_while_the_scheduler_rejects_job_registration(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat", groups={"web": 3})
    nomad_api.enable_acl({}, management=[SECRET])
    nomad_api.reject_job_registration = True

    scaler_for(nomad_api, token=SECRET).scale(5, reason="up", meta=META)

    assert nomad_api.group_count("chat", "web") == 5


def test_unknown_token_is_forbidden_and_says_so(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job("chat")
    nomad_api.enable_acl({SECRET: {"default": ["read-job", "scale-job"]}})

    with pytest.raises(TargetForbidden, match="ACL token not found"):
        scaler_for(nomad_api, token="not-" + SECRET).status()


def test_token_is_sent_as_header_and_never_shown(
    nomad_api: NomadApiStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    nomad_api.register_job("chat")
    nomad_api.enable_acl({SECRET: {"default": ["read-job", "scale-job"]}})
    settings = settings_for(nomad_api, token=SECRET)
    scaler = NomadScaler(NomadTarget(job="chat", group="web"), settings)

    scaler.status()
    scaler.scale(4, reason="up", meta=META)
    with pytest.raises(TargetNotFound) as caught:
        NomadScaler(NomadTarget(job="ghost", group="web"), settings).status()

    assert {r.headers.get("x-nomad-token") for r in nomad_api.requests} == {SECRET}
    assert all(SECRET not in r.query.values() for r in nomad_api.requests)
    shown = [repr(settings), str(settings), repr(scaler), str(caught.value), caplog.text]
    assert not [text for text in shown if SECRET in text]
    assert "<hidden>" in repr(settings)


def test_a_proxy_quoting_the_token_back_never_shows_it(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job("chat")
    nomad_api.enable_acl({SECRET: {"default": ["read-job", "scale-job"]}})
    nomad_api.fail_next(1, status=403, body="Permission denied", echo=True)

    with pytest.raises(TargetForbidden) as caught:
        scaler_for(nomad_api, token=SECRET).status()

    assert SECRET not in str(caught.value)
    assert "x-nomad-token: ***" in str(caught.value).lower()  # the echo itself stays visible


def test_a_token_with_a_line_break_is_refused_without_showing_it() -> None:
    with pytest.raises(TargetError, match="NOMAD_TOKEN contains a line break") as caught:
        NomadSettings(token=f"{SECRET}\nsecond-line")

    assert SECRET not in str(caught.value)


# --- connections ----------------------------------------------------------------------------


def test_targets_of_one_server_share_one_connection_pool(nomad_api: NomadApiStandIn) -> None:
    settings = settings_for(nomad_api)
    scalers = [NomadScaler(NomadTarget(job=f"job{i}", group="web"), settings) for i in range(3)]
    other = NomadScaler(
        NomadTarget(job="job0", group="web"), settings_for(nomad_api, token="t0k3n")
    )

    sessions = {id(s._api.session) for s in scalers}

    assert len(sessions) == 1
    assert id(other._api.session) not in sessions  # other credentials, other pool


def test_many_targets_hold_one_connection_to_nomad_not_one_each(
    nomad_api: NomadApiStandIn,
) -> None:
    settings = settings_for(nomad_api, token="many-targets-token")
    for i in range(40):
        nomad_api.register_job(f"job{i}")
    before = _open_sockets()

    # Kept alive, as the target factory keeps its adapters for the life of the process.
    scalers = [NomadScaler(NomadTarget(job=f"job{i}", group="web"), settings) for i in range(40)]
    for scaler in scalers:
        scaler.status()

    # The stand-in runs in this process: each kept-alive connection shows twice (both ends).
    assert _open_sockets() - before <= 4


def _open_sockets() -> int:
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if _link(fd).startswith("socket:"))


def _link(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


# --- retries --------------------------------------------------------------------------------


def test_server_errors_are_retried_until_success(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job("chat")
    nomad_api.fail_next(2, status=500)

    assert scaler_for(nomad_api).status().count == 3
    assert len(nomad_api.requests) == 2 + 3  # two failures, then job, scale, deployment


def test_read_timeout_is_retried(nomad_api: NomadApiStandIn) -> None:
    # The first answer comes 3 times the attempt's timeout late; the others must come
    # within it, which 0.2 s did not leave a loaded machine room for.
    nomad_api.register_job("chat")
    nomad_api.delay_next(1, 1.5)

    assert scaler_for(nomad_api, timeout=0.5, deadline=5.0).status().count == 3


def test_persistent_server_errors_give_unavailable_within_the_deadline(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat")
    nomad_api.fail_next(1000, status=503, body="No cluster leader")
    started = time.monotonic()

    with pytest.raises(TargetUnavailable, match="No cluster leader"):
        scaler_for(nomad_api, deadline=1.0).scale(4, reason="up", meta=META)

    assert time.monotonic() - started < 1.0 + 2.0  # not the default deadline's 10 s
    assert len(nomad_api.requests) >= 2
    assert nomad_api.group_count("chat", "web") == 3


def test_unreachable_nomad_gives_unavailable_within_the_deadline() -> None:
    settings = NomadSettings(address=f"http://127.0.0.1:{free_port()}", timeout=0.3, deadline=1.0)
    started = time.monotonic()

    with pytest.raises(TargetUnavailable, match="unreachable"):
        NomadScaler(NomadTarget(job="chat", group="web"), settings).status()

    assert time.monotonic() - started < 1.0 + 2.0  # not the default deadline's 10 s


def test_a_scale_request_whose_connection_opens_after_the_lease_deadline_is_not_sent(
    nomad_api: NomadApiStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests bounds the connect and the read by the timeout (cut to the time left), not
    # the host lookup before them: it outlasts the deadline here. Before, the request was
    # then written all the same, a second after the lease had ended.
    nomad_api.register_job("chat")
    host = "nomad.slow-dns.test"
    lookups = slow_lookups(monkeypatch, host, delay=1.5)
    settings = NomadSettings(address=nomad_api.address.replace("127.0.0.1", host))
    scaler = NomadScaler(NomadTarget(job="chat", group="web"), settings)

    with pytest.raises(TargetDeadline, match=r"scale request for .* was not sent") as info:
        scaler.scale(4, reason="up", meta=META, deadline=monotonic() + 0.5)

    assert lookups.count == 1
    assert not info.value.maybe_applied
    assert not nomad_api.requests_to("POST", "/scale")
    assert nomad_api.group_count("chat", "web") == 3


def test_credentials_in_nomad_addr_are_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    address = f"https://user:pass@127.0.0.1:{free_port()}"
    env = {"NOMAD_ADDR": address, "NOMAD_SKIP_VERIFY": "true"}
    settings = NomadSettings.from_env(env)
    scaler = NomadScaler(NomadTarget(job="chat", group="web"), settings)
    short_lived = NomadSettings(address=address, timeout=0.2, deadline=0.5)

    with pytest.raises(TargetUnavailable, match="unreachable") as caught:
        NomadScaler(NomadTarget(job="chat", group="web"), short_lived).status()

    shown = [repr(settings), str(settings), repr(scaler), str(caught.value), caplog.text]
    assert not [text for text in shown if "pass" in text]
    assert f"https://***@127.0.0.1:{address.rsplit(':', 1)[1]}" in str(caught.value)
    assert "address='https://***@127.0.0.1:" in repr(settings)
    assert "https://***@127.0.0.1:" in repr(scaler)
    assert "verification is OFF for Nomad at https://***@127.0.0.1:" in caplog.text
    assert settings.address == address  # still used, with its credentials, to connect


def test_a_malformed_address_with_credentials_is_not_shown_either() -> None:
    settings = NomadSettings(address="user:pass@127.0.0.1:4646", timeout=0.3, deadline=1.0)

    with pytest.raises(TargetError, match="check NOMAD_ADDR") as caught:
        NomadScaler(NomadTarget(job="chat", group="web"), settings).status()

    assert "pass" not in str(caught.value)


def test_nomads_answer_is_scrubbed_of_the_addresss_credentials(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat")
    address = nomad_api.address.replace("http://", "http://user:pass@")
    nomad_api.fail_next(1, status=400, body=f"bad request to {address}/v1/job/chat")

    with pytest.raises(TargetError, match="HTTP 400") as caught:
        NomadScaler(NomadTarget(job="chat", group="web"), settings_for(nomad_api)).status()

    assert "pass" not in str(caught.value)
    assert "http://***@127.0.0.1" in str(caught.value)


def test_client_errors_are_not_retried(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job("chat")
    nomad_api.fail_next(1, status=400, body="scaling action count can't be negative")

    with pytest.raises(TargetError, match=r"\(HTTP 400\): scaling action count can't be negative"):
        scaler_for(nomad_api).scale(4, reason="up", meta=META)

    assert len(nomad_api.requests) == 1


# --- namespace and region -------------------------------------------------------------------


def test_policy_namespace_and_region_win_over_the_environment(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat", namespace="apps", region="europe")
    env = {**nomad_api.env, "NOMAD_NAMESPACE": "other", "NOMAD_REGION": "global"}
    target = NomadTarget(job="chat", group="web", namespace="apps", region="europe")
    scaler = NomadScaler(target, NomadSettings.from_env(env))

    scaler.status()
    scaler.scale(4, reason="up", meta=META)

    assert nomad_api.requests
    assert all(r.query == {"namespace": "apps", "region": "europe"} for r in nomad_api.requests)
    assert nomad_api.group_count("chat", "web", namespace="apps", region="europe") == 4


def test_region_from_the_environment_applies_when_the_policy_has_none(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat", region="asia")
    env = {**nomad_api.env, "NOMAD_REGION": "asia"}

    NomadScaler(NomadTarget(job="chat", group="web"), NomadSettings.from_env(env)).status()

    assert {r.query.get("region") for r in nomad_api.requests} == {"asia"}
    assert {r.query.get("namespace") for r in nomad_api.requests} == {"default"}


def test_unknown_region_fails_at_once_naming_it(nomad_api: NomadApiStandIn) -> None:
    target = NomadTarget(job="chat", group="web", region="mars")

    with pytest.raises(TargetUnavailable, match="no path to region 'mars'"):
        NomadScaler(target, settings_for(nomad_api)).status()

    assert len(nomad_api.requests) == 1


# --- TLS ------------------------------------------------------------------------------------


def test_tls_certificate_is_verified_by_default(nomad_api_tls: NomadApiStandIn) -> None:
    nomad_api_tls.register_job("chat")
    env = {"NOMAD_ADDR": nomad_api_tls.address}  # no NOMAD_CACERT
    started = time.monotonic()

    with pytest.raises(TargetUnavailable, match=r"TLS handshake .* NOMAD_CACERT"):
        NomadScaler(NomadTarget(job="chat", group="web"), NomadSettings.from_env(env)).status()

    assert time.monotonic() - started < 5.0  # not retried till the 10 s deadline: it stays bad
    assert nomad_api_tls.requests == []


def test_tls_works_with_nomad_cacert(nomad_api_tls: NomadApiStandIn) -> None:
    nomad_api_tls.register_job("chat")
    settings = NomadSettings.from_env(nomad_api_tls.env)
    assert settings.ca_cert == nomad_api_tls.ca_cert

    scaler = NomadScaler(NomadTarget(job="chat", group="web"), settings)
    scaler.scale(5, reason="up", meta=META)

    assert scaler.status().count == 5


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_nomad_skip_verify_turns_verification_off_with_a_warning(
    nomad_api_tls: NomadApiStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    nomad_api_tls.register_job("chat")
    env = {"NOMAD_ADDR": nomad_api_tls.address, "NOMAD_SKIP_VERIFY": "true"}

    with caplog.at_level(logging.WARNING, logger="autoscaler.adapters.targets.nomad"):
        scaler = NomadScaler(NomadTarget(job="chat", group="web"), NomadSettings.from_env(env))

    assert scaler.status().count == 3
    assert "verification is OFF" in caplog.text


# --- cooldown from anyone's scaling ---------------------------------------------------------


def test_someone_elses_scale_event_sets_last_scaled_at(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job("chat", groups={"web": 3})
    manual = dt.datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)
    nomad_api.add_scale_event("chat", "web", count=3, previous=2, at=manual)
    later = manual + dt.timedelta(minutes=5)
    nomad_api.add_scale_event("chat", "web", count=None, previous=3, at=later, error=True)
    nomad_api.add_scale_event("chat", "web", count=3, previous=3, at=later)  # no change

    assert scaler_for(nomad_api).status().last_scaled_at == manual


def test_a_manual_nomad_job_scale_is_seen_as_the_last_scaling(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat", groups={"web": 3})
    before = dt.datetime.now(dt.UTC)
    # what `nomad job scale chat web 6` sends
    answer = requests.post(
        f"{nomad_api.address}/v1/job/chat/scale",
        json={"Count": 6, "Target": {"Group": "web"}, "Message": "submitted using the Nomad CLI"},
        timeout=5,
    )
    answer.raise_for_status()

    status = scaler_for(nomad_api).status()

    assert status.count == 6
    assert status.last_scaled_at is not None
    assert before <= status.last_scaled_at <= dt.datetime.now(dt.UTC)


# --- settings -------------------------------------------------------------------------------


def test_settings_from_env_read_the_standard_nomad_variables() -> None:
    settings = NomadSettings.from_env(
        {
            "NOMAD_ADDR": "https://nomad.example:4646",
            "NOMAD_TOKEN": SECRET,
            "NOMAD_NAMESPACE": "apps",
            "NOMAD_REGION": "europe",
            "NOMAD_CACERT": "/etc/nomad/ca.pem",
            "NOMAD_CLIENT_CERT": "/etc/nomad/cli.pem",
            "NOMAD_CLIENT_KEY": "/etc/nomad/cli-key.pem",
        }
    )

    assert settings.address == "https://nomad.example:4646"
    assert settings.token == SECRET
    assert (settings.namespace, settings.region) == ("apps", "europe")
    assert settings.verify() == "/etc/nomad/ca.pem"
    assert settings.cert() == ("/etc/nomad/cli.pem", "/etc/nomad/cli-key.pem")
    assert SECRET not in repr(settings)


def test_settings_verify_tls_unless_told_not_to() -> None:
    assert NomadSettings.from_env({}).verify() is True
    assert NomadSettings.from_env({"NOMAD_SKIP_VERIFY": "1"}).verify() is False
    with pytest.raises(TargetError, match="NOMAD_SKIP_VERIFY"):
        NomadSettings.from_env({"NOMAD_SKIP_VERIFY": "yes please"})


def test_missing_token_is_forbidden_with_a_hint_to_set_one(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job("chat")
    nomad_api.enable_acl({SECRET: {"default": ["read-job", "scale-job"]}})

    with pytest.raises(TargetForbidden, match="no token is set: set NOMAD_TOKEN"):
        scaler_for(nomad_api).status()


def test_a_malformed_address_is_an_error_at_once_not_a_retry() -> None:
    settings = NomadSettings(address="127.0.0.1:4646", timeout=0.3, deadline=5.0)
    started = time.monotonic()

    with pytest.raises(TargetError, match="check NOMAD_ADDR"):
        NomadScaler(NomadTarget(job="chat", group="web"), settings).status()

    assert time.monotonic() - started < 3.0  # not retried till the 5 s deadline


# --- reads per evaluation -------------------------------------------------------------------


def _reads(nomad_api: NomadApiStandIn) -> list[str]:
    """The paths of the GETs received so far, then forgotten."""
    paths = [r.path for r in nomad_api.requests_to("GET")]
    nomad_api.requests.clear()
    return paths


def test_an_unchanged_job_costs_one_read_per_status(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job("chat", groups={"web": 3})
    nomad_api.set_deployment("chat", "successful")
    scaler = scaler_for(nomad_api)
    first = scaler.status()
    assert _reads(nomad_api) == ["/v1/job/chat/scale", "/v1/job/chat", "/v1/job/chat/deployment"]
    for _ in range(3):
        assert scaler.status() == first
        assert _reads(nomad_api) == ["/v1/job/chat/scale"]


def test_a_version_marked_stable_costs_one_read_per_status_too(nomad_api: NomadApiStandIn) -> None:
    """Nomad's scale status carries the job's ModifyIndex (under the name JobModifyIndex),
    which moves when the version is marked stable after its deployment succeeded, or the
    job's status changes; the job's own JobModifyIndex does not. Compared with the latter,
    they never matched again: three reads at every status, and nothing kept."""
    nomad_api.register_job("chat", groups={"web": 3})
    nomad_api.set_deployment("chat", "successful")
    nomad_api.touch_job("chat")  # the version marked stable
    scaler = scaler_for(nomad_api)
    first = scaler.status()
    assert first.ready
    assert _reads(nomad_api) == ["/v1/job/chat/scale", "/v1/job/chat", "/v1/job/chat/deployment"]
    for _ in range(3):
        assert scaler.status() == first
        assert _reads(nomad_api) == ["/v1/job/chat/scale"]


def test_any_change_to_the_job_reads_it_again(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job("chat", groups={"web": 3})
    nomad_api.set_deployment("chat", "successful")
    scaler = scaler_for(nomad_api)
    scaler.status()
    nomad_api.touch_job("chat")
    _reads(nomad_api)
    assert scaler.status().ready
    assert _reads(nomad_api) == ["/v1/job/chat/scale", "/v1/job/chat", "/v1/job/chat/deployment"]
    assert scaler.status().ready
    assert _reads(nomad_api) == ["/v1/job/chat/scale"]


def test_an_unchanged_job_is_answered_from_the_few_fields_kept(
    nomad_api: NomadApiStandIn,
) -> None:
    """Between reads only what `status` needs of the job is kept (not its tasks, meta...),
    and it gives the same count, bounds and readiness as the whole job."""
    nomad_api.register_job("chat", groups={"web": 3, "db": 1}, scaling={"web": (1, 8)})
    nomad_api.set_deployment("chat", "successful")
    scaler = scaler_for(nomad_api)
    first = scaler.status()
    assert (first.count, first.min_size, first.max_size, first.ready) == (3, 1, 8, True)
    _reads(nomad_api)
    assert scaler.status() == first
    assert _reads(nomad_api) == ["/v1/job/chat/scale"]
    kept = scaler._seen
    assert kept is not None and not hasattr(kept, "__dict__")  # a few slots, no job JSON
    kept_values = (kept.count, kept.min_size, kept.max_size, kept.stop, kept.ended)
    assert kept_values == (3, 1, 8, False, True)


def test_a_changed_job_is_read_again_with_its_deployment(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job("chat", groups={"web": 3}, scaling={"web": (1, 8)})
    nomad_api.set_deployment("chat", "successful")
    scaler = scaler_for(nomad_api)
    scaler.status()
    # A new version (a register; a scale is one too) starts a deployment.
    nomad_api.register_job("chat", groups={"web": 4}, scaling={"web": (2, 9)})
    nomad_api.set_deployment("chat", "running")
    _reads(nomad_api)
    status = scaler.status()
    assert _reads(nomad_api) == ["/v1/job/chat/scale", "/v1/job/chat", "/v1/job/chat/deployment"]
    assert (status.count, status.min_size, status.max_size, status.ready) == (4, 2, 9, False)
    # While the deployment runs, it is read at every status, until it ends.
    assert not scaler.status().ready
    assert _reads(nomad_api) == ["/v1/job/chat/scale", "/v1/job/chat/deployment"]
    nomad_api.set_deployment("chat", "successful")
    assert scaler.status().ready
    assert scaler.status().ready
    assert _reads(nomad_api) == [
        "/v1/job/chat/scale",
        "/v1/job/chat/deployment",
        "/v1/job/chat/scale",
    ]


def test_a_job_without_a_deployment_yet_is_asked_again(nomad_api: NomadApiStandIn) -> None:
    # Nomad creates a version's deployment after the register, from its evaluation.
    nomad_api.register_job("chat", groups={"web": 3})
    scaler = scaler_for(nomad_api)
    assert scaler.status().ready
    nomad_api.set_deployment("chat", "running")
    assert not scaler.status().ready


def test_our_own_scale_makes_the_next_status_read_the_job_again(
    nomad_api: NomadApiStandIn,
) -> None:
    nomad_api.register_job("chat", groups={"web": 3})
    nomad_api.deployment_on_scale = "running"
    scaler = scaler_for(nomad_api)
    scaler.status()
    scaler.scale(5, reason="up", meta=META)
    status = scaler.status()
    assert (status.count, status.ready) == (5, False)
    assert status.not_ready_reason is not None and "running" in status.not_ready_reason


def test_a_stopped_job_is_seen_even_when_cached(nomad_api: NomadApiStandIn) -> None:
    nomad_api.register_job("chat", groups={"web": 3})
    nomad_api.set_deployment("chat", "successful")
    scaler = scaler_for(nomad_api)
    assert scaler.status().ready
    nomad_api.register_job("chat", groups={"web": 3}, stopped=True)
    status = scaler.status()
    assert not status.ready
    assert status.not_ready_reason == "job 'chat' is stopped"


def test_a_job_stopped_after_the_status_was_read_is_not_scaled(
    nomad_api: NomadApiStandIn,
) -> None:
    # Nomad's scale request has no stopped-job check: it would start the job again.
    nomad_api.register_job("chat")
    scaler = scaler_for(nomad_api)
    count = scaler.status().count
    nomad_api.register_job("chat", stopped=True)  # `nomad job stop` meanwhile
    nomad_api.requests.clear()
    with pytest.raises(TargetBusy, match="job 'chat' was stopped"):
        scaler.scale(count + 1, reason="up", meta=META, expected=count)
    assert nomad_api.requests_to("POST", "/scale") == []
