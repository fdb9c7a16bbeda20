"""The check of the namespaces a list of every namespace leaves out (`_audit`) against a
Nomad slow to answer there: it never holds the watch of the job list for long, and what it
finds late is still told."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import pytest

from autoscaler.adapters.discovery.nomad import NomadDiscovery
from autoscaler.adapters.discovery.nomad_audit import PROBERS
from autoscaler.adapters.targets.nomad_settings import NomadSettings
from autoscaler.policy.loader import load_paths
from autoscaler.policy.templates import Template
from autoscaler.service.discovery import Discovery, DiscoveryConfig
from tests.support.net import wait_until
from tests.support.nomad_api import NomadApiStandIn

pytestmark = pytest.mark.integration

OPTED = {"autoscaler.enabled": "true"}
TEMPLATE = """\
name: "web-{job}-{group}"
for_each:
  nomad: {meta: {autoscaler.enabled: "true"}, namespace: "*"}
target: {type: nomad, job: "{job}", group: "{group}"}
min: 1
max: 20
checks:
  - name: rps
    query: 'sum(rate(http_requests_total[2m]))'
    strategy: per-instance
    target: 10
"""
SLOW = 5.0  # seconds each namespace that showed no job answers late (a bound, with room)


def _no_aws(_region: str | None) -> NoReturn:
    pytest.fail("no AWS here")


def _discovered(discovery: Discovery, templates: Sequence[Template]) -> set[str]:
    loads, _problems = discovery(templates)
    return {located.policy.name for load in loads for located in load.policies}


def _reader(nomad_api: NomadApiStandIn, **settings: Any) -> NomadDiscovery:
    return NomadDiscovery(NomadSettings(address=nomad_api.address, **settings))


def _watching(nomad_api: NomadApiStandIn, folder: Path) -> tuple[Discovery, list[Template]]:
    """The service's discovery watching `nomad_api`, and the template it expands."""
    (folder / "web.yaml").write_text(TEMPLATE)
    discovery = Discovery(
        DiscoveryConfig(wait=10.0, min_gap=0.05),
        nomad=lambda: _reader(nomad_api),
        aws=_no_aws,
    )
    return discovery, list(load_paths([folder]).templates)


def test_a_slow_namespace_check_does_not_hold_the_watch_of_the_job_list(
    nomad_api: NomadApiStandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The check asked each namespace that showed no job, one after the other, inline in
    # the watcher: with three namespaces answering 2 s late, a job opted in meanwhile was
    # discovered 6 s late (each probe may wait for its timeout and retries: minutes).
    nomad_api.register_job("shop", {"web": 1}, meta=OPTED)
    for i in range(3):
        nomad_api.add_namespace(f"quiet-{i}")
    discovery, templates = _watching(nomad_api, tmp_path)
    try:
        wait_until(
            lambda: _discovered(discovery, templates) == {"web-shop-web"},
            timeout=30,
            what="the first listing",
        )
        # The check is due again, and Nomad is now slow to answer in the quiet namespaces.
        monkeypatch.setattr("autoscaler.adapters.discovery.nomad.AUDIT_EVERY", 0.0)
        for i in range(3):
            nomad_api.slow_namespace(f"quiet-{i}", SLOW)
        registered = time.monotonic()
        nomad_api.register_job("cart", {"web": 1}, meta=OPTED)
        wait_until(
            lambda: _discovered(discovery, templates) == {"web-shop-web", "web-cart-web"},
            timeout=15,
            what="the job opted in meanwhile",
        )
        late = time.monotonic() - registered
    finally:
        discovery.close()
    assert late < SLOW, f"discovered {late:.1f} s after it was registered"


def test_what_a_check_finds_after_the_listing_stopped_waiting_comes_with_a_later_listing(
    nomad_api: NomadApiStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="autoscaler.adapters.discovery")
    nomad_api.register_job("shop", {"web": 1}, meta=OPTED)
    nomad_api.register_job("books", {"web": 1}, namespace="team-b", meta=OPTED)
    nomad_api.enable_acl({"reader": {"default": ["list-jobs", "read-job"], "team-b": ["read-job"]}})
    nomad_api.slow_namespace("team-b", SLOW)
    # A probe's own time limit well past SLOW: at the default (5 s, SLOW itself) the probe
    # raced the late answer and, timed out, found nothing (a failed fresh CI).
    discovery = _reader(nomad_api, token="reader", timeout=3 * SLOW, deadline=6 * SLOW)
    started = time.monotonic()
    listing = discovery.groups()
    assert time.monotonic() - started < SLOW
    assert ([g.job for g in listing.items], listing.unlisted) == (["shop"], ())
    told = [r.getMessage() for r in caplog.records if "not checked yet" in r.getMessage()]
    assert len(told) == 1, told
    assert "1 namespace" in told[0], told
    # The check went on beside the watch: the next listing after it ended names team-b.
    wait_until(
        lambda: discovery.groups(index=listing.index, wait=0.05).unlisted == ("team-b",),
        timeout=4 * SLOW,
        what="team-b named once checked",
    )


def _probes(nomad_api: NomadApiStandIn, prefix: str) -> list[str]:
    """The namespaces named `prefix`... that the check asked (`prefix=" "`)."""
    return [
        r.query["namespace"]
        for r in nomad_api.requests_to("GET", "/v1/jobs")
        if r.query.get("prefix") == " " and r.query.get("namespace", "").startswith(prefix)
    ]


def _audit_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("nomad audit")]


def test_closing_discovery_stops_the_check_under_way_at_the_probes_in_flight(
    nomad_api: NomadApiStandIn, tmp_path: Path
) -> None:
    # The check went on after the service stopped, asking every namespace (each up to its
    # timeout, and retries), and the process did not exit until it ended.
    nomad_api.register_job("shop", {"web": 1}, meta=OPTED)
    for i in range(3 * PROBERS):
        nomad_api.add_namespace(f"quiet-{i:02}")
        nomad_api.slow_namespace(f"quiet-{i:02}", 1.5 * SLOW)
    discovery, templates = _watching(nomad_api, tmp_path)
    try:
        wait_until(
            lambda: _discovered(discovery, templates) == {"web-shop-web"},
            timeout=30,
            what="the first listing (after waiting for the check 1 s)",
        )
    finally:
        discovery.close()
    assert _audit_threads(), "the check ended before the test could close discovery"
    # Those in flight end at their own time limit (5 s, and a retry within the 10 s
    # deadline): not a bound to hold them to; the count below says none was added.
    wait_until(lambda: not _audit_threads(), timeout=30, what="the check to end")
    assert len(_probes(nomad_api, "quiet-")) == PROBERS  # those in flight at close()


def test_discovery_keeps_every_connection_it_opens_to_nomad_for_reuse(
    nomad_api: NomadApiStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    # Each list's readers (8) beside its check's probes (8) outnumbered the shared pool (16):
    # urllib3 closed the connections coming back ("Connection pool is full, discarding
    # connection", a WARNING each) and opened new ones at the next listing.
    caplog.set_level("WARNING", logger="urllib3")
    for i in range(5 * PROBERS):
        nomad_api.register_job(f"job-{i:02}", {"web": 1}, meta=OPTED)
    for i in range(2 * PROBERS):
        nomad_api.add_namespace(f"quiet-{i:02}")
        nomad_api.slow_namespace(f"quiet-{i:02}", 0.5 * SLOW)
    discovery = _reader(nomad_api)
    policies = threading.Thread(target=discovery.scaling_policies)
    policies.start()
    assert len(discovery.groups().items) == 5 * PROBERS
    policies.join()
    wait_until(lambda: not _audit_threads(), timeout=30, what="the checks to end")
    full = [r.getMessage() for r in caplog.records if "pool is full" in r.getMessage()]
    assert not full, full
