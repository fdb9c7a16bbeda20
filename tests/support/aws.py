"""pytest plugin: a real moto server, a fault-injecting AWS proxy in front of it, ASG helpers.

moto serves EC2 and Auto Scaling over real HTTP, but it cannot show what the ASG adapter
must cope with in production: scaling activities in progress, instance refreshes,
throttling, 5xx, access denied, groups being deleted or sized in other units. `aws_proxy`
passes every request through to moto and, when a test programs it, answers some of them
itself with the XML AWS would send, or amends moto's description of a group.

Nothing here may ever reach real AWS: every test session runs with the real AWS variables
removed, the shared config files hidden and the endpoint pointed at a dead local port;
`moto_server` then points the endpoint at moto for the rest of the session.

Fixtures: `moto_server` (session), `aws_proxy`, `make_asg`, `asg`, `desired_capacity`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import boto3
import pytest

from autoscaler.adapters.targets.aws_client import forget_shared_reads
from tests.support.net import forward

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient

REGION = "eu-west-3"
AUTOSCALING_XMLNS = "http://autoscaling.amazonaws.com/doc/2011-01-01/"
DEAD_ENDPOINT = "http://127.0.0.1:9"  # the discard port: a refused connection, at once


def fake_aws_env(endpoint: str) -> dict[str, str]:
    """The AWS variables a process needs to talk to `endpoint` with fake credentials only."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        # Hide ~/.aws: a profile there could carry an endpoint, a role or SSO settings.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


@pytest.fixture(scope="session", autouse=True)
def _no_real_aws() -> Iterator[None]:
    """Remove every real AWS variable for the session; boto3 would reach a dead port."""
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("AWS_")]:
            mp.delenv(name)
        for name, value in fake_aws_env(DEAD_ENDPOINT).items():
            mp.setenv(name, value)
        yield


ROLE_ARN = "arn:aws:iam::123456789012:role/scaler"


def assume_a_role(mp: pytest.MonkeyPatch, directory: Path, endpoint: str) -> None:
    """Point the AWS configuration at `endpoint` through a profile that assumes `ROLE_ARN`
    (`source_profile` with fake keys): its credentials come from sts:AssumeRole, sent to
    `endpoint` too, on first use."""
    config, credentials = directory / "aws-config", directory / "aws-credentials"
    config.write_text(f"[profile scaler]\nrole_arn = {ROLE_ARN}\nsource_profile = base\n")
    credentials.write_text("[base]\naws_access_key_id = testing\naws_secret_access_key = t\n")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        mp.delenv(name, raising=False)
    mp.setenv("AWS_CONFIG_FILE", str(config))
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    mp.setenv("AWS_PROFILE", "scaler")
    mp.setenv("AWS_ENDPOINT_URL", endpoint)


# --- moto ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MotoServer:
    """A moto server on 127.0.0.1; `env` is what a subprocess needs to use it."""

    url: str
    env: dict[str, str]

    def client(self) -> AutoScalingClient:
        """An `autoscaling` client talking straight to moto (for arranging and reading back)."""
        return boto3.client("autoscaling", region_name=REGION, endpoint_url=self.url)

    def ec2(self) -> Any:
        """An EC2 client talking to moto (untyped: boto3-stubs[ec2] is not installed)."""
        return boto3.client("ec2", region_name=REGION, endpoint_url=self.url)

    def reset(self) -> None:
        """Forget every resource moto holds (every account and region)."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def desired_capacity(self, name: str) -> int:
        """The DesiredCapacity moto holds for ASG `name`."""
        groups = self.client().describe_auto_scaling_groups(AutoScalingGroupNames=[name])
        return groups["AutoScalingGroups"][0]["DesiredCapacity"]


def fill_moto_gaps(mp: pytest.MonkeyPatch) -> None:
    """Teach moto the reads our adapter makes that it lacks (moto 5.2 answers them with 500).

    moto never runs an instance refresh, so an empty list is the truthful answer; tests
    that need a refresh in progress program `aws_proxy`.
    """
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import ActionResult

    if not hasattr(AutoScalingResponse, "describe_instance_refreshes"):

        def describe_instance_refreshes(self: AutoScalingResponse) -> ActionResult:
            return ActionResult({"InstanceRefreshes": []})

        mp.setattr(
            AutoScalingResponse,
            "describe_instance_refreshes",
            describe_instance_refreshes,
            raising=False,
        )


@pytest.fixture(scope="session")
def moto_server(_no_real_aws: None) -> Iterator[MotoServer]:
    """moto in a thread of this process (per xdist worker); this process's boto3 uses it."""
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as mp:
        fill_moto_gaps(mp)
        werkzeug_log = logging.getLogger("werkzeug")  # one line per request otherwise
        level = werkzeug_log.level
        werkzeug_log.setLevel(logging.WARNING)
        # Port 0: the OS picks a free port, so parallel workers never race for one.
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        env = fake_aws_env(url)
        for name, value in env.items():
            mp.setenv(name, value)
        try:
            yield MotoServer(url=url, env=env)
        finally:
            server.stop()
            werkzeug_log.setLevel(level)


@pytest.fixture
def make_asg(moto_server: MotoServer) -> Callable[..., str]:
    """A factory: `make_asg(name=None, desired=2, min_size=1, max_size=10, tags=None) -> name`.

    Each call creates a launch template and an ASG spread over moto's default subnets,
    carrying `tags` (key -> value) when given.
    """
    ec2 = moto_server.ec2()
    autoscaling = moto_server.client()

    def make(
        name: str | None = None,
        desired: int = 2,
        min_size: int = 1,
        max_size: int = 10,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        name = name or f"asg-{uuid.uuid4().hex[:10]}"
        template = f"lt-{name}"
        ec2.create_launch_template(
            LaunchTemplateName=template,
            LaunchTemplateData={"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"},
        )
        subnets = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            LaunchTemplate={"LaunchTemplateName": template, "Version": "$Latest"},
            MinSize=min_size,
            MaxSize=max_size,
            DesiredCapacity=desired,
            VPCZoneIdentifier=",".join(s["SubnetId"] for s in subnets["Subnets"]),
            Tags=[
                {
                    "Key": key,
                    "Value": value,
                    "PropagateAtLaunch": False,
                    "ResourceId": name,
                    "ResourceType": "auto-scaling-group",
                }
                for key, value in (tags or {}).items()
            ],
        )
        return name

    return make


@pytest.fixture
def asg(make_asg: Callable[..., str]) -> str:
    """A fresh ASG (desired 2, min 1, max 10); its name."""
    return make_asg()


@pytest.fixture
def desired_capacity(moto_server: MotoServer) -> Callable[[str], int]:
    """`desired_capacity(name) -> int`, read straight from moto."""
    return moto_server.desired_capacity


# --- the fault-injecting proxy ------------------------------------------------------------


@dataclass
class _Fault:
    status: int
    code: str
    message: str
    times: int
    echo: bool = False
    group: str | None = None  # only requests naming this AutoScalingGroupName
    delay: float = 0.0  # seconds the answer is held back (a slow or hung endpoint)
    body: bytes | None = None  # answered instead of AWS's error XML (a proxy's own page)
    drop: bool = False  # the connection closed unanswered (`AwsProxy.drop_next`)
    lands: bool = True  # a dropped request forwarded to moto first


DROPPED = 0  # the status `AwsProxy.answer` gives a request to forward, its answer lost
LOST = -1  # ... one lost on its way: not forwarded, unanswered


@dataclass
class AwsProxy:
    """An HTTP proxy in front of moto that can answer like AWS when moto cannot.

    Program it with `fail_next`, `drop_next`, `set_activities`, `set_instance_refreshes` and
    `amend_group`; read what reached it in `requests` (actions in order), `calls` (actions
    with their params) and `arrivals` (when each request of an action came in, on
    `CLOCK_BOOTTIME`: the clock the leader lease is measured on).
    """

    upstream: str
    url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    _times: list[float] = field(default_factory=list)
    _faults: dict[str, list[_Fault]] = field(default_factory=dict)
    _activities: list[dict[str, Any]] | None = None
    _refreshes: list[dict[str, Any]] | None = None
    # group -> (fields of the group, fields of each of its instances)
    _amends: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def requests(self) -> list[str]:
        """Every action that reached the proxy, in order, answered by it or by moto."""
        with self._lock:
            return [action for action, _ in self.calls]

    def count(self, action: str) -> int:
        return self.requests.count(action)

    def arrivals(self, action: str) -> list[float]:
        """When each request of `action` reached the proxy (`CLOCK_BOOTTIME` seconds)."""
        with self._lock:
            return [t for (a, _), t in zip(self.calls, self._times, strict=True) if a == action]

    def fail_next(
        self,
        action: str,
        status: int,
        code: str,
        message: str = "",
        *,
        times: int = 1,
        echo: bool = False,
        group: str | None = None,
        delay: float = 0.0,
        body: bytes | None = None,
    ) -> None:
        """Answer the next `times` requests of `action` with an AWS error (after earlier ones);
        with `echo`, the message goes on with the request's headers (signature, session
        token), as a misbehaving proxy's error would. With `group`, only the requests whose
        `AutoScalingGroupName` is `group` fail (other groups' go through), until `heal(group)`
        when `times` is large. With `delay`, each answer is held back that many seconds. With
        `body`, that is the answer's body instead (not AWS's: a proxy's or a captive portal's)."""
        with self._lock:
            self._faults.setdefault(action, []).append(
                _Fault(status, code, message, times, echo, group, delay, body)
            )

    def drop_next(self, action: str, *, times: int = 1, lands: bool = True) -> None:
        """Have the next `times` requests of `action` (after earlier faults) go unanswered:
        the connection is closed without a word, as a load balancer or NAT that drops it
        does, after moto applied the request (`lands`) or without forwarding it. The client
        cannot tell which."""
        fault = _Fault(DROPPED, "", "", times, drop=True, lands=lands)
        with self._lock:
            self._faults.setdefault(action, []).append(fault)

    def heal(self, group: str) -> None:
        """Forget the faults programmed for `group`."""
        with self._lock:
            for action, faults in self._faults.items():
                self._faults[action] = [f for f in faults if f.group != group]

    def set_activities(self, items: Sequence[Mapping[str, Any]], *, group: str) -> None:
        """Answer DescribeScalingActivities with `items` (boto3 shapes), as AWS would: for
        one group or for the whole region, by ids, in progress first and then newest first,
        `MaxRecords` per page with a `NextToken`.

        Missing required fields are filled in once, here: ActivityId, AutoScalingGroupName
        (`group`), Cause, StartTime (now), StatusCode (Successful).
        """
        with self._lock:
            self._activities = [_activity(i, group) for i in items]

    def set_instance_refreshes(self, items: Sequence[Mapping[str, Any]], *, group: str) -> None:
        """Answer DescribeInstanceRefreshes with `items` (boto3 shapes; Status InProgress);
        AutoScalingGroupName is `group` where an item names none."""
        with self._lock:
            self._refreshes = [_refresh(i, group) for i in items]

    def amend_group(
        self,
        group: str,
        fields: Mapping[str, Any] | None = None,
        *,
        instances: Mapping[str, Any] | None = None,
    ) -> None:
        """Have DescribeAutoScalingGroups show `group` as moto describes it, with `fields`
        (boto3 shapes) set on it and `instances` on each of its instances, replacing moto's:
        what AWS shows and moto cannot (a group being deleted, `DesiredCapacityType`,
        instances' `WeightedCapacity`)."""
        with self._lock:
            self._amends[group] = (dict(fields or {}), dict(instances or {}))

    def amended(self, action: str, payload: bytes) -> bytes:
        """`payload`, moto's answer to `action`, with the groups' amendments applied."""
        with self._lock:
            amends = dict(self._amends)
        if action != "DescribeAutoScalingGroups" or not amends:
            return payload
        root = ElementTree.fromstring(payload)
        ns = root.tag[: root.tag.index("}") + 1] if root.tag.startswith("{") else ""
        for element in root.iter(f"{ns}member"):
            name = element.findtext(f"{ns}AutoScalingGroupName")
            if name not in amends or element.find(f"{ns}DesiredCapacity") is None:
                continue
            fields, per_instance = amends[name]
            _set_fields(element, fields, ns)
            for instance in element.iterfind(f"{ns}Instances/{ns}member"):
                _set_fields(instance, per_instance, ns)
        ElementTree.register_namespace("", ns.strip("{}"))
        amended: bytes = ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)
        return amended

    def clear(self) -> None:
        """Forget programmed answers and seen requests: pass everything through again."""
        with self._lock:
            self.calls.clear()
            self._times.clear()
            self._faults.clear()
            self._activities = None
            self._refreshes = None
            self._amends.clear()

    def answer(
        self, action: str, params: dict[str, str], headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes] | None:
        """The proxy's own (status, XML body) for this request, or None to forward it
        (a fault programmed with a `delay` holds the answer back that long first); status
        `DROPPED`: forward it and lose the answer; `LOST`: answer nothing."""
        delay, answer = self._answer(action, params, headers)
        if delay:
            time.sleep(delay)
        return answer

    def _answer(
        self, action: str, params: dict[str, str], headers: Mapping[str, str] | None
    ) -> tuple[float, tuple[int, bytes] | None]:
        with self._lock:
            self.calls.append((action, params))
            self._times.append(time.clock_gettime(time.CLOCK_BOOTTIME))
            group = params.get("AutoScalingGroupName")
            faults = self._faults.get(action, [])
            fault = next((f for f in faults if f.group in (None, group)), None)
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    faults.remove(fault)
                if fault.drop:
                    return 0.0, (DROPPED if fault.lands else LOST, b"")
                message = fault.message
                if fault.echo:
                    quoted = "; ".join(f"{k}: {v}" for k, v in (headers or {}).items())
                    message += f" (request headers: {quoted})"
                body = fault.body or error_xml(fault.status, fault.code, message)
                return fault.delay, (fault.status, body)
            if action == "DescribeScalingActivities" and self._activities is not None:
                return 0.0, (200, result_xml(action, _activities_page(self._activities, params)))
            if action == "DescribeInstanceRefreshes" and self._refreshes is not None:
                items = [i for i in self._refreshes if i["AutoScalingGroupName"] == group]
                return 0.0, (200, result_xml(action, {"InstanceRefreshes": items}))
        return 0.0, None


def _activities_page(items: list[dict[str, Any]], params: Mapping[str, str]) -> dict[str, Any]:
    """One page of DescribeScalingActivities over `items`: filtered by the group and ids
    asked for, in progress first, then by start time, newest first."""
    group = params.get("AutoScalingGroupName")
    ids = {v for k, v in params.items() if k.startswith("ActivityIds.member.")}
    chosen = [
        i
        for i in items
        if (group is None or i["AutoScalingGroupName"] == group)
        and (not ids or i["ActivityId"] in ids)
    ]
    chosen.sort(key=lambda i: i["StartTime"], reverse=True)
    chosen.sort(key=lambda i: i["StatusCode"] in ("Successful", "Failed", "Cancelled"))
    start = int(params.get("NextToken") or 0)
    size = int(params.get("MaxRecords") or 100)
    page: dict[str, Any] = {"Activities": chosen[start : start + size]}
    if start + size < len(chosen):
        page["NextToken"] = str(start + size)
    return page


def _activity(item: Mapping[str, Any], group: str) -> dict[str, Any]:
    status = item.get("StatusCode", "Successful")
    return {
        "ActivityId": str(uuid.uuid4()),
        "AutoScalingGroupName": group,
        "Description": "Launching a new EC2 instance",
        "Cause": "an instance was started in response to a difference between desired "
        "and actual capacity",
        "StartTime": datetime.now(UTC),
        "StatusCode": status,
        "Progress": 100 if status in ("Successful", "Failed", "Cancelled") else 30,
        **item,
    }


def _refresh(item: Mapping[str, Any], group: str) -> dict[str, Any]:
    return {
        "InstanceRefreshId": str(uuid.uuid4()),
        "AutoScalingGroupName": group,
        "Status": "InProgress",
        "StartTime": datetime.now(UTC),
        "PercentageComplete": 0,
        **item,
    }


def _set_fields(element: ElementTree.Element, fields: Mapping[str, Any], ns: str) -> None:
    """Set `fields` (boto3 shapes) as children of `element`, replacing those of that name."""
    for key, value in fields.items():
        for old in element.findall(f"{ns}{key}"):
            element.remove(old)
        uri = ns.strip("{}")
        xmlns = f' xmlns="{uri}"' if uri else ""
        element.append(ElementTree.fromstring(f"<{key}{xmlns}>{_to_xml(value)}</{key}>"))


def error_xml(status: int, code: str, message: str) -> bytes:
    """An AWS Query-protocol error body, as Auto Scaling sends it."""
    kind = "Receiver" if status >= 500 else "Sender"
    return (
        f'<?xml version="1.0"?>\n<ErrorResponse xmlns="{AUTOSCALING_XMLNS}">\n'
        f"  <Error>\n    <Type>{kind}</Type>\n    <Code>{escape(code)}</Code>\n"
        f"    <Message>{escape(message)}</Message>\n  </Error>\n"
        f"  <RequestId>{uuid.uuid4()}</RequestId>\n</ErrorResponse>\n"
    ).encode()


def result_xml(action: str, result: Mapping[str, Any]) -> bytes:
    """An AWS Query-protocol success body: `<ActionResponse><ActionResult>...`."""
    return (
        f'<{action}Response xmlns="{AUTOSCALING_XMLNS}">\n'
        f"  <{action}Result>{_to_xml(result)}</{action}Result>\n"
        f"  <ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>\n"
        f"</{action}Response>\n"
    ).encode()


def _to_xml(value: Any) -> str:
    """Query-protocol XML of a boto3-shaped value: lists as `<member>`, times as ISO 8601."""
    if isinstance(value, Mapping):
        return "".join(f"<{k}>{_to_xml(v)}</{k}>" for k, v in value.items() if v is not None)
    if isinstance(value, list | tuple):
        return "".join(f"<member>{_to_xml(v)}</member>" for v in value)
    if isinstance(value, datetime):
        t = value.astimezone(UTC)
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    if isinstance(value, bool):
        return "true" if value else "false"
    return escape(str(value))


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _ProxyServer

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request on stderr is noise

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        action, params = _action(self.path, self.headers.get("X-Amz-Target", ""), body)
        own = self.server.proxy.answer(action, params, dict(self.headers.items()))
        if own is not None and own[0] in (DROPPED, LOST):
            if own[0] == DROPPED:
                self._forward(body)  # applied by moto; its answer never reaches the client
            self.close_connection = True
            return
        if own is not None:
            status, payload = own
            headers = {"Content-Type": "text/xml", "x-amzn-RequestId": str(uuid.uuid4())}
        else:
            status, headers, payload = self._forward(body)
            if status == 200:
                payload = self.server.proxy.amended(action, payload)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        return forward(self, self.server.proxy.upstream, body)


def _action(path: str, target: str, body: bytes) -> tuple[str, dict[str, str]]:
    """The API action of a request and its parameters (Query protocol, or X-Amz-Target)."""
    query = urllib.parse.urlsplit(path).query
    form = body.decode("utf-8", "replace") if b"=" in body else ""
    params = dict(urllib.parse.parse_qsl(query)) | dict(urllib.parse.parse_qsl(form))
    return params.get("Action") or target.rpartition(".")[2] or path, params


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, proxy: AwsProxy) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.proxy = proxy


@contextmanager
def serve_aws_proxy(upstream: str) -> Iterator[AwsProxy]:
    """An `AwsProxy` in front of `upstream` on a free port, until the block ends (a test
    that needs to tell two clients' calls apart gives each its own)."""
    proxy = AwsProxy(upstream=upstream)
    server = _ProxyServer(proxy)
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    proxy.env = fake_aws_env(proxy.url)
    # Polling every 0.05 s: shutdown() waits up to one poll (0.5 s by default).
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="aws-proxy", daemon=True
    )
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def _aws_proxy_session(moto_server: MotoServer) -> Iterator[AwsProxy]:
    with serve_aws_proxy(moto_server.url) as proxy:
        yield proxy


@pytest.fixture
def aws_proxy(_aws_proxy_session: AwsProxy) -> Iterator[AwsProxy]:
    """The fault-injecting proxy in front of `moto_server`, with nothing programmed.

    Its `url` / `env` serve clients that should see the faults; `moto_server` itself stays
    clean. Everything programmed is forgotten after the test.
    """
    _aws_proxy_session.clear()
    forget_shared_reads()  # what the shared clients learnt of the last test's groups
    yield _aws_proxy_session
    _aws_proxy_session.clear()
