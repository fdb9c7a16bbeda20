"""pytest plugin: the service as a real subprocess, plus the small HTTP stand-ins its tests use.

`ServiceProcess` runs `python -m autoscaler run` with its own policy folder, state file and
port, talks to its HTTP API, and stops it with a signal. `FakePrometheus` answers instant
queries itself, slowly for the queries a test marks slow, so tests can hold an evaluation
in flight. `WebhookReceiver` records the notifications the service posts.

Fixtures: `service_factory`, `fake_prometheus`, `webhook_receiver`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from tests.support.net import free_port, wait_until

_DEFAULT = object()


class ServiceProcess:
    """One `autoscaler run` subprocess; its log (JSON lines) is `workdir/service.log`.

    `policies` (name -> YAML text) are written to its policy folder before it starts.
    With `log_through_pipe`, the service writes its log to a pipe and the test process
    copies it into the file: a limit on the size of the files the service may write
    (RLIMIT_FSIZE, a stand-in for a full disk) then leaves its log alone.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        prometheus_url: str,
        env: Mapping[str, str] | None = None,
        token: str | None = None,
        state: Path | str | None = None,
        args: Sequence[str] = (),
        policies: Mapping[str, str] | None = None,
        log_through_pipe: bool = False,
    ) -> None:
        self.workdir = workdir
        self.log_through_pipe = log_through_pipe
        self._log_copier: threading.Thread | None = None
        self.policies = workdir / "policies"
        self.policies.mkdir(parents=True, exist_ok=True)
        for name, text in (policies or {}).items():
            self.write_policy(name, text)
        # A SQLite file (`state`), or a PostgreSQL DSN passed as it is (`state_arg`).
        self.state = state if isinstance(state, Path) else workdir / "state.db"
        self.state_arg = state if isinstance(state, str) else str(self.state)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.prometheus_url = prometheus_url
        self.token = token
        self.token_file: Path | None = None
        if token is not None:
            self.token_file = workdir / "api-token"
            self.token_file.write_text(token + "\n")
        self.env = {**os.environ, **(env or {})}
        self.args = list(args)
        self.log_path = workdir / "service.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = requests.Session()
        self.http.trust_env = False  # 127.0.0.1 never goes through a proxy

    def write_policy(self, name: str, text: str) -> Path:
        """Write `policies/<name>.yaml` atomically (a reload never sees half a file)."""
        path = self.policies / f"{name}.yaml"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        return path

    def command(self) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "autoscaler",
            "run",
            str(self.policies),
            f"--listen=127.0.0.1:{self.port}",
            f"--state={self.state_arg}",
            f"--prometheus-url={self.prometheus_url}",
            "--query-timeout=1",
            "--reload-interval=0.2",
            "--log-format=json",
        ]
        if self.token_file is not None:
            command.append(f"--api-token-file={self.token_file}")
        return command + self.args

    def start(self, *, wait: bool = True) -> ServiceProcess:
        if self.log_through_pipe:
            self.proc = subprocess.Popen(
                self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env
            )
            self._log_copier = threading.Thread(
                target=_copy_lines, args=(self.proc.stdout, self.log_path), daemon=True
            )
            self._log_copier.start()
        else:
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    self.command(), stdout=log, stderr=subprocess.STDOUT, env=self.env
                )
        if wait:
            proc = self.proc
            wait_until(
                lambda: proc.poll() is not None or self._healthy(),
                timeout=60,  # 20 s ran out in a fresh CI on a machine loaded three times over
                what="the service's /healthz",
            )
            if proc.poll() is not None:
                raise RuntimeError(f"service exited with {proc.returncode}:\n{self.log()}")
        return self

    def wait_exit(self, timeout: float = 60) -> int:
        assert self.proc is not None
        code = self.proc.wait(timeout)
        self._log_copied()
        return code

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM, then the exit code (killed and failed if it takes over `timeout`)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"service did not stop within {timeout}s:\n{self.log()}") from None
        self._log_copied()
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.http.close()

    def _log_copied(self) -> None:
        """Once the process has exited, wait for the copy of its log through the pipe to
        end: its last lines may still be in the pipe when `wait` returns, and a test that
        reads the log after the exit would miss them (a busy machine schedules the copier
        late)."""
        if self._log_copier is not None:
            self._log_copier.join(10)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines (anything else, e.g. a crash trace, is skipped)."""
        records = []
        for line in self.log().splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                continue
        return records

    # --- HTTP ------------------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.http.get(self.url + path, params=params or None, timeout=30)

    def post(
        self, path: str, *, token: Any = _DEFAULT, json_body: Any = None, **params: Any
    ) -> requests.Response:
        """POST with the service's token unless `token=` says otherwise (None: no header)."""
        token = self.token if token is _DEFAULT else token
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.http.post(
            self.url + path, headers=headers, json=json_body, params=params or None, timeout=60
        )

    def policy(self, name: str) -> dict[str, Any]:
        response = self.get(f"/v1/policies/{name}")
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found

    def decisions(self, policy: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if policy is not None:
            params["policy"] = policy
        response = self.get("/v1/decisions", **params)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()["decisions"]
        return found

    def metric(self, name: str, **labels: str) -> float | None:
        """The value of one sample on `/metrics`, or None when it is not there."""
        wanted = {k: str(v) for k, v in labels.items()}
        for line in self.get("/metrics").text.splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            series, _, value = line.rpartition(" ")
            metric, _, rest = series.partition("{")
            if metric != name:
                continue
            pairs = (p.partition("=") for p in rest.rstrip("}").split(",") if p)
            found = {k: v.strip('"') for k, _, v in pairs}
            if all(found.get(k) == v for k, v in wanted.items()):
                return float(value)
        return None

    def _healthy(self) -> bool:
        try:
            return self.get("/healthz").status_code == 200
        except requests.RequestException:
            return False


def _copy_lines(pipe: Any, path: Path) -> None:
    """Append each line read from `pipe` to `path` until the pipe closes."""
    with path.open("ab") as log:
        for line in iter(pipe.readline, b""):
            log.write(line)
            log.flush()
    pipe.close()


def policy_yaml(
    name: str,
    *,
    asg: str,
    query: str | None = None,
    strategy: str = "pass-through",
    interval: str = "1s",
    extra: str = "",
    count: int | None = None,
    cooldown: str = "0s",
) -> str:
    """A small ASG policy: one check (pass-through of `query`, or a fixed `count`)."""
    if count is not None:
        check = f"  - {{name: fixed, strategy: fixed, count: {count}}}\n"
    else:
        check = f"  - name: load\n    query: '{query}'\n    strategy: {strategy}\n"
    return (
        f"name: {name}\n"
        f"target: {{type: aws-asg, asg: {asg}}}\n"
        "min: 1\nmax: 10\n"
        f"interval: {interval}\n"
        f"cooldown: {{up: {cooldown}, down: {cooldown}}}\n"
        "stabilization: {up: 0s, down: 0s}\n"
        f"{extra}"
        "checks:\n" + check
    )


def create_asg(endpoint: str, name: str | None = None, desired: int = 2) -> str:
    """An ASG in moto at `endpoint` (min 1, max 10); its name. For module-scoped fixtures."""
    name = name or f"asg-{uuid.uuid4().hex[:10]}"
    ec2 = boto3.client("ec2", endpoint_url=endpoint)
    ec2.create_launch_template(
        LaunchTemplateName=f"lt-{name}",
        LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
    )
    subnets = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])
    boto3.client("autoscaling", endpoint_url=endpoint).create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateName": f"lt-{name}", "Version": "$Latest"},
        MinSize=1,
        MaxSize=10,
        DesiredCapacity=desired,
        VPCZoneIdentifier=",".join(s["SubnetId"] for s in subnets["Subnets"]),
    )
    return name


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """`service_factory(prometheus_url=..., env=..., token=..., state=..., args=...,
    policies=...)`.

    The process is not started (call `.start()`); whatever still runs at teardown is killed.
    """
    services: list[ServiceProcess] = []

    def factory(**kwargs: Any) -> ServiceProcess:
        service = ServiceProcess(tmp_path / f"service-{len(services)}", **kwargs)
        services.append(service)
        return service

    yield factory
    for service in services:
        service.kill()


# --- a Prometheus stand-in ------------------------------------------------------------------


@dataclass
class FakePrometheus:
    """Answers `/api/v1/query` with one sample; queries containing `slow_marker` take
    `delay` seconds, and those containing `echo_marker` fail with HTTP 400 and an error
    quoting the request's headers back (as a misbehaving proxy would). `values` maps a
    query to its value (default 1); `bodies` maps a query to the whole JSON answer instead
    (to play a misbehaving proxy). Records every query."""

    delay: float = 3.0
    slow_marker: str = "slow"
    echo_marker: str = "echo_headers"
    values: dict[str, float] = field(default_factory=dict)
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    queries: list[tuple[float, str]] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, query: str) -> dict[str, Any]:
        with self._lock:
            self.queries.append((time.monotonic(), query))
        if self.slow_marker in query:
            time.sleep(self.delay)
        if query in self.bodies:
            return self.bodies[query]
        value = self.values.get(query, 1.0)
        sample = {"metric": {}, "value": [time.time(), repr(float(value))]}
        return {"status": "success", "data": {"resultType": "vector", "result": [sample]}}

    def count(self, query: str) -> int:
        with self._lock:
            return sum(1 for _, q in self.queries if q == query)


class _FakePrometheusHandler(BaseHTTPRequestHandler):
    server: _FakePrometheusServer

    def do_GET(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        self._reply(parts.path, urllib.parse.parse_qs(parts.query))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        parts = urllib.parse.urlsplit(self.path)
        self._reply(parts.path, urllib.parse.parse_qs(body or parts.query))

    def _reply(self, path: str, params: dict[str, list[str]]) -> None:
        if path != "/api/v1/query":
            self.send_error(404)
            return
        query = params.get("query", [""])[0]
        status, answer = 200, self.server.fake.answer(query)
        if self.server.fake.echo_marker in query:
            quoted = "; ".join(f"{k}: {v}" for k, v in self.headers.items())
            status, answer = (
                400,
                {
                    "status": "error",
                    "errorType": "bad_data",
                    "error": f"proxy refused the query (request headers: {quoted})",
                },
            )
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _FakePrometheusServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakePrometheus) -> None:
        super().__init__(("127.0.0.1", 0), _FakePrometheusHandler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a killed service hangs up in the middle of a slow answer, on purpose."""


@contextmanager
def serve_fake_prometheus(**kwargs: Any) -> Iterator[FakePrometheus]:
    """Run a `FakePrometheus(**kwargs)` on a free port until the block ends."""
    fake = FakePrometheus(**kwargs)
    server = _FakePrometheusServer(fake)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    with _serving(server):
        yield fake


@pytest.fixture
def fake_prometheus() -> Iterator[FakePrometheus]:
    """A Prometheus stand-in on a free port (see `FakePrometheus`)."""
    with serve_fake_prometheus() as fake:
        yield fake


@contextmanager
def _serving(server: ThreadingHTTPServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


# --- a notification receiver ------------------------------------------------------------------


@dataclass
class WebhookReceiver:
    """Records JSON bodies POSTed to it; answers `statuses` in turn, then 200."""

    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    attempts: int = 0


class _ReceiverHandler(BaseHTTPRequestHandler):
    server: _ReceiverServer

    def do_POST(self) -> None:
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        receiver.attempts += 1
        status = receiver.statuses.pop(0) if receiver.statuses else 200
        if status == 200:
            receiver.paths.append(self.path)
            receiver.bodies.append(json.loads(body))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


class _ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, receiver: WebhookReceiver) -> None:
        super().__init__(("127.0.0.1", 0), _ReceiverHandler)
        self.receiver = receiver


@contextmanager
def serve_webhook_receiver() -> Iterator[WebhookReceiver]:
    """Run a `WebhookReceiver` on a free port until the block ends."""
    receiver = WebhookReceiver()
    server = _ReceiverServer(receiver)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    with _serving(server):
        yield receiver


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A local webhook endpoint that records what it is sent."""
    with serve_webhook_receiver() as receiver:
        yield receiver
