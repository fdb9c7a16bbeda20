"""A stand-in for Nomad's HTTP API, served over real HTTP(S) on 127.0.0.1, and its fixtures.

No Nomad binary can be installed here, so this answers the few endpoints the Nomad target
uses with the paths, query parameters, payloads, status codes and error texts of Nomad
itself (HTTP layer: command/agent/job_endpoint.go; semantics: nomad/job_endpoint.go):

    GET  /v1/jobs                   list-jobs            ?namespace= (`*` = all), ?prefix=
    GET  /v1/job/:id                read-job             404 "job not found"
    GET  /v1/job/:id/scale          read-job | read-job-scaling
    POST /v1/job/:id/scale          scale-job | submit-job
         400 "job scaling blocked due to active deployment", 404 `job "x" not found`,
         400 `task group "g" specified for scaling does not exist in job`,
         400 "group count was less than scaling policy minimum: 1 < 2" (and "greater than
         ... maximum: 9 > 8") for a group with a `scaling` block, PolicyOverride or not,
         500 "Enforcing job modify index 11: job exists with conflicting job modify index:
         14" when the body's `JobModifyIndex` (Nomad 1.8.2+, with `EnforceIndex`) is set
         and is not the job's (its version's index, not `ModifyIndex`), ...
    GET  /v1/job/:id/deployment     read-job             JSON null when there is none
    GET  /v1/scaling/policies       list-scaling-policies  ?namespace= (`*` = all), ?job=, ?type=
    GET  /v1/scaling/policy/:id     read-scaling-policy  404 "scaling policy not found"
    GET  /v1/namespaces             any capability in the namespace   ?prefix=
    GET  /v1/event/stream           read-job (per namespace; `*` needs a `*` rule)
         ?topic=Job:* (or Job:<id>, *:*), ?namespace=, ?index=: newline-delimited JSON,
         chunked, `{"Index": N, "Events": [...]}` per change and `{}` as a heartbeat

Jobs carry `Meta` (job and group), and groups a `scaling` block with its `policy` map as
Nomad stores it (blocks as lists of `{label: [body]}`), listed by the scaling endpoints
with Nomad's payloads (`ScalingPolicyListStub`, `ScalingPolicy`). The two lists answer
blocking queries: with `?index=N`, the request waits (up to `?wait=`, default 5m) until
the state's index passes N; every answer carries `X-Nomad-Index`. Registering, scaling
and purging a job publish a `Job` event (`JobRegistered`, `JobDeregistered`, with the job
as payload) on the event stream, which keeps the last 100 events for `?index=` and sends a
heartbeat every `event_heartbeat` seconds (Nomad: 30 s); tests can drop every open stream
(`drop_event_streams`), make streams silent, or refuse them (`event_stream_refusal`).

Every request may carry `namespace` (default "default") and `region` (default "global";
an unknown one gets Nomad's 500 "No path to region"). With ACLs enabled, `X-Nomad-Token`
is required: none → 403 "Permission denied", an unknown one → 403 "ACL token not found";
a job (or scaling policy) list of every namespace (`namespace=*`) holds the namespaces
the token may list in. The namespace list (nomad/namespace_endpoint.go ListNamespaces) holds
the namespaces where the token has any capability but `deny` (`AllowNamespace`: a rule for
the namespace itself, else the `*` one), every one for a management token or with ACLs
disabled: a token with no capability anywhere gets `[]`, not a 403 (only an unknown token
is refused). Namespaces are `default` and those `add_namespace` or a job registered in
them made; `namespaces_refusal` answers the list with an error instead (a proxy that lets
only job paths through, or a Nomad before 1.0, whose namespaces were Enterprise only).
A management token (`enable_acl(management=...)`) may do anything;
with `reject_job_registration` set (the scheduler configuration's load shedding), a scale
from any other token is refused with Nomad's 403 "Job registration, dispatch, and scale
are disabled by the scheduler configuration" (with ACLs disabled, every request is
management's, as in Nomad).
There is no scheduler: allocations are reported as placed and running at once, and a
deployment only changes when a test says so (`set_deployment`, `deployment_on_scale`).
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from tests.support.net import free_port
from tests.support.tls import make_ca_and_server_cert, server_context

DEFAULT_REGION = "global"
ACTIVE_DEPLOYMENT_STATES = frozenset(
    {"running", "pending", "paused", "blocked", "unblocking", "initializing"}
)
_DEPLOYMENT_DESCRIPTIONS = {
    "running": "Deployment is running",
    "pending": "Deployment is pending, waiting for evaluation",
    "paused": "Deployment is paused",
    "blocked": "Deployment is blocked",
    "unblocking": "Deployment is unblocking remaining regions",
    "initializing": "Deployment is initializing",
    "successful": "Deployment completed successfully",
    "failed": "Deployment marked as failed",
    "cancelled": "Cancelled because job is stopped",
}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in received it (path unescaped, body parsed as JSON), and
    `at`: when it arrived, on `CLOCK_BOOTTIME` (the clock the leader lease is measured on)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any
    at: float = 0.0


@dataclass
class _Job:
    id: str
    namespace: str
    region: str
    type: str
    groups: dict[str, int]
    scaling: dict[str, tuple[int, int]]  # group → (Min, Max) of its `scaling` block
    periodic: bool
    parameterized: bool
    stopped: bool
    create_index: int
    modify_index: int  # ModifyIndex: moves with any change to the job
    spec_index: int = 0  # JobModifyIndex: moves with a new version only (0: modify_index)
    version: int = 0
    submit_time: int = field(default_factory=time.time_ns)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    deployments: list[dict[str, Any]] = field(default_factory=list)  # newest last
    meta: dict[str, str] = field(default_factory=dict)
    group_meta: dict[str, dict[str, str]] = field(default_factory=dict)
    # group → the `policy` map of its scaling block, and whether the block is enabled
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies_enabled: bool = True

    def __post_init__(self) -> None:
        self.spec_index = self.spec_index or self.modify_index


class _ApiError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status, self.text = status, text


class NomadApiStandIn:
    """The stand-in server and its test controls; `reset()` gives a fresh state."""

    def __init__(self, *, tls_dir: Path | None = None) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)  # the index moved
        self._port = free_port()
        self.ca_cert: str | None = None
        self._tls: ssl.SSLContext | None = None
        if tls_dir is not None:
            ca, cert, key = make_ca_and_server_cert(
                tls_dir, common_name="server.global.nomad", dns_names=["server.global.nomad"]
            )
            self.ca_cert = str(ca)
            self._tls = server_context(cert, key)
        scheme = "https" if self._tls else "http"
        self.address = f"{scheme}://127.0.0.1:{self._port}"
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.record_requests = True  # benchmarks turn the request log off
        self.reset()

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._server = _Server(("127.0.0.1", self._port), _Handler, self, self._tls)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(0.05,),  # shutdown() waits up to one poll: 0.5 s by default
            name="nomad-api-stand-in",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self.drop_event_streams()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def reset(self) -> None:
        """Forget jobs, tokens, regions beyond "global", injected failures and the log."""
        with self._lock:
            self._jobs: dict[tuple[str, str, str], _Job] = {}
            # name -> Nomad's namespace stub (GET /v1/namespaces)
            self._namespaces: dict[str, dict[str, Any]] = {}
            self.namespaces_refusal: tuple[int, str] | None = None
            self.regions: set[str] = {DEFAULT_REGION}
            self._acl: dict[str, dict[str, frozenset[str]]] | None = None
            self._management: frozenset[str] = frozenset()
            # The scheduler configuration's `reject_job_registration` (load shedding).
            self.reject_job_registration = False
            self._failures: list[tuple[int, str, bool]] = []
            self._echoing: dict[str, int] = {}
            self._job_faults: dict[str, tuple[int, str, frozenset[str] | None, float]] = {}
            self._delays: list[float] = []
            self._slow: dict[str, float] = {}  # namespace -> seconds its requests answer late
            self._first_late: dict[str, float] = {}  # job -> extra delay of its next fault
            self._index = 10
            self._namespaces["default"] = _namespace("default", "Default shared namespace", 1)
            self.requests: list[RecordedRequest] = []
            self.deployment_on_scale: str | None = None
            # Run once when the next scale request arrives, before Nomad looks at it:
            # another client's change that lands just ahead of ours (`new_version`, ...).
            self.before_next_scale: Callable[[], None] | None = None
            # Groups left out of the scale status, as a Nomad older than 0.11 (no scaling
            # status per group) or a status read racing a job update would answer.
            self.scale_status_omits: set[str] = set()
            # The event stream: recent events (oldest first), the heartbeat period, and the
            # test controls (a refusal, silence, and a generation that ends open streams).
            self._events: list[dict[str, Any]] = []
            self.event_heartbeat = 30.0  # Nomad's (nomad/event_endpoint.go)
            self.event_streams_silent = False
            self.event_stream_refusal: tuple[int, str] | None = None
            self._stream_generation = getattr(self, "_stream_generation", 0) + 1
            self._changed.notify_all()

    @property
    def env(self) -> dict[str, str]:
        """NOMAD_* variables pointing a client (or a subprocess) at this server."""
        env = {"NOMAD_ADDR": self.address}
        if self.ca_cert:
            env["NOMAD_CACERT"] = self.ca_cert
        return env

    # --- test controls -------------------------------------------------------------------

    def register_job(
        self,
        job_id: str,
        groups: Mapping[str, int] | None = None,
        *,
        namespace: str = "default",
        type: str = "service",
        periodic: bool = False,
        parameterized: bool = False,
        stopped: bool = False,
        region: str = DEFAULT_REGION,
        scaling: Mapping[str, tuple[int, int]] | None = None,
        meta: Mapping[str, str] | None = None,
        group_meta: Mapping[str, Mapping[str, str]] | None = None,
        policies: Mapping[str, Mapping[str, Any]] | None = None,
        policies_enabled: bool = True,
    ) -> None:
        """Register (or replace) a job, as `nomad job run` would; no deployment yet.

        `scaling` gives groups a `scaling { min max }` block: group → (min, max), both
        resolved (Nomad stores `min` as the group's count when the block leaves it out).
        Like Nomad's job validation, a count outside its group's bounds is refused.
        `meta` and `group_meta` are the job's and its groups' `meta` blocks; `policies`
        gives a scaling block (of `scaling`) its `policy` map, as Nomad stores it.
        """
        counts = dict({"web": 3} if groups is None else groups)
        for name, (low, high) in (scaling or {}).items():
            if name not in counts or not 0 <= low <= counts[name] <= high:
                raise ValueError(f"group {name!r}: count {counts.get(name)} not in [{low}, {high}]")
        for name in policies or {}:
            if name not in (scaling or {}):
                raise ValueError(f"group {name!r}: a scaling policy needs a scaling block")
        with self._lock:
            index = self._next_index()
            self.regions.add(region)
            self._namespaces.setdefault(namespace, _namespace(namespace, "", index))
            self._jobs[(region, namespace, job_id)] = _Job(
                id=job_id,
                namespace=namespace,
                region=region,
                type=type,
                groups=counts,
                scaling=dict(scaling or {}),
                periodic=periodic,
                parameterized=parameterized,
                stopped=stopped,
                create_index=index,
                modify_index=index,
                meta=dict(meta or {}),
                group_meta={g: dict(m) for g, m in (group_meta or {}).items()},
                policies={g: dict(p) for g, p in (policies or {}).items()},
                policies_enabled=policies_enabled,
            )
            self._publish(self._jobs[(region, namespace, job_id)], "JobRegistered", index)

    def add_namespace(
        self,
        name: str,
        *,
        description: str = "",
        meta: Mapping[str, str] | None = None,
        quota: str = "",
    ) -> None:
        """Create (or update) a namespace, as `nomad namespace apply` would."""
        with self._lock:
            index = self._next_index()
            created = self._namespaces.get(name, {}).get("CreateIndex", index)
            self._namespaces[name] = _namespace(name, description, created, meta, quota)
            self._namespaces[name]["ModifyIndex"] = index

    def deregister_job(
        self, job_id: str, namespace: str = "default", region: str = DEFAULT_REGION
    ) -> None:
        """Remove (purge) a job, as `nomad job stop -purge` would."""
        with self._lock:
            job = self._jobs.pop((region, namespace, job_id))
            self._publish(job, "JobDeregistered")

    def touch_job(
        self, job_id: str, namespace: str = "default", region: str = DEFAULT_REGION
    ) -> None:
        """Change the job without making a new version, as Nomad does when it marks a
        version stable once its deployment succeeded or when the job's status changes:
        its `ModifyIndex` moves (and the scale status' `JobModifyIndex`, which is that
        index), its `JobModifyIndex` does not; a Job event is published."""
        with self._lock:
            job = self._job(job_id, namespace, region)
            job.modify_index = self._next_index()
            self._publish(job, "JobRegistered", job.modify_index)

    def new_version(
        self,
        job_id: str,
        groups: Mapping[str, int] | None = None,
        namespace: str = "default",
        region: str = DEFAULT_REGION,
    ) -> None:
        """Register a new version of the job, as `nomad job run` of a changed jobspec does:
        the same job (its `CreateIndex` kept), its `Version` up by one, its `ModifyIndex`
        and `JobModifyIndex` moved to a new index; `groups` sets counts (as the jobspec's
        `count`), the others are kept. No deployment: a test sets one if it wants it."""
        with self._lock:
            job = self._job(job_id, namespace, region)
            job.groups.update(groups or {})
            job.version += 1
            job.modify_index = job.spec_index = self._next_index()
            job.submit_time = time.time_ns()
            self._publish(job, "JobRegistered", job.modify_index)

    def set_deployment(
        self,
        job_id: str,
        status: str,
        namespace: str = "default",
        region: str = DEFAULT_REGION,
        *,
        description: str | None = None,
    ) -> str:
        """Make a new latest deployment of the job with this status; its ID back.

        `description` is its `StatusDescription` (Nomad's default for the status when None),
        e.g. "Deployment is running but requires manual promotion" for canaries awaiting
        promotion, which Nomad keeps in the status `running`."""
        with self._lock:
            job = self._job(job_id, namespace, region)
            return self._new_deployment(job, status, description)

    def fail_next(
        self, n: int = 1, status: int = 500, body: str = "injected failure", *, echo: bool = False
    ) -> None:
        """Answer the next `n` requests (any path) with `status` and `body`; with `echo`, the
        body goes on with the request line and headers, as some proxies' error pages do."""
        with self._lock:
            self._failures.extend([(status, body, echo)] * n)

    def echo_requests_of(self, job_id: str, status: int = 403) -> None:
        """From now on, answer every request about `job_id` with `status` and a body that
        quotes the request line and headers back (token included), like a misbehaving
        proxy in front of Nomad."""
        with self._lock:
            self._echoing[job_id] = status

    def fail_requests_of(
        self,
        job_id: str,
        status: int = 500,
        body: str = "injected failure",
        *,
        methods: Iterable[str] | None = None,
        delay: float = 0.0,
        first_delay: float = 0.0,
    ) -> None:
        """From now on, until `heal(job_id)`, answer every request about `job_id` (or only
        those with one of `methods`) with `status` and `body`, each `delay` seconds late
        (the first one `first_delay` seconds more: a request that times out, then retries
        that get the answer); other jobs are unaffected."""
        with self._lock:
            only = None if methods is None else frozenset(m.upper() for m in methods)
            self._job_faults[job_id] = (status, body, only, delay)
            self._first_late[job_id] = first_delay

    def heal(self, job_id: str) -> None:
        """Stop failing or echoing the requests about `job_id`."""
        with self._lock:
            self._job_faults.pop(job_id, None)
            self._echoing.pop(job_id, None)

    def delay_next(self, n: int, seconds: float) -> None:
        """Wait `seconds` before answering each of the next `n` requests (for timeouts)."""
        with self._lock:
            self._delays.extend([seconds] * n)

    def slow_namespace(self, name: str, seconds: float) -> None:
        """Answer every request naming namespace `name` itself (not `*`) `seconds` late: a
        Nomad slow to answer there (0 answers at once again)."""
        with self._lock:
            self._slow[name] = seconds

    def drop_event_streams(self) -> None:
        """End every open event stream (as a Nomad server restart or a proxy would)."""
        with self._lock:
            self._stream_generation += 1
            self._changed.notify_all()

    def enable_acl(
        self,
        tokens: Mapping[str, Mapping[str, Iterable[str]]],
        *,
        management: Iterable[str] = (),
    ) -> None:
        """Require tokens: secret → {namespace (or "*"): capabilities}; the `management`
        secrets are management tokens (every capability, and scaling while the scheduler
        configuration rejects job registration)."""
        with self._lock:
            self._management = frozenset(management)
            self._acl = {
                secret: {ns: frozenset(caps) for ns, caps in rules.items()}
                for secret, rules in tokens.items()
            }
            self._acl.update({secret: {} for secret in self._management})

    def scale_events(
        self,
        job_id: str,
        group: str | None = None,
        namespace: str = "default",
        region: str = DEFAULT_REGION,
    ) -> list[dict[str, Any]]:
        """The job's scaling events, newest first (one group's, or all groups' merged)."""
        with self._lock:
            job = self._job(job_id, namespace, region)
            if group is not None:
                return [dict(e) for e in job.events.get(group, [])]
            merged = [dict(e) for events in job.events.values() for e in events]
            return sorted(merged, key=lambda e: int(e["Time"]), reverse=True)

    def add_scale_event(
        self,
        job_id: str,
        group: str,
        *,
        count: int | None,
        previous: int,
        at: dt.datetime,
        message: str = "submitted using the Nomad CLI",
        error: bool = False,
        namespace: str = "default",
        region: str = DEFAULT_REGION,
    ) -> None:
        """Record a scaling event from the past (someone else's) without changing the count."""
        with self._lock:
            job = self._job(job_id, namespace, region)
            event = _event(
                count=count,
                previous=previous,
                message=message,
                error=error,
                meta=None,
                eval_id=None,
            )
            event["Time"] = int(at.timestamp() * 1_000_000) * 1000
            job.events.setdefault(group, []).insert(0, event)
            job.events[group].sort(key=lambda e: int(e["Time"]), reverse=True)

    def group_count(
        self, job_id: str, group: str, namespace: str = "default", region: str = DEFAULT_REGION
    ) -> int:
        with self._lock:
            return self._job(job_id, namespace, region).groups[group]

    def requests_to(self, method: str, suffix: str = "") -> list[RecordedRequest]:
        """Logged requests with this method whose path ends with `suffix`."""
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    # --- internals -----------------------------------------------------------------------

    def _next_index(self) -> int:
        self._index += 1
        self._changed.notify_all()
        return self._index

    def _job(self, job_id: str, namespace: str, region: str) -> _Job:
        return self._jobs[(region, namespace, job_id)]

    def _publish(self, job: _Job, kind: str, index: int | None = None) -> None:
        """A `Job` event about `job`, as Nomad's event broker publishes it: at the index of
        the change that made it (a new one when None)."""
        index = self._next_index() if index is None else index
        self._changed.notify_all()
        self._events.append(
            {
                "Topic": "Job",
                "Type": kind,
                "Key": job.id,
                "Namespace": job.namespace,
                "FilterKeys": None,
                "Index": index,
                "Payload": {"Job": _job_json(job)},
                "_region": job.region,  # for filtering here; removed before sending
            }
        )
        del self._events[:-100]  # Nomad's event buffer keeps the last events only

    def serve_events(self, handler: _Handler, request: RecordedRequest) -> None:
        """GET /v1/event/stream: the matching events after `?index=`, then each new one as
        it is published, with a heartbeat `{}` every `event_heartbeat` seconds of quiet."""
        with self._lock:
            if self.record_requests:
                self.requests.append(request)
            try:
                if self.event_stream_refusal is not None:
                    raise _ApiError(*self.event_stream_refusal)
                region = request.query.get("region") or DEFAULT_REGION
                if region not in self.regions:
                    raise _ApiError(500, "No path to region")
                namespace = request.query.get("namespace") or "default"
                self._authorize(request, namespace, "read-job")
                topic, _, key = (request.query.get("topic") or "*:*").partition(":")
                last = int(request.query.get("index") or 0)
            except _ApiError as exc:
                handler._send(exc.status, exc.text.encode(), "text/plain; charset=utf-8")
                return
            generation = self._stream_generation

        def wanted(event: Mapping[str, Any]) -> bool:
            return (
                event["Index"] > last
                and topic in ("*", event["Topic"])
                and key in ("", "*", event["Key"])
                and namespace in ("*", event["Namespace"])
                and event["_region"] == region
            )

        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        handler.close_connection = True
        beat = time.monotonic() + self.event_heartbeat
        try:
            while True:
                with self._changed:
                    pending = [e for e in self._events if wanted(e)]
                    while not pending and generation == self._stream_generation:
                        left = beat - time.monotonic()
                        if left <= 0:
                            break
                        self._changed.wait(left)
                        pending = [e for e in self._events if wanted(e)]
                    if generation != self._stream_generation:
                        handler.wfile.write(b"0\r\n\r\n")
                        return
                    silent = self.event_streams_silent
                if pending:
                    last = pending[-1]["Index"]
                    events = [{k: v for k, v in e.items() if k != "_region"} for e in pending]
                    line = json.dumps({"Index": last, "Events": events}) + "\n"
                elif not silent:
                    line = "{}\n"
                else:
                    line = ""
                if line:
                    data = line.encode()
                    handler.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
                if not pending:
                    beat = time.monotonic() + self.event_heartbeat
        except OSError:
            return  # the client went away

    def _new_deployment(self, job: _Job, status: str, description: str | None = None) -> str:
        index = self._next_index()
        ident = str(uuid.uuid4())
        job.deployments.append(
            {
                "ID": ident,
                "Namespace": job.namespace,
                "JobID": job.id,
                "JobVersion": job.version,
                "JobModifyIndex": job.modify_index,  # as Nomad: the job's ModifyIndex
                "JobSpecModifyIndex": job.spec_index,
                "JobCreateIndex": job.create_index,
                "TaskGroups": {
                    name: {
                        "AutoRevert": False,
                        "Promoted": False,
                        "PlacedCanaries": None,
                        "DesiredCanaries": 0,
                        "DesiredTotal": count,
                        "PlacedAllocs": count,
                        "HealthyAllocs": count if status == "successful" else 0,
                        "UnhealthyAllocs": 0,
                    }
                    for name, count in job.groups.items()
                },
                "Status": status,
                "StatusDescription": (
                    _DEPLOYMENT_DESCRIPTIONS.get(status, "") if description is None else description
                ),
                "CreateIndex": index,
                "ModifyIndex": index,
            }
        )
        return ident

    def handle(self, request: RecordedRequest) -> tuple[int, Any]:
        """Route one request: (status, JSON-able body) or raise _ApiError."""
        with self._lock:
            if self.record_requests:
                self.requests.append(request)
            delay = self._delays.pop(0) if self._delays else 0.0
            delay += self._slow.get(request.query.get("namespace") or "default", 0.0)
            failure = self._failures.pop(0) if self._failures else None
        if delay:
            time.sleep(delay)
        self._block(request)
        if failure is not None:
            status, body, echo = failure
            raise _ApiError(status, body + (_echo(request) if echo else ""))
        fault = self._job_fault(request)
        if fault is not None:
            status, text, late = fault
            time.sleep(late)
            raise _ApiError(status, text)
        with self._lock:
            for job_id, status in self._echoing.items():
                if request.path.startswith(f"/v1/job/{job_id}"):
                    raise _ApiError(status, "proxy: upstream refused the request" + _echo(request))
            region = request.query.get("region") or DEFAULT_REGION
            if region not in self.regions:
                raise _ApiError(500, "No path to region")
            namespace = request.query.get("namespace") or "default"
            if request.path == "/v1/jobs":
                return self._list_jobs(request, region, namespace)
            if request.path == "/v1/namespaces":
                return self._list_namespaces(request)
            if request.path == "/v1/scaling/policies":
                return self._list_policies(request, region, namespace)
            if request.path.startswith("/v1/scaling/policy/"):
                return self._read_policy(request, region, namespace)
            if not request.path.startswith("/v1/job/"):
                raise _ApiError(404, "")
            rest = request.path[len("/v1/job/") :]
            if rest.endswith("/scale"):
                job_id = rest[: -len("/scale")]
                if request.method == "GET":
                    self._authorize(request, namespace, "read-job", "read-job-scaling")
                    return 200, self._scale_status(job_id, region, namespace)
                if request.method in ("POST", "PUT"):
                    return self._scale(request, job_id, region, namespace)
            elif rest.endswith("/deployment"):
                job_id = rest[: -len("/deployment")]
                if request.method == "GET":
                    self._authorize(request, namespace, "read-job")
                    job = self._jobs.get((region, namespace, job_id))
                    return 200, (job.deployments[-1] if job and job.deployments else None)
            elif request.method == "GET":
                self._authorize(request, namespace, "read-job")
                job = self._jobs.get((region, namespace, rest))
                if job is None:
                    raise _ApiError(404, "job not found")
                return 200, _job_json(job)
            raise _ApiError(405, "Invalid method")

    def _job_fault(self, request: RecordedRequest) -> tuple[int, str, float] | None:
        """(status, text, delay) of the fault programmed for the request's job, if any."""
        with self._lock:
            for job_id, (status, text, methods, delay) in self._job_faults.items():
                about = request.path == f"/v1/job/{job_id}" or request.path.startswith(
                    f"/v1/job/{job_id}/"
                )
                if about and (methods is None or request.method in methods):
                    return status, text, delay + self._first_late.pop(job_id, 0.0)
        return None

    def _rules(self, request: RecordedRequest) -> Mapping[str, frozenset[str]]:
        """The ACL rules of the request's token (ACLs enabled); 403 for an unknown token."""
        assert self._acl is not None
        secret = request.headers.get("x-nomad-token")
        if secret is None:
            return self._acl.get("anonymous", {})
        if secret not in self._acl:
            raise _ApiError(403, "ACL token not found")
        return self._acl[secret]

    def _authorize(self, request: RecordedRequest, namespace: str, *any_of: str) -> None:
        if self._acl is None:
            return
        rules = self._rules(request)
        if request.headers.get("x-nomad-token") in self._management:
            return
        granted = rules.get(namespace, frozenset()) | rules.get("*", frozenset())
        if not granted & set(any_of):
            raise _ApiError(403, "Permission denied")

    def _block(self, request: RecordedRequest) -> None:
        """A blocking query: wait until the index passes `?index=` (or `?wait=` passes)."""
        if request.path not in ("/v1/jobs", "/v1/scaling/policies"):
            return
        try:
            index = int(request.query.get("index") or 0)
        except ValueError:
            return
        if index <= 0:
            return
        deadline = time.monotonic() + _wait_seconds(request.query.get("wait") or "5m")
        with self._changed:
            while self._index <= index:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._changed.wait(left)

    def _list_jobs(self, request: RecordedRequest, region: str, namespace: str) -> tuple[int, Any]:
        if request.method != "GET":
            raise _ApiError(405, "Invalid method")
        readable = self._listable(request, namespace, "list-jobs")
        prefix = request.query.get("prefix", "")
        with_meta = request.query.get("meta") == "true"
        stubs = [
            _job_stub(job, meta=with_meta)
            for (reg, ns, job_id), job in sorted(self._jobs.items())
            if reg == region and readable(ns) and job_id.startswith(prefix)
        ]
        return 200, stubs

    def _listable(
        self, request: RecordedRequest, namespace: str, *any_of: str
    ) -> Callable[[str], bool]:
        """Which namespaces' entries a list shows: `namespace`, or with `*` every namespace
        the token holds one of `any_of` in (Nomad filters a wildcard listing by the token's
        namespaces; a token that may list in none is refused)."""
        if namespace != "*" or self._acl is None:
            self._authorize(request, namespace, *any_of)
            return lambda ns: namespace in ("*", ns)
        rules = self._rules(request)
        if request.headers.get("x-nomad-token") in self._management or rules.get(
            "*", frozenset()
        ) & set(any_of):
            return lambda ns: True
        if not any(caps & set(any_of) for caps in rules.values()):
            raise _ApiError(403, "Permission denied")
        return lambda ns: bool(rules.get(ns, frozenset()) & set(any_of))

    def _list_namespaces(self, request: RecordedRequest) -> tuple[int, Any]:
        if request.method != "GET":
            raise _ApiError(405, "Invalid method")
        if self.namespaces_refusal is not None:
            raise _ApiError(*self.namespaces_refusal)
        rules = self._rules(request) if self._acl is not None else None
        if request.headers.get("x-nomad-token") in self._management:
            rules = None  # a management token sees every namespace
        prefix = request.query.get("prefix", "")
        return 200, [
            dict(stub)
            for name, stub in sorted(self._namespaces.items())
            if name.startswith(prefix) and (rules is None or _allows_namespace(rules, name))
        ]

    def _policies(self, region: str) -> list[dict[str, Any]]:
        """Every scaling policy of the region, as GET /v1/scaling/policy/:id shows it."""
        found = []
        for (reg, _, _), job in sorted(self._jobs.items()):
            if reg == region:
                found += [_scaling_json(job, group) for group in sorted(job.scaling)]
        return [p for p in found if p is not None]

    def _list_policies(
        self, request: RecordedRequest, region: str, namespace: str
    ) -> tuple[int, Any]:
        if request.method != "GET":
            raise _ApiError(405, "Invalid method")
        readable = self._listable(request, namespace, "list-scaling-policies", "read-job")
        job, kind = request.query.get("job", ""), request.query.get("type", "")
        stubs = [
            {
                "ID": p["ID"],
                "Enabled": p["Enabled"],
                "Type": p["Type"],
                "Target": p["Target"],
                "CreateIndex": p["CreateIndex"],
                "ModifyIndex": p["ModifyIndex"],
            }
            for p in self._policies(region)
            if readable(p["Target"]["Namespace"])
            and (not job or p["Target"]["Job"] == job)
            and (not kind or p["Type"] == kind)
        ]
        return 200, stubs

    def _read_policy(
        self, request: RecordedRequest, region: str, namespace: str
    ) -> tuple[int, Any]:
        if request.method != "GET":
            raise _ApiError(405, "Invalid method")
        self._authorize(request, namespace, "read-scaling-policy", "read-job")
        wanted = request.path[len("/v1/scaling/policy/") :]
        for policy in self._policies(region):
            if policy["ID"] == wanted and policy["Target"]["Namespace"] == namespace:
                return 200, policy
        raise _ApiError(404, "scaling policy not found")

    def _scale_status(self, job_id: str, region: str, namespace: str) -> dict[str, Any]:
        job = self._jobs.get((region, namespace, job_id))
        if job is None:
            raise _ApiError(404, "job not found")
        running = 0 if job.stopped else None
        return {
            "JobID": job.id,
            "Namespace": job.namespace,
            "JobCreateIndex": job.create_index,
            "JobModifyIndex": job.modify_index,
            "JobStopped": job.stopped,
            "TaskGroups": {
                name: {
                    "Desired": count,
                    "Placed": count if running is None else running,
                    "Running": count if running is None else running,
                    "Healthy": count if running is None else running,
                    "Unhealthy": 0,
                    "Events": [dict(e) for e in job.events[name]] if job.events.get(name) else None,
                }
                for name, count in job.groups.items()
                if name not in self.scale_status_omits
            },
        }

    def _scale(
        self, request: RecordedRequest, job_id: str, region: str, namespace: str
    ) -> tuple[int, Any]:
        """Nomad's Job.Scale, in its order: payload, ACL, validation, job, group, deployment,
        the job modify index."""
        if self.before_next_scale is not None:
            ahead, self.before_next_scale = self.before_next_scale, None
            ahead()
        body = request.body
        if not isinstance(body, dict):
            raise _ApiError(400, "Request body must be a JSON object")
        target = _field(body, "Target") or {}
        if target.get("Job") and target["Job"] != job_id:
            raise _ApiError(400, "job ID in payload did not match URL")
        self._authorize(request, namespace, "scale-job", "submit-job")
        if (
            self.reject_job_registration
            and self._acl is not None
            and request.headers.get("x-nomad-token") not in self._management
        ):
            # nomad/job_endpoint.go `registrationsAreAllowed`: management tokens only; the
            # HTTP layer answers structs.ErrJobRegistrationDisabled with a 403.
            raise _ApiError(
                403,
                "Job registration, dispatch, and scale are disabled by the scheduler configuration",
            )
        if target.get("Namespace") and target["Namespace"] != namespace:
            raise _ApiError(400, "namespace in payload did not match header")
        group_name = target.get("Group") or ""
        if not group_name:
            raise _ApiError(400, "missing task group name for scaling action")
        count, error = _field(body, "Count"), bool(_field(body, "Error"))
        if count is not None:
            if not isinstance(count, int) or count < 0:
                raise _ApiError(400, "scaling action count can't be negative")
            if error:
                raise _ApiError(400, "scaling action should not contain count if error is true")
        job = self._jobs.get((region, namespace, job_id))
        if job is None:
            raise _ApiError(404, f'job "{job_id}" not found')
        if job.type == "system" and count is not None and count > 1:
            raise _ApiError(400, 'jobs of type "system" can only be scaled to 1 or 0')
        if group_name not in job.groups:
            raise _ApiError(
                400, f'task group "{group_name}" specified for scaling does not exist in job'
            )
        previous = job.groups[group_name]
        reply: dict[str, Any] = {"Warnings": "", "KnownLeader": True, "LastContact": 0}
        eval_id: str | None = None
        if count is not None:
            # Nomad checks the group's scaling block (enabled or not) before the deployment;
            # PolicyOverride only reaches Sentinel on the job register, it skips neither.
            if group_name in job.scaling:
                low, high = job.scaling[group_name]
                if count < low:
                    raise _ApiError(
                        400, f"group count was less than scaling policy minimum: {count} < {low}"
                    )
                if high < count:
                    raise _ApiError(
                        400,
                        f"group count was greater than scaling policy maximum: {count} > {high}",
                    )
            latest = job.deployments[-1] if job.deployments else None
            if (
                latest is not None
                and latest["Status"] in ACTIVE_DEPLOYMENT_STATES
                and latest["JobCreateIndex"] == job.create_index
            ):
                raise _ApiError(400, "job scaling blocked due to active deployment")
            # nomad/job_endpoint.go (1.8.2+, `nomad job scale -check-index`): a plain error,
            # which the HTTP layer answers with a 500. Compared with the job's
            # JobModifyIndex (a new version moves it), not its ModifyIndex.
            wanted = _field(body, "JobModifyIndex")
            if isinstance(wanted, int) and wanted > 0 and wanted != job.spec_index:
                raise _ApiError(
                    500,
                    f"Enforcing job modify index {wanted}: job exists with conflicting job "
                    f"modify index: {job.spec_index}",
                )
            job.groups[group_name] = count
            job.version += 1
            job.modify_index = job.spec_index = self._next_index()
            job.submit_time = time.time_ns()
            self._publish(job, "JobRegistered", job.modify_index)
            reply["JobModifyIndex"] = job.modify_index
            if not (job.periodic or job.parameterized):
                eval_id = str(uuid.uuid4())
                reply["EvalID"] = eval_id
                reply["EvalCreateIndex"] = self._next_index()
            if self.deployment_on_scale and job.type == "service":
                self._new_deployment(job, self.deployment_on_scale)
        else:
            reply["JobModifyIndex"] = job.modify_index
        event = _event(
            count=count,
            previous=previous,
            message=_field(body, "Message") or "",
            error=error,
            meta=_field(body, "Meta"),
            eval_id=eval_id,
        )
        event["CreateIndex"] = reply["Index"] = self._next_index()
        job.events[group_name] = [event, *job.events.get(group_name, [])][:20]
        return 200, reply


def _echo(request: RecordedRequest) -> str:
    """The request quoted back: its line and every header, as a proxy's error page shows it."""
    headers = "".join(f"\n{name}: {value}" for name, value in request.headers.items())
    return f"\n--- request ---\n{request.method} {request.path}{headers}"


def _field(body: Mapping[str, Any], name: str) -> Any:
    """A top-level field matched case-insensitively, like Go's encoding/json does."""
    for key, value in body.items():
        if key.lower() == name.lower():
            return value
    return None


def _event(
    *,
    count: int | None,
    previous: int,
    message: str,
    error: bool,
    meta: Any,
    eval_id: str | None,
) -> dict[str, Any]:
    return {
        "Time": time.time_ns(),
        "Count": count,
        "PreviousCount": previous,
        "Message": message,
        "Error": error,
        "Meta": meta,
        "EvalID": eval_id,
        "CreateIndex": 0,
    }


def _job_json(job: _Job) -> dict[str, Any]:
    return {
        "Region": job.region,
        "Namespace": job.namespace,
        "ID": job.id,
        "ParentID": "",
        "Name": job.id,
        "Type": job.type,
        "Priority": 50,
        "AllAtOnce": False,
        "Datacenters": ["dc1"],
        "NodePool": "default",
        "TaskGroups": [
            {
                "Name": name,
                "Count": count,
                "Tasks": [{"Name": name, "Driver": "docker", "Config": {"image": "busybox"}}],
                "Meta": dict(job.group_meta.get(name, {})) or None,
                "Scaling": _scaling_json(job, name),
            }
            for name, count in job.groups.items()
        ],
        "Periodic": (
            {"Enabled": True, "Spec": "*/5 * * * *", "SpecType": "cron", "ProhibitOverlap": True}
            if job.periodic
            else None
        ),
        "ParameterizedJob": (
            {"Payload": "optional", "MetaRequired": None, "MetaOptional": None}
            if job.parameterized
            else None
        ),
        "Payload": None,
        "Meta": dict(job.meta) or None,
        "Stop": job.stopped,
        "Status": "dead" if job.stopped else "running",
        "StatusDescription": "",
        "Stable": True,
        "Version": job.version,
        "SubmitTime": job.submit_time,
        "CreateIndex": job.create_index,
        "ModifyIndex": job.modify_index,
        "JobModifyIndex": job.spec_index,
    }


def _scaling_json(job: _Job, group: str) -> dict[str, Any] | None:
    """A group's stored scaling policy as GET /v1/job/:id shows it (structs.ScalingPolicy)."""
    if group not in job.scaling:
        return None
    low, high = job.scaling[group]
    return {
        "ID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{job.namespace}/{job.id}/{group}")),
        "Type": "horizontal",
        "Target": {"Namespace": job.namespace, "Job": job.id, "Group": group},
        "Policy": json.loads(json.dumps(job.policies.get(group, {}))),
        "Min": low,
        "Max": high,
        "Enabled": job.policies_enabled,
        "CreateIndex": job.create_index,
        # Registering the job again stores its policies again; scaling it does not.
        "ModifyIndex": job.create_index,
    }


def _allows_namespace(rules: Mapping[str, frozenset[str]], namespace: str) -> bool:
    """Nomad's `acl.AllowNamespace`: any capability but `deny` in the namespace's own rule,
    or in the `*` one when it has none."""
    capabilities = rules.get(namespace, rules.get("*", frozenset()))
    return bool(capabilities) and "deny" not in capabilities


def _namespace(
    name: str,
    description: str,
    index: int,
    meta: Mapping[str, str] | None = None,
    quota: str = "",
) -> dict[str, Any]:
    """A namespace as GET /v1/namespaces lists it (structs.Namespace)."""
    return {
        "Name": name,
        "Description": description,
        "Quota": quota,
        "Meta": dict(meta) if meta else None,
        "Capabilities": None,
        "CreateIndex": index,
        "ModifyIndex": index,
    }


def _wait_seconds(text: str) -> float:
    """A blocking query's `wait` (Go duration such as 5m, 30s, 500ms), at most 10 minutes."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return min(600.0, float(text[: -len(unit)]) * units[unit])
    return 300.0


def _job_stub(job: _Job, *, meta: bool = False) -> dict[str, Any]:
    extra = {"Meta": dict(job.meta) or None} if meta else {}
    return {
        **extra,
        "ID": job.id,
        "ParentID": "",
        "Name": job.id,
        "Namespace": job.namespace,
        "Datacenters": ["dc1"],
        "NodePool": "default",
        "Type": job.type,
        "Priority": 50,
        "Periodic": job.periodic,
        "ParameterizedJob": job.parameterized,
        "Stop": job.stopped,
        "Status": "dead" if job.stopped else "running",
        "StatusDescription": "",
        "JobSummary": {
            "JobID": job.id,
            "Namespace": job.namespace,
            "Summary": {
                name: {"Queued": 0, "Complete": 0, "Failed": 0, "Running": count, "Starting": 0}
                for name, count in job.groups.items()
            },
        },
        "CreateIndex": job.create_index,
        "ModifyIndex": job.modify_index,
        "JobModifyIndex": job.spec_index,
        "SubmitTime": job.submit_time,
    }


# --- HTTP plumbing --------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        stand_in: NomadApiStandIn,
        tls: ssl.SSLContext | None,
    ) -> None:
        super().__init__(address, handler)
        self.stand_in = stand_in
        self.tls = tls

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        if self.tls is not None:
            # Handshake lazily in the connection's own thread, so one bad client (e.g. one
            # that rejects our certificate) cannot stall the accept loop.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # failed TLS handshakes and dropped connections are expected in tests


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        arrived = time.clock_gettime(time.CLOCK_BOOTTIME)
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        request = RecordedRequest(
            method=self.command,
            path=unquote(url.path),
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            at=arrived,
        )
        if request.path == "/v1/event/stream" and request.method == "GET":
            self.server.stand_in.serve_events(self, request)
            return
        try:
            status, payload = self.server.stand_in.handle(request)
        except _ApiError as exc:
            self._send(exc.status, exc.text.encode(), "text/plain; charset=utf-8")
            return
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Nomad-Index", str(self.server.stand_in._index))
        self.send_header("X-Nomad-KnownLeader", "true")
        self.send_header("X-Nomad-LastContact", "0")
        self.end_headers()
        self.wfile.write(data)


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def nomad_api_session() -> Iterator[NomadApiStandIn]:
    """One plain-HTTP stand-in for the whole session; use `nomad_api` in tests."""
    stand_in = NomadApiStandIn()
    stand_in.start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def nomad_api(nomad_api_session: NomadApiStandIn) -> NomadApiStandIn:
    """The plain-HTTP stand-in with a fresh state (no jobs, no ACLs, empty request log)."""
    nomad_api_session.reset()
    return nomad_api_session


@pytest.fixture(scope="session")
def nomad_api_tls_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NomadApiStandIn]:
    """One HTTPS stand-in whose certificate is signed by a throwaway CA (`.ca_cert`)."""
    stand_in = NomadApiStandIn(tls_dir=tmp_path_factory.mktemp("nomad-tls"))
    stand_in.start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def nomad_api_tls(nomad_api_tls_session: NomadApiStandIn) -> NomadApiStandIn:
    """The HTTPS stand-in with a fresh state; `.env` includes NOMAD_CACERT."""
    nomad_api_tls_session.reset()
    return nomad_api_tls_session
