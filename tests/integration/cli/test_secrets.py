"""No secret leaves the process, even when a server quotes our request back.

A proxy in front of Nomad that echoes request headers in its error pages once put
`X-Nomad-Token` into the decision's reasons, the log and `/v1/decisions`. Here Nomad, AWS
and Prometheus stand-ins quote every header back, and every text the process shows is
searched for every secret it was given: `plan` (JSON and table), the service's log (JSON
and text), its HTTP answers and its notifications.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.aws import AwsProxy
from tests.support.net import wait_until
from tests.support.nomad_api import NomadApiStandIn
from tests.support.service import FakePrometheus, ServiceProcess, WebhookReceiver

pytestmark = pytest.mark.integration

NOMAD_TOKEN = "nomad-acl-token-5e2d9c1a"
PROMETHEUS_TOKEN = "prom-bearer-token-77ab31"
HEADER_SECRET = "x-api-key-value-0c4e"
HOOK_SECRET = "hook-path-secret-a9f2"
API_TOKEN = "api-token-3b8d6e"
AWS_KEY_ID = "AKIAEXAMPLE0SECRET99"
AWS_SECRET_KEY = "aws-secret-access-key-d41d8cd98f00"
AWS_SESSION_TOKEN = "aws-session-token-FwoGZXIvYXdzE1234"
SECRETS = (
    NOMAD_TOKEN,
    PROMETHEUS_TOKEN,
    HEADER_SECRET,
    HOOK_SECRET,
    API_TOKEN,
    AWS_KEY_ID,
    AWS_SECRET_KEY,
    AWS_SESSION_TOKEN,
)
AWS_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": AWS_SECRET_KEY,
    "AWS_SESSION_TOKEN": AWS_SESSION_TOKEN,
}


def leaked(texts: Iterable[str]) -> list[str]:
    """The secrets (in any usual encoding) found in `texts`."""
    joined = "\n".join(texts)
    return [s for s in SECRETS if s in joined or quote(s, safe="") in joined]


def autoscaler(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "autoscaler", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        check=False,
    )


def nomad_policy(name: str, job: str, checks: str) -> str:
    return (
        f"name: {name}\ntarget: {{type: nomad, job: {job}, group: web}}\n"
        f"min: 1\nmax: 9\ninterval: 1s\ncooldown: {{up: 1h, down: 1h}}\nchecks:\n{checks}"
    )


FIXED = "  - {name: fixed, strategy: fixed, count: 5}\n"
ECHOED_QUERY = (
    "  - name: load\n    query: 'sum(echo_headers)'\n    strategy: per-instance\n    target: 1\n"
)


@pytest.fixture
def nomad(nomad_api: NomadApiStandIn) -> NomadApiStandIn:
    """ACLs on; `chat` is behind a proxy that quotes requests back, `web` and `api` are not."""
    nomad_api.enable_acl({NOMAD_TOKEN: {"*": ["read-job", "scale-job", "list-jobs"]}})
    for job in ("chat", "web", "api"):
        nomad_api.register_job(job, {"web": 3})
    nomad_api.echo_requests_of("chat", status=403)
    return nomad_api


@pytest.fixture
def secret_files(tmp_path: Path) -> Path:
    token = tmp_path / "prometheus-token"
    token.write_text(PROMETHEUS_TOKEN + "\n")
    return token


def test_plan_never_shows_the_nomad_token_a_proxy_quotes_back(
    nomad: NomadApiStandIn, fake_prometheus: FakePrometheus, secret_files: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "chat.yaml").write_text(nomad_policy("chat", "chat", FIXED))
    (folder / "api.yaml").write_text(nomad_policy("api", "api", FIXED + ECHOED_QUERY))
    env = {
        **nomad.env,
        **AWS_CREDENTIALS,
        "NOMAD_TOKEN": NOMAD_TOKEN,
        "AUTOSCALER_PROMETHEUS_URL": fake_prometheus.url,
        "AUTOSCALER_PROMETHEUS_TOKEN_FILE": str(secret_files),
        "AUTOSCALER_PROMETHEUS_HEADERS": f"X-Api-Key: {HEADER_SECRET}",
    }

    as_json = autoscaler("plan", str(folder), "-o", "json", env=env)
    as_table = autoscaler("plan", str(folder), env=env)

    assert as_json.returncode == 3, as_json.stderr
    shown = [as_json.stdout, as_json.stderr, as_table.stdout, as_table.stderr]
    assert leaked(shown) == []
    plans = {p["policy"]: p for p in json.loads(as_json.stdout)}
    assert "x-nomad-token: ***" in plans["chat"]["error"].lower()  # the echo stays readable
    (load,) = [c for c in plans["api"]["checks"] if c["name"] == "load"]
    assert "X-Api-Key: ***" in load["error"]


def test_plan_never_shows_aws_credentials_a_proxy_quotes_back(
    aws_proxy: AwsProxy, make_asg: Callable[..., str], tmp_path: Path
) -> None:
    asg = make_asg()
    aws_proxy.fail_next(
        "DescribeAutoScalingGroups", 400, "ValidationError", "bad request", echo=True, times=9
    )
    (tmp_path / "web.yaml").write_text(
        f"name: web\ntarget: {{type: aws-asg, asg: {asg}}}\nmin: 1\nmax: 9\nchecks:\n{FIXED}"
    )

    result = autoscaler("plan", str(tmp_path / "web.yaml"), "-o", "json", env={
        **aws_proxy.env, **AWS_CREDENTIALS,
    })  # fmt: skip

    assert result.returncode == 3, result.stderr
    assert leaked([result.stdout, result.stderr]) == []
    (plan,) = json.loads(result.stdout)
    assert "X-Amz-Security-Token: ***" in plan["error"]


@pytest.mark.parametrize("log_format", ["json", "text"])
def test_the_service_never_shows_a_secret_in_logs_answers_or_notifications(
    log_format: str,
    nomad: NomadApiStandIn,
    fake_prometheus: FakePrometheus,
    webhook_receiver: WebhookReceiver,
    service_factory: Callable[..., ServiceProcess],
    secret_files: Path,
) -> None:
    service = service_factory(
        prometheus_url=fake_prometheus.url,
        token=API_TOKEN,
        env={
            **nomad.env,
            **AWS_CREDENTIALS,
            "NOMAD_TOKEN": NOMAD_TOKEN,
            "AUTOSCALER_PROMETHEUS_HEADERS": f"X-Api-Key: {HEADER_SECRET}",
        },
        args=[
            f"--log-format={log_format}",
            "--log-level=debug",
            f"--prometheus-token-file={secret_files}",
            f"--notify-url={webhook_receiver.url}/services/T0/B0/{HOOK_SECRET}",
        ],
        policies={
            "chat": nomad_policy("chat", "chat", FIXED),
            "web": nomad_policy("web", "web", FIXED),
            "api": nomad_policy("api", "api", FIXED + ECHOED_QUERY),
        },
    ).start()

    wait_until(
        lambda: (
            {d["policy"] for d in service.decisions()} == {"chat", "web", "api"}
            and bool(webhook_receiver.bodies)
        ),
        timeout=30,
        what="a decision of every policy and a notification",
    )
    answers = [
        service.get("/v1/decisions", limit=1000).text,
        service.get("/v1/policies").text,
        service.get("/v1/policies/chat").text,
        service.post("/v1/policies/chat/evaluate", dry_run="true").text,
        service.post("/v1/policies/chat/evaluate").text,
        service.get("/readyz").text,
    ]
    assert service.stop() == 0

    assert leaked(answers) == []
    assert leaked([service.log()]) == []
    assert leaked(json.dumps(body) for body in webhook_receiver.bodies) == []
    assert "x-nomad-token: ***" in answers[0].lower()  # the echo is shown, masked
    assert "X-Api-Key: ***" in answers[0]


# --- configuration errors given a secret-bearing value ---------------------------------------

SECRET = "c0nfig-secret-7f3a9e"
TOKEN_WITH_BREAK = f"{SECRET}\nsecond-line"


@pytest.mark.parametrize(
    ("args", "env", "files", "message"),
    [
        pytest.param(
            ["--prometheus-url", f"ftp://user:{SECRET}@prometheus:9090"], {}, {},
            "url must be http(s)", id="url-scheme",
        ),
        pytest.param(
            ["--prometheus-url", f"https//user:{SECRET}@prometheus:9090"], {}, {},
            "url must be http(s)", id="url-malformed-credentials",
        ),
        pytest.param(
            ["--prometheus-url", f"prometheus:9090/?token={SECRET}"], {}, {},
            "url must be http(s)", id="url-token-in-query",
        ),
        pytest.param(
            ["--prometheus-header", f"Authorization Bearer {SECRET}"], {}, {},
            "--prometheus-header number 1", id="header-flag",
        ),
        pytest.param(
            [], {"AUTOSCALER_PROMETHEUS_HEADERS": f"X-Scope-OrgID: a\nX-Api-Key={SECRET}"}, {},
            "--prometheus-header number 2", id="header-env",
        ),
        pytest.param(
            ["--prometheus-username", "alice"], {"AUTOSCALER_PROMETHEUS_TOKEN": SECRET}, {},
            "either bearer_token or username", id="token-and-user",
        ),
        pytest.param(
            [], {"AUTOSCALER_PROMETHEUS_PASSWORD": SECRET}, {},
            "password is set without username", id="password-alone",
        ),
        pytest.param(
            ["--prometheus-token-file", "{token}"], {}, {"token": TOKEN_WITH_BREAK},
            "Prometheus token file", id="token-file-two-lines",
        ),
        pytest.param(
            [], {"NOMAD_SKIP_VERIFY": SECRET, "NOMAD_TOKEN": SECRET}, {},
            "NOMAD_SKIP_VERIFY is not a boolean", id="nomad-skip-verify",
        ),
        pytest.param(
            [], {"NOMAD_TOKEN": TOKEN_WITH_BREAK}, {},
            "NOMAD_TOKEN contains a line break", id="nomad-token-two-lines",
        ),
    ],
)  # fmt: skip
def test_a_configuration_error_never_prints_the_secret_it_was_given(
    args: list[str],
    env: dict[str, str],
    files: dict[str, str],
    message: str,
    tmp_path: Path,
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    args = [a.format(**{n: tmp_path / n for n in files}) for a in args]
    policy = tmp_path / "chat.yaml"
    policy.write_text(nomad_policy("chat", "chat", FIXED))

    for command in (["plan", str(policy)], ["run", str(policy), "--once", "--state", "s.db"]):
        result = autoscaler(*command, *args, env=env)

        assert result.returncode == 4, result.stdout + result.stderr
        assert message in result.stderr
        shown = result.stdout + result.stderr
        assert SECRET not in shown
        assert quote(SECRET, safe="") not in shown


@pytest.mark.parametrize(
    "address",
    [
        pytest.param(f"https//user:{SECRET}@127.0.0.1:9", id="no-scheme-colon"),
        pytest.param(f"user:{SECRET}@127.0.0.1:9", id="no-scheme"),
        pytest.param(f"http://user:{SECRET}@127.0.0.1:9", id="unreachable"),
    ],
)
def test_a_bad_nomad_address_holding_credentials_is_reported_without_them(
    address: str, tmp_path: Path
) -> None:
    policy = tmp_path / "chat.yaml"
    policy.write_text(nomad_policy("chat", "chat", FIXED))

    # A short Nomad timeout: the unreachable address is retried until 2x it, not 10 s.
    env = {"NOMAD_ADDR": address, "AUTOSCALER_NOMAD_TIMEOUT": "0.5"}
    result = autoscaler("plan", str(policy), "-o", "json", env=env)

    assert result.returncode == 3, result.stderr
    assert SECRET not in result.stdout + result.stderr
    (plan,) = json.loads(result.stdout)
    assert "***@127.0.0.1:9" in plan["error"]
