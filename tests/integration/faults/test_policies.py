"""Policy files that conflict or are broken, under the running `autoscaler run`.

A reload that was refused must not leave two policies on one target (observed: both ran,
flapping 8, 5, 8, 5) nor make a policy vanish (a rename onto a name in use); and among
many files one bad one must not stop the others, while being named at its FILE:LINE.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from autoscaler.adapters.state import SqliteStateStore
from autoscaler.core.model import Action
from tests.integration.faults.harness import Watched, asg_count, recorded
from tests.support.aws import MotoServer
from tests.support.net import wait_until
from tests.support.nomad_api import NomadApiStandIn
from tests.support.service import FakePrometheus, ServiceProcess, policy_yaml

pytestmark = pytest.mark.integration


def test_a_rejected_edit_keeps_its_policy_and_never_shares_a_target(
    service_factory: Callable[..., ServiceProcess],
    fake_prometheus: FakePrometheus,
    moto_server: MotoServer,
    make_asg: Callable[..., str],
) -> None:
    asg_h, asg_o = make_asg(), make_asg()
    service = service_factory(
        prometheus_url=fake_prometheus.url,
        env=moto_server.env,
        policies={
            "h": policy_yaml("h", asg=asg_h, count=8),
            "o": policy_yaml("o", asg=asg_o, count=5),
        },
    ).start()
    wait_until(
        lambda: (
            (moto_server.desired_capacity(asg_h), moto_server.desired_capacity(asg_o)) == (8, 5)
        ),
        timeout=15,
        what="both policies to scale their own ASG",
    )

    # h moves onto o's ASG: rejected, reported at h.yaml, and h keeps running on its own.
    service.write_policy("h", policy_yaml("h", asg=asg_o, count=8))
    wait_until(lambda: bool(service.policy("h")["load_errors"]), timeout=30, what="h's error")
    (error,) = service.policy("h")["load_errors"]
    assert error["file"].endswith("h.yaml")
    assert error["field"] == "target"
    assert "already scaled by policy 'o'" in error["message"]
    assert service.policy("h")["target"] == f"aws-asg:{asg_h}"
    assert service.policy("o")["load_errors"] == []
    _assert_each_keeps_its_own_asg(service, moto_server, {"h": (asg_h, 8), "o": (asg_o, 5)})

    # h renamed to o: rejected too; h keeps its last good version, o stays o.yaml's.
    service.write_policy("h", policy_yaml("o", asg=asg_h, count=8))
    wait_until(
        lambda: "duplicate policy name 'o'" in str(service.policy("h")["load_errors"]),
        timeout=30,
        what="the rename to be rejected",
    )
    assert service.policy("o")["source"].endswith("o.yaml")
    assert [p["name"] for p in service.get("/v1/policies").json()["policies"]] == ["h", "o"]
    _assert_each_keeps_its_own_asg(service, moto_server, {"h": (asg_h, 8), "o": (asg_o, 5)})
    for name, asg in (("h", asg_h), ("o", asg_o)):
        recorded(Watched(service, name, asg_count(moto_server, asg), 2))
    errors = [r["message"] for r in service.log_records() if r["level"] == "error"]
    assert any("h.yaml" in m and "already scaled by policy 'o'" in m for m in errors), errors
    assert any("h.yaml" in m and "duplicate policy name 'o'" in m for m in errors), errors
    assert service.stop() == 0


def _assert_each_keeps_its_own_asg(
    service: ServiceProcess, moto_server: MotoServer, asgs: dict[str, tuple[str, int]]
) -> None:
    """Every policy evaluates a few more times, each only on its own ASG (name -> (ASG,
    count)), and no ASG's count moves."""
    seen = {name: len(service.decisions(name, limit=1000)) for name in asgs}
    wait_until(
        lambda: all(len(service.decisions(n, limit=1000)) >= seen[n] + 3 for n in asgs),
        timeout=15,
        what="three more evaluations of every policy",
    )
    for name, (asg, count) in asgs.items():
        targets = {d["target"] for d in service.decisions(name, limit=1000)}
        assert targets == {f"aws-asg:{asg}"}, (name, targets)
        assert moto_server.desired_capacity(asg) == count, name


# --- 1,000 policies, one of them bad ---------------------------------------------------------

POLICIES, BAD = 1000, 500
FIXED = "checks:\n  - {name: fixed, strategy: fixed, count: 3}\n"


def nomad_policy(i: int, max_line: str = "max: 9") -> str:
    """Policy `p<i>` on job `job<i>`: every hour, a fixed 3 (its jobs start at 2)."""
    return (
        f"name: p{i}\ntarget: {{type: nomad, job: job{i}, group: web}}\n"
        f"min: 1\n{max_line}\ninterval: 1h\n{FIXED}"
    )


@pytest.mark.timeout(300)
def test_a_thousand_policies_with_one_bad_run_the_others_and_name_its_file_and_line(
    service_factory: Callable[..., ServiceProcess],
    nomad_api: NomadApiStandIn,
    fake_prometheus: FakePrometheus,
) -> None:
    policies = {}
    for i in range(POLICIES):
        nomad_api.register_job(f"job{i}", {"web": 2})
        policies[f"p{i}"] = nomad_policy(i, "max: nope" if i == BAD else "max: 9")
    service = service_factory(
        prometheus_url=fake_prometheus.url,
        env=nomad_api.env,
        policies=policies,
        args=["--workers=8"],
    ).start()
    bad_file = service.policies / f"p{BAD}.yaml"

    def counts() -> Counter[int]:
        return Counter(nomad_api.group_count(f"job{i}", "web") for i in range(POLICIES))

    wait_until(lambda: counts()[3] == POLICIES - 1, timeout=240, what="the 999 to scale 2 -> 3")
    # The bad one, at its FILE:LINE: FIELD, wherever an operator looks; its job untouched.
    listed = service.get("/v1/policies").json()
    assert len(listed["policies"]) == POLICIES - 1
    (error,) = listed["load_errors"]
    assert (Path(error["file"]), error["line"], error["field"]) == (bad_file, 4, "max")
    messages = [r["message"] for r in service.log_records() if r["level"] == "error"]
    assert any(m.startswith(f"invalid policy: {bad_file}:4: max:") for m in messages), messages
    assert service.get(f"/v1/policies/p{BAD}").status_code == 404
    assert service.get("/readyz").status_code == 200
    assert counts() == Counter({3: POLICIES - 1, 2: 1})  # nothing scaled in, nothing else
    store = SqliteStateStore(service.state, read_only=True)
    scaled = [d for d in store.history(limit=10_000) if d.action is Action.UP]
    store.close()
    assert sorted(d.policy for d in scaled) == sorted(f"p{i}" for i in range(POLICIES) if i != BAD)
    assert {(d.current, d.desired) for d in scaled} == {(2, 3)}

    # The loop goes on: fixed, the file is picked up and its policy runs too.
    service.write_policy(f"p{BAD}", nomad_policy(BAD))
    wait_until(
        lambda: nomad_api.group_count(f"job{BAD}", "web") == 3, timeout=30, what="the fixed one"
    )
    assert service.get("/v1/policies").json()["load_errors"] == []
    watched = Watched(service, f"p{BAD}", lambda: nomad_api.group_count(f"job{BAD}", "web"), 2)
    recorded(watched)
    assert service.stop() == 0
