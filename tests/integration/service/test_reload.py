"""Hot reload: file changes, SIGHUP and `POST /v1/reload`; a broken file keeps its last good
version running, with its errors in the log, the API and a metric."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from tests.support.aws import MotoServer
from tests.support.net import wait_until
from tests.support.prometheus import Metrics
from tests.support.service import ServiceProcess, policy_yaml

pytestmark = pytest.mark.integration


def test_a_broken_file_keeps_its_last_good_version_until_fixed(
    service_factory: Callable[..., ServiceProcess],
    metrics: Metrics,
    moto_server: MotoServer,
    make_asg: Callable[..., str],
) -> None:
    asg = make_asg()
    query = f"sum({metrics.push('load', 3)})"
    service = service_factory(
        prometheus_url=metrics.server.url,
        env=moto_server.env,
        policies={"web": policy_yaml("web", asg=asg, query=query)},
    ).start()
    wait_until(lambda: moto_server.desired_capacity(asg) == 3, timeout=15, what="scale to 3")

    # A valid change is picked up by polling: the new maximum caps the count.
    metrics.push("load", 8)
    service.write_policy(
        "web", policy_yaml("web", asg=asg, query=query).replace("max: 10", "max: 5")
    )
    wait_until(lambda: service.policy("web")["max"] == 5, timeout=30, what="the new max")
    wait_until(lambda: moto_server.desired_capacity(asg) == 5, timeout=30, what="scale to 5")

    # A broken change: the last good version keeps running and the errors show everywhere.
    service.write_policy("web", "name: web\nmin: 1\nmax: nope\n")
    wait_until(lambda: bool(service.policy("web")["load_errors"]), timeout=30, what="load errors")
    web = service.policy("web")
    assert web["max"] == 5
    assert all(e["file"].endswith("web.yaml") for e in web["load_errors"])
    assert service.metric("autoscaler_policy_load_errors")
    assert service.metric("autoscaler_reloads_total", result="failure")
    assert service.get("/readyz").status_code == 200
    seen = len(service.decisions("web", limit=1000))
    wait_until(
        lambda: len(service.decisions("web", limit=1000)) >= seen + 2,
        timeout=30,
        what="the last good version to keep evaluating",
    )
    errors = [r for r in service.log_records() if r["level"] == "error"]
    assert any("web.yaml" in r["message"] and "last good version" in r["message"] for r in errors)

    # Fixing the file clears the errors.
    service.write_policy(
        "web", policy_yaml("web", asg=asg, query=query).replace("max: 10", "max: 6")
    )
    wait_until(lambda: service.policy("web")["max"] == 6, timeout=30, what="the fixed file")
    assert service.policy("web")["load_errors"] == []
    assert service.metric("autoscaler_policy_load_errors") == 0
    assert service.stop() == 0


def test_sighup_and_post_reload_without_polling(
    service_factory: Callable[..., ServiceProcess],
    metrics: Metrics,
    moto_server: MotoServer,
    make_asg: Callable[..., str],
) -> None:
    first, second = make_asg(), make_asg()
    query = f"sum({metrics.push('load', 3)})"
    service = service_factory(
        prometheus_url=metrics.server.url,
        env=moto_server.env,
        token="reload-token",
        args=["--reload-interval=0"],
        policies={"first": policy_yaml("first", asg=first, query=query)},
    ).start()
    wait_until(lambda: bool(service.decisions("first")), timeout=15, what="a first decision")

    path = service.write_policy("second", policy_yaml("second", asg=second, query=query))
    service.signal(signal.SIGHUP)
    wait_until(lambda: moto_server.desired_capacity(second) == 3, timeout=30, what="SIGHUP")

    path.unlink()
    result = service.post("/v1/reload").json()
    assert result["removed"] == ["second"]
    assert [p["name"] for p in service.get("/v1/policies").json()["policies"]] == ["first"]
    assert service.get("/v1/policies/second").status_code == 404
    assert service.metric("autoscaler_current_capacity", policy="second") is None
    assert service.stop() == 0


def test_a_policy_with_a_warning_runs_its_warning_listed_and_logged_once_across_reloads(
    service_factory: Callable[..., ServiceProcess],
    metrics: Metrics,
    moto_server: MotoServer,
    make_asg: Callable[..., str],
) -> None:
    """A `fallback` block beside `on_missing_data: hold` (as in POLICY_SPEC's example) is
    valid: the policy runs, and its warning is logged when the file is read, not again at
    each reload, and listed in `load_warnings` (`load_errors` stays empty)."""
    first, second = make_asg(), make_asg()
    extra = "on_missing_data: hold\nfallback: {after: 3, count: 4}\n"
    service = service_factory(
        prometheus_url=metrics.server.url,
        env=moto_server.env,
        token="reload-token",
        policies={"web": policy_yaml("web", asg=first, count=3, extra=extra)},
    ).start()
    wait_until(lambda: moto_server.desired_capacity(first) == 3, timeout=15, what="scale to 3")

    assert service.post("/v1/reload").json()["load_warnings"] == [
        {
            "file": str(service.policies / "web.yaml"),
            "line": 9,
            "field": "fallback",
            "message": "ignored while on_missing_data is hold: the policy holds without data; "
            "write `on_missing_data: fallback` to use it, or remove it",
        }
    ]
    service.write_policy("api", policy_yaml("api", asg=second, count=4))  # a polled reload
    wait_until(lambda: moto_server.desired_capacity(second) == 4, timeout=15, what="api")
    listing = service.get("/v1/policies").json()
    assert listing["load_errors"] == []
    assert [(w["line"], w["field"]) for w in listing["load_warnings"]] == [(9, "fallback")]
    shown = {name: service.get(f"/v1/policies/{name}").json() for name in ("web", "api")}
    assert [w["field"] for w in shown["web"]["load_warnings"]] == ["fallback"]
    assert shown["api"]["load_warnings"] == []  # another file's warning is not its own
    said = [r for r in service.log_records() if "fallback: warning:" in r["message"]]
    assert [r["level"] for r in said] == ["warning"], said
    assert service.stop() == 0
