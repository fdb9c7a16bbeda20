"""Reading the credential chain again (`SharedClient.renew`) can take seconds: an SSO or
STS call, the instance metadata service with its retries, a `credential_process`. It ran
with the lock of every shared client held, so every caller that needed a client (a
discovery listing, a new target, another configuration's) waited for it, though its own
call would have succeeded. Here the chain is a real `credential_process` that waits for
the test's word: one renewal reads it, the others go on or wait for that one.
No request is sent: building a session and a client runs the process, nothing more; a
call AWS rejects is answered by the client itself (`reject_every_call`).

A rejected call waited for a reading its client's whole deadline, whatever its caller's
(the leader lease, its own retry budget), and the call that read the chain read it in its
own thread, with no time limit (botocore waits for a `credential_process` without one): a
hung process held that evaluation for ever. The reading runs in a thread of its own now,
and every rejected call waits for it only as long as its time allows."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from autoscaler.adapters.deadline import monotonic
from autoscaler.adapters.targets import aws_client
from autoscaler.adapters.targets.aws_asg import AsgScaler
from autoscaler.core.model import AsgTarget
from autoscaler.errors import TargetForbidden

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient

# Prints the key in `key`, once `go` exists when `slow` does (at most 20 s); counts its runs.
PROCESS = """\
import json, os, sys, time
here = sys.argv[1]
with open(os.path.join(here, "runs"), "a") as runs:
    runs.write("run\\n")
if os.path.exists(os.path.join(here, "slow")):
    for _ in range(200):
        if os.path.exists(os.path.join(here, "go")):
            break
        time.sleep(0.1)
with open(os.path.join(here, "key")) as key:
    print(json.dumps({"Version": 1, "AccessKeyId": key.read().strip(), "SecretAccessKey": "s"}))
"""


class Chain:
    """A `credential_process` whose key is `key` and whose readings can be held."""

    def __init__(self, here: Path) -> None:
        self.here = here

    def key(self, key: str) -> None:
        (self.here / "key").write_text(key)

    def hold(self) -> None:
        (self.here / "slow").touch()

    def release(self) -> None:
        (self.here / "go").touch()

    def runs(self) -> int:
        runs = self.here / "runs"
        return len(runs.read_text().splitlines()) if runs.exists() else 0

    def wait_runs(self, count: int) -> None:
        for _ in range(100):
            if self.runs() >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"the credential process ran {self.runs()} times, not {count}")


def reject_every_call(client: AutoScalingClient) -> None:
    """Have `client`'s calls answered, without being sent, as AWS answers a key it does not
    know (botocore's `before-call` event: a handler's answer stands for the request's)."""

    def reject(**_kwargs: Any) -> Any:  # (http, parsed); the stubs say handlers answer None
        http = SimpleNamespace(status_code=403, headers={}, content=b"", raw=None)
        error = {"Code": "InvalidClientTokenId", "Message": "The security token is invalid."}
        return http, {"Error": error, "ResponseMetadata": {"HTTPStatusCode": 403}}

    client.meta.events.register("before-call.autoscaling", reject)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(3) as pool:
        yield pool


@pytest.fixture
def chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pool: ThreadPoolExecutor
) -> Iterator[Chain]:
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    script = tmp_path / "process.py"
    script.write_text(PROCESS)
    config = tmp_path / "config"
    config.write_text(f"[default]\ncredential_process = {sys.executable} {script} {tmp_path}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    chain = Chain(tmp_path)
    chain.key("AKIDFIRST")
    yield chain
    chain.release()  # a renewal a failed test left waiting ends (before `pool` waits for it)


def key_of(client: AutoScalingClient) -> str:
    """The access key `client` signs with (botocore's private signer: not in the stubs)."""
    access_key: str = client._request_signer._credentials.access_key  # type: ignore[attr-defined]
    return access_key


def test_a_slow_reading_of_the_chain_keeps_no_other_caller_waiting(
    chain: Chain, pool: ThreadPoolExecutor
) -> None:
    shared = aws_client.shared("eu-west-3", 10.0)
    rejected = shared.client
    assert chain.runs() == 1
    chain.key("AKIDSECOND")  # rotated
    chain.hold()
    renewing = pool.submit(lambda: shared.renew(rejected))
    chain.wait_runs(2)  # the chain is being read

    # Another region's client of the configuration (a discovery listing, a new
    # target) is had at once, from what was read before; so is the current client.
    other = pool.submit(lambda: aws_client.shared("us-east-1", 10.0))
    assert key_of(other.result(timeout=2).client) == "AKIDFIRST"
    assert shared.client is rejected
    # Another call rejected meanwhile waits for this renewal rather than read again.
    waiting = pool.submit(lambda: shared.renew(rejected))
    time.sleep(0.3)
    assert not waiting.done() and chain.runs() == 2

    chain.release()
    assert renewing.result(timeout=10) and waiting.result(timeout=10)
    assert chain.runs() == 2  # read once
    assert key_of(shared.client) == "AKIDSECOND"


def test_a_call_waits_for_a_renewal_no_longer_than_its_clients_deadline(
    chain: Chain, pool: ThreadPoolExecutor
) -> None:
    # Its rejection stands, and says the credentials are being read again.
    slow = aws_client.shared("eu-west-3", 10.0)
    quick = aws_client.shared("eu-west-3", 0.5)  # another deadline: another client
    chain.key("AKIDSECOND")
    chain.hold()
    renewing = pool.submit(lambda: slow.renew(slow.client))
    chain.wait_runs(2)
    asked = time.monotonic()
    assert not quick.renew(quick.client)
    assert time.monotonic() - asked < 2
    said = quick.reread()
    assert said is not None and "being read again" in said
    chain.release()
    assert renewing.result(timeout=10)
    assert quick.renew(quick.client)  # built from what was read, not read again
    assert chain.runs() == 2 and key_of(quick.client) == "AKIDSECOND"


def test_an_unchanged_key_read_again_from_the_process_is_not_used(chain: Chain) -> None:
    shared = aws_client.shared("eu-west-3", 10.0)
    rejected = shared.client
    assert not shared.renew(rejected)
    assert shared.client is rejected
    said = shared.reread()
    assert said is not None and "(and they were unchanged)" in said
    assert not shared.renew(rejected)  # within CREDENTIALS_REREAD: not read again
    assert chain.runs() == 2


def test_a_call_waits_for_another_calls_reading_no_longer_than_its_callers_deadline(
    chain: Chain, pool: ThreadPoolExecutor
) -> None:
    # A scale under the leader lease (0.5 s left) is not kept for its client's 10 s.
    scaler = AsgScaler(AsgTarget(asg="web", region="eu-west-3"), deadline=10.0)
    shared = aws_client.shared("eu-west-3", 10.0)
    reject_every_call(shared.client)
    chain.key("AKIDSECOND")
    chain.hold()
    renewing = pool.submit(lambda: shared.renew(shared.client))
    chain.wait_runs(2)
    asked = time.monotonic()
    with pytest.raises(TargetForbidden, match="the credentials are being read again"):
        scaler.scale(3, reason="test", meta={}, expected=2, deadline=monotonic() + 0.5)
    assert time.monotonic() - asked < 2
    chain.release()
    assert renewing.result(timeout=10)
    assert chain.runs() == 2


def test_a_hung_credential_process_holds_the_call_that_reads_it_no_longer_than_its_deadline(
    chain: Chain,
) -> None:
    scaler = AsgScaler(AsgTarget(asg="web", region="eu-west-3"), deadline=10.0)
    shared = aws_client.shared("eu-west-3", 10.0)
    rejected = shared.client
    reject_every_call(rejected)
    chain.key("AKIDSECOND")
    chain.hold()  # the process hangs until released (20 s at most)
    asked = time.monotonic()
    with pytest.raises(TargetForbidden, match="the credentials are being read again"):
        scaler.scale(3, reason="test", meta={}, expected=2, deadline=monotonic() + 0.5)
    assert time.monotonic() - asked < 2
    assert shared.client is rejected
    # The reading goes on without the call (its process may start only after the call
    # gave up, on a busy machine): once it ends, the next rejected call uses it.
    deadline = time.monotonic() + 10.0
    while chain.runs() < 2:
        assert time.monotonic() < deadline, "the credentials were not read again"
        time.sleep(0.05)
    chain.release()
    assert shared.renew(rejected)
    assert chain.runs() == 2 and key_of(shared.client) == "AKIDSECOND"


def test_a_call_that_stopped_waiting_says_the_key_was_being_read_not_that_it_was_refused(
    chain: Chain,
) -> None:
    # The reading ended a moment after the call gave up: its key was never tried, so the
    # message does not say it was read again and refused (the 30 s rule).
    shared = aws_client.shared("eu-west-3", 10.0)
    rejected = shared.client
    reject_every_call(rejected)
    chain.key("AKIDSECOND")
    chain.hold()
    with pytest.raises(ClientError) as raised:
        aws_client.send_renewing(
            shared, rejected.describe_auto_scaling_groups, by=monotonic() + 0.3
        )
    chain.release()
    assert shared.renew(rejected)  # the reading ended (and its key is used)
    said = shared.reread(raised.value)
    assert said is not None and "being read again" in said, said
    assert "at most every" not in said
