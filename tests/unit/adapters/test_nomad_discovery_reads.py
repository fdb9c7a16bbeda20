"""How Nomad discovery reads many jobs: a few at a time, the first failure raised, and the
job list decoded without what it does not read (memory at 10,000 jobs)."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from autoscaler.adapters.discovery import nomad as discovery
from autoscaler.adapters.discovery.nomad import READERS, NomadDiscovery
from autoscaler.adapters.targets.nomad_settings import NomadSettings
from autoscaler.errors import DiscoveryError


def _reader() -> NomadDiscovery:
    return NomadDiscovery(NomadSettings(address="http://127.0.0.1:1"))


def test_every_key_is_read_and_a_key_gone_meanwhile_is_left_out() -> None:
    found = _reader()._read_all(range(50), lambda k: None if k % 7 == 0 else k * 2)
    assert found == {k: k * 2 for k in range(50) if k % 7}


def test_no_more_than_readers_reads_run_at_once() -> None:
    running, most, lock = 0, 0, threading.Lock()

    def read(key: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.002)
        with lock:
            running -= 1
        return key

    assert len(_reader()._read_all(range(100), read)) == 100
    assert 1 < most <= READERS


def test_the_first_failure_in_key_order_is_raised_and_no_read_starts_after_it() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def read(key: int) -> int:
        with lock:
            started.append(key)
        if key in (20, 30):
            time.sleep(0.01 if key == 20 else 0)  # 30 fails first; 20 is already in flight
            raise DiscoveryError(f"job {key} failed")
        time.sleep(0.005)  # 1,000 reads take far longer than reaching the failures
        return key

    with pytest.raises(DiscoveryError, match="job 20 failed"):
        _reader()._read_all(range(1000), read)
    assert len(started) < 1000  # the reads stopped at the failures


def test_nothing_is_read_for_no_keys() -> None:
    assert _reader()._read_all([], lambda k: k) == {}


def _response(body: object) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = json.dumps(body).encode()
    return response


def test_a_job_list_keeps_only_the_fields_discovery_reads() -> None:
    stub = {
        "ID": "web",
        "Namespace": "default",
        "Type": "service",
        "Stop": False,
        "Periodic": False,
        "ParameterizedJob": False,
        "ParentID": "",
        "JobModifyIndex": 12,
        "ModifyIndex": 14,
        "Datacenters": ["dc1"],
        "Status": "running",
        "JobSummary": {"JobID": "web", "Summary": {"api": {"Running": 2}}},
    }
    (kept,) = discovery._json(_response([stub]), "nomad", discovery._keeping(discovery._JOB_STUB))
    assert kept == {k: v for k, v in stub.items() if k in discovery._JOB_STUB}
    assert "JobSummary" not in kept and "Datacenters" not in kept


def test_a_policy_list_keeps_its_target() -> None:
    stub = {
        "ID": "p1",
        "Type": "horizontal",
        "Enabled": True,
        "Target": {"Namespace": "default", "Job": "web", "Group": "api"},
        "CreateIndex": 3,
        "ModifyIndex": 4,
    }
    (kept,) = discovery._json(
        _response([stub]), "nomad", discovery._keeping(discovery._POLICY_STUB)
    )
    assert kept == {k: stub[k] for k in ("ID", "Type", "Target", "ModifyIndex")}


def test_a_list_that_is_not_json_is_a_discovery_error() -> None:
    response = requests.Response()
    response.status_code = 200
    response._content = b"<html>"
    with pytest.raises(DiscoveryError, match="non-JSON"):
        discovery._json(response, "nomad", discovery._keeping(discovery._JOB_STUB))


@pytest.mark.parametrize("body", [b"", b"null", b"[]"])
def test_a_scaling_policy_read_answered_with_no_object_is_a_failed_read(
    monkeypatch: pytest.MonkeyPatch, body: bytes
) -> None:
    # Taken as a policy gone: Nomad's policy for the group was removed.
    reader = _reader()
    response = requests.Response()
    response.status_code = 200
    response._content = body
    monkeypatch.setattr(reader._scaling, "request", lambda *parts, **kwargs: response)
    with pytest.raises(DiscoveryError, match="answered GET /v1/scaling/policy/p1 with"):
        reader._read_policy(("p1", "default"))
