"""Nomad as a discovery source: task groups that opt in by `meta`, and Nomad's scaling policies.

Both lists are read with Nomad's blocking queries: given the `index` of the last answer,
Nomad holds the request until something changes (or `wait` passes), so a watcher sees a
change within moments and costs nothing while nothing changes. Scaling policies are read
in every namespace the token may read (`namespace=*`); jobs in the namespaces asked for
(those the templates look in), or in every one the token may read when one looks in all.

A job whose read Nomad refuses (403: the token may list jobs in its namespace but not read
them) is that job's own problem, not the listing's: it is left out if it was never read,
or keeps the groups read last, and the listing says so (`Listing.refused`). It is asked
again when its `JobModifyIndex` moves, or at the next full read `REDECODE_AFTER` seconds on.
So is a scaling policy whose read Nomad refuses (it keeps its version read last), asked
again when its `ModifyIndex` moves.

A list of every namespace (`namespace=*`) holds only the namespaces where the token may
list (`list-jobs`, `list-scaling-policies`): Nomad leaves the others out without a word.
So after such a list, at the first and then every `AUDIT_EVERY` seconds at most, the
namespaces the token sees (`GET /v1/namespaces`: those where it has any capability) that
the list showed nothing of are each asked for an entry no ID can have (`prefix=" "`: Nomad
refuses a job ID with a space); a 403 names a namespace whose entries the list left out
(`Listing.unlisted`). A namespace list Nomad does not answer is logged once (the check
could not be made), and never fails the listing. The check runs beside the listing, a few
namespaces at once, and a listing waits for it `AUDIT_WAIT` seconds at most, so that it
never holds the watch of the list for long (`nomad_audit`).

Job stubs carry neither group names' meta nor group meta, so each job is read once, and
again only when its `JobModifyIndex` moves (a new version, e.g. after a scale); reads run
a few at a time. A scaling policy is read again only when its `ModifyIndex` moves.

Memory (measured at 10,000 jobs on the stand-in): the job list is read again after every
change and every `wait`; its 6 MB of JSON decode to some 25 MB of stubs (with their
`JobSummary`), freed at once but leaving the allocator's arenas fragmented (+19 MB of
resident memory after one listing, +10 MB more after the next). A list is therefore decoded
keeping only the fields read here (`_JOB_STUB`, `_POLICY_STUB`); and a blocking query that
ends with the index it was given (its `wait` passed with no change) is not decoded at all:
the last listing stands (a full one at least every `REDECODE_AFTER` seconds, so what a
token may read is seen again even while no job changes). Jobs are read by a few
threads that each take the next job, not through a future per job (see `_read_all`). What
a group keeps is shared where it repeats from job to job: its namespace, group name and
meta strings are interned, and groups with the same meta share one (never modified) dict.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import nomad.api
import requests
from nomad.api.exceptions import BaseNomadException

from autoscaler.adapters.discovery.nomad_audit import PROBERS, NamespaceAudit
from autoscaler.adapters.exhausted import out_of_resources
from autoscaler.adapters.targets.nomad_errors import NETWORK_ERRORS, redact_address, scrub, short
from autoscaler.adapters.targets.nomad_session import shared_session
from autoscaler.adapters.targets.nomad_settings import NomadSettings
from autoscaler.core.discovered import NomadGroup, NomadScalingPolicy
from autoscaler.errors import DiscoveryError

log = logging.getLogger(__name__)

_T = TypeVar("_T")
READERS = 8  # jobs or policies read at once
# A list answered with an unchanged index is decoded anyway when the last decoded one is older.
REDECODE_AFTER = 600.0
_SCALABLE_TYPES = ("service",)  # batch jobs end, system jobs run one per node
# Seconds between two checks of the namespaces a list of every namespace left out (`_audit`).
AUDIT_EVERY = 300.0
# Longest a listing waits for such a check it started (the watch is held meanwhile).
AUDIT_WAIT = 1.0
# Requests discovery may have in flight at once: per list (jobs, scaling policies) its
# readers beside the probes of its check; the shared session keeps as many connections
# open for reuse besides the evaluations' (`shared_session`).
CONNECTIONS = 2 * (READERS + PROBERS)
_NO_ID = " "  # a prefix no job ID has (Nomad refuses one with a space) nor policy's job
# The fields of a list's entries read here, at any depth (a policy's `Target` holds the
# last three); everything else in a stub is dropped while the list is decoded.
_JOB_STUB = frozenset(
    {"ID", "Namespace", "Type", "Stop", "Periodic", "ParameterizedJob", "ParentID"}
    | {"JobModifyIndex", "ModifyIndex"}
)
_POLICY_STUB = frozenset(("ID", "Type", "Target", "ModifyIndex", "Namespace", "Job", "Group"))


@dataclass(frozen=True)
class Listing(Generic[_T]):
    """What a list returned, and Nomad's index for it: pass it back to wait for a change."""

    items: tuple[_T, ...]
    index: int
    refused: tuple[Refused, ...] = ()  # jobs (or policies) the token may not read (403)
    # namespaces the token sees whose entries the list left out: it may not list there
    unlisted: tuple[str, ...] = ()


@dataclass(frozen=True)
class Refused:
    """A job (or, with `group`, the scaling policy of that job's group) Nomad refused to let
    the token read: left out of a listing if it was never read (`kept` False), else the
    version read last stands in it."""

    namespace: str
    job: str
    kept: bool
    group: str | None = None  # a scaling policy's target group; None for a job


class NomadDiscovery:
    """Lists task groups (with their meta) and scaling policies from one Nomad cluster."""

    def __init__(
        self,
        settings: NomadSettings,
        *,
        session: requests.Session | None = None,
        whole_audit: bool = False,
    ) -> None:
        """`whole_audit`: a listing waits for the whole check of the namespaces a list left
        out (`_audit`), not `AUDIT_WAIT` seconds at most (a read made once: nothing to hold,
        and what it leaves out must be told now)."""
        self._settings = settings
        self._shown = redact_address(settings.address)
        if session is None:  # shared with the targets, and sized for our requests too
            session = shared_session(settings, connections=CONNECTIONS)
        common: dict[str, Any] = {
            "address": settings.address.rstrip("/"),
            "token": settings.token,
            "timeout": settings.timeout,
            "verify": settings.verify(),
            "cert": settings.cert(),
            "session": session,
        }
        self._jobs = nomad.api.Jobs(**common)
        self._job = nomad.api.Job(**common)
        self._scaling = nomad.api.Scaling(**common)
        self._namespaces = nomad.api.Namespaces(**common)
        self._lock = threading.Lock()
        self._job_cache: dict[tuple[str, str], tuple[int, tuple[NomadGroup, ...]]] = {}
        # jobs whose read was refused: their JobModifyIndex then, and when (`_stale`)
        self._refused: dict[tuple[str, str], tuple[int, float]] = {}
        self._policy_cache: dict[tuple[str, str], tuple[int, NomadScalingPolicy]] = {}
        self._policy_refused: dict[tuple[str, str], tuple[int, float]] = {}  # as `_refused`
        self._metas: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}  # shared metas
        # Per list, the last listing returned and when it was decoded (`_unchanged`).
        self._last: dict[str, tuple[Listing[Any], float]] = {}
        # Per list: the check of the namespaces it left out (`_audit`).
        self._audits: dict[str, NamespaceAudit] = {}
        self._whole_audit = whole_audit
        self._unchecked: str | None = None  # why the namespace list could not be read
        self._closed = threading.Event()  # `close`: no check of the namespaces goes on

    def __repr__(self) -> str:
        return f"NomadDiscovery({self._shown!r})"

    def close(self) -> None:
        """Stop the checks of the namespaces lists leave out (`_audit`): no round starts,
        and the one under way asks no other namespace (those asked end within their
        timeout, in threads that do not hold the process's exit). The lists can still be
        read, without the check."""
        self._closed.set()

    # --- task groups -----------------------------------------------------------------------

    def groups(
        self, *, index: int = 0, wait: float = 0.0, namespaces: Collection[str] = ("*",)
    ) -> Listing[NomadGroup]:
        """Every task group of the running service jobs, with job meta overlaid by group meta.

        Only jobs of `namespaces` are listed and read (`*`: every namespace the token may
        list). With `index` > 0, waits (up to `wait` seconds) until Nomad's job list
        changes past it. Raises `DiscoveryError` when Nomad cannot be read; a job whose
        read is refused (403) is only named in `refused`.
        """
        scope = frozenset(namespaces)
        kind = "jobs " + ",".join(sorted(scope))  # one last listing per set of namespaces
        every = len(scope) > 1 or "*" in scope  # listed with `namespace=*`
        stubs, new_index = self._list(
            self._jobs,
            (),
            "list-jobs",
            index=index,
            wait=wait,
            fields=_JOB_STUB,
            reuse=self._unchanged(kind, index),
            namespace="*" if every else next(iter(scope)),
        )
        unlisted: tuple[str, ...] = ()
        if every:
            seen = None if stubs is None else {str(s.get("Namespace") or "default") for s in stubs}
            unlisted = self._audit(
                kind,
                seen,
                api=self._jobs,
                parts=(),
                capability="list-jobs",
                probe={"prefix": _NO_ID},
                scope=scope,
            )
        if stubs is None:
            return self._reused(kind, unlisted)
        wanted: dict[tuple[str, str], int] = {}
        for stub in stubs:
            key = (str(stub.get("Namespace") or "default"), str(stub["ID"]))
            if _scalable(stub) and ("*" in scope or key[0] in scope):
                wanted[key] = int(stub.get("JobModifyIndex") or stub.get("ModifyIndex") or 0)
        now = time.monotonic()
        with self._lock:
            stale = _stale(wanted, self._job_cache, self._refused, now)
        read: dict[tuple[str, str], tuple[NomadGroup, ...] | _Refused]
        read = self._read_all(stale, _or_refusal(self._read_job))
        with self._lock:
            _store(read, wanted, self._job_cache, self._refused, now)
            if len(self._metas) > 2 * len(self._job_cache) + 64:
                self._metas.clear()  # metas of jobs gone or changed: start afresh
            found = [
                g for k in sorted(wanted) if k in self._job_cache for g in self._job_cache[k][1]
            ]
            refused = tuple(
                Refused(ns, job, kept=(ns, job) in self._job_cache)
                for ns, job in sorted(self._refused)
            )
        listing = Listing(tuple(found), new_index, refused, unlisted)
        return self._decoded(kind, listing, complete=len(read) == len(stale))

    def _read_job(self, key: tuple[str, str]) -> tuple[NomadGroup, ...] | None:
        """The job's groups; None when Nomad says it is not there (404).

        The list just showed it, so a 404 is not taken as its having no groups: that was
        cached at its `JobModifyIndex`, and a proxy's 404 (an ingress with no backend while
        Nomad restarts) dropped its targets until the job changed again, which a job no
        policy scales may never do. It keeps the groups read last (none if never read) and
        is read again at the next pass; the list says whether it is gone. So is an answer
        that is no job (`{}`): a failed read, not a job without groups."""
        namespace, job_id = key
        parts = (quote(job_id, safe=""),)
        job = self._get(self._job, parts, "read-job", namespace=namespace)
        if job is None:
            return None
        if not isinstance(job.get("TaskGroups"), list):  # every job has one group at least
            raise DiscoveryError(
                f"Nomad at {self._shown} answered GET {_path(self._job, parts)} with an "
                "object that is no job (no TaskGroups)"
            )
        if job.get("Stop") or job.get("Periodic") or job.get("ParameterizedJob"):
            return ()
        job_meta = _meta(job.get("Meta"))
        return tuple(
            NomadGroup(
                namespace=sys.intern(namespace),
                job=job_id,
                group=sys.intern(str(group.get("Name"))),
                meta=self._shared_meta({**job_meta, **_meta(group.get("Meta"))}),
                region=self._settings.region,
            )
            for group in job["TaskGroups"]
            if isinstance(group, dict) and group.get("Name")
        )

    def _shared_meta(self, meta: dict[str, str]) -> dict[str, str]:
        """`meta` with its strings interned, or the equal dict another group already holds
        (10,000 opted-in jobs usually carry a handful of distinct metas)."""
        key = tuple(sorted((sys.intern(k), sys.intern(v)) for k, v in meta.items()))
        with self._lock:
            return self._metas.setdefault(key, dict(key))

    # --- scaling policies ----------------------------------------------------------------

    def scaling_policies(self, *, index: int = 0, wait: float = 0.0) -> Listing[NomadScalingPolicy]:
        """Nomad's horizontal scaling policies of task groups (jobs' `scaling` blocks).

        With `index` > 0, waits (up to `wait` seconds) for a change past it. Raises
        `DiscoveryError` when Nomad cannot be read; a policy whose read is refused (403) is
        only named in `refused` (with its target group).
        """
        stubs, new_index = self._list(
            self._scaling,
            ("policies",),
            "list-scaling-policies",
            index=index,
            wait=wait,
            extra={"type": "horizontal"},
            fields=_POLICY_STUB,
            reuse=self._unchanged("policies", index),
        )
        seen = None
        if stubs is not None:
            seen = {str((s.get("Target") or {}).get("Namespace") or "default") for s in stubs}
        unlisted = self._audit(
            "policies",
            seen,
            api=self._scaling,
            parts=("policies",),
            capability="list-scaling-policies",
            probe={"job": _NO_ID, "type": "horizontal"},
            scope=("*",),
        )
        if stubs is None:
            return self._reused("policies", unlisted)
        wanted: dict[tuple[str, str], int] = {}  # (ID, namespace) -> ModifyIndex
        targets: dict[tuple[str, str], tuple[str, str]] = {}  # -> (job, group)
        for stub in stubs:
            target = stub.get("Target") or {}
            if stub.get("Type", "horizontal") == "horizontal" and target.get("Job"):
                key = (str(stub["ID"]), str(target.get("Namespace") or "default"))
                wanted[key] = int(stub.get("ModifyIndex") or 0)
                targets[key] = (str(target["Job"]), str(target.get("Group") or ""))
        now = time.monotonic()
        with self._lock:
            stale = _stale(wanted, self._policy_cache, self._policy_refused, now)
        read: dict[tuple[str, str], NomadScalingPolicy | _Refused]
        read = self._read_all(stale, _or_refusal(self._read_policy))
        with self._lock:
            _store(read, wanted, self._policy_cache, self._policy_refused, now)
            found = [self._policy_cache[k][1] for k in sorted(wanted) if k in self._policy_cache]
            named = sorted((ns, *targets[pid, ns], pid) for pid, ns in self._policy_refused)
            refused = tuple(
                Refused(ns, job, kept=(pid, ns) in self._policy_cache, group=group)
                for ns, job, group, pid in named
            )
        listing = Listing(tuple(found), new_index, refused, unlisted)
        return self._decoded("policies", listing, complete=len(read) == len(stale))

    def _read_policy(self, key: tuple[str, str]) -> NomadScalingPolicy | None:
        policy_id, namespace = key
        answer = self._get(
            self._scaling,
            ("policy", quote(policy_id, safe="")),
            "read-scaling-policy",
            namespace=namespace,
        )
        if answer is None:
            return None
        target = {str(k): str(v) for k, v in (answer.get("Target") or {}).items()}
        if self._settings.region and not target.get("Region"):
            # Nomad's Target names no region: it is the one read, as for the groups that
            # templates expand (`region=`). Without it, the same group had two target keys,
            # and a policy taking it over from a template missed its cooldown.
            target["Region"] = self._settings.region
        return NomadScalingPolicy(
            id=str(answer.get("ID") or policy_id),
            type=str(answer.get("Type") or "horizontal"),
            enabled=bool(answer.get("Enabled", True)),
            min=_int(answer.get("Min")),
            max=_int(answer.get("Max")),
            target=target,
            policy=dict(answer.get("Policy") or {}),
            modify_index=int(answer.get("ModifyIndex") or 0),
        )

    # --- namespaces a list of every namespace left out -------------------------------------

    def _audit(
        self,
        kind: str,
        seen: Collection[str] | None,
        *,
        api: Any,
        parts: tuple[str, ...],
        capability: str,
        probe: Mapping[str, str],
        scope: Collection[str],
    ) -> tuple[str, ...]:
        """The namespaces of `scope` (`*`: every one the token sees) whose entries the list
        `kind` just answered (`namespace=*`) left out because the token may not list there.

        `seen`: the namespaces of its entries (None: the answer was not decoded, the last
        one's stand). Checked at the first call, then `AUDIT_EVERY` seconds after the last
        check at most, not at every blocking query; a namespace that showed entries needs
        no asking. The check runs beside the listing (`nomad_audit`), which waits for it
        `AUDIT_WAIT` seconds at most (all of it with `whole_audit`). A check that cannot be
        made (the namespace list, or one namespace's, not answered) leaves the last finding
        standing: it never fails the listing."""
        with self._lock:
            audit = self._audits.get(kind)
            if audit is None:
                what = "jobs" if capability == "list-jobs" else "scaling policies"
                ask = partial(self._probe, api, parts, capability, probe)
                audit = NamespaceAudit(
                    what, scope=scope, visible=self._visible, probe=ask, stop=self._closed
                )
                self._audits[kind] = audit
        wait = None if self._whole_audit else AUDIT_WAIT
        return audit.finding(seen, every=AUDIT_EVERY, wait=wait)

    def _probe(
        self,
        api: Any,
        parts: tuple[str, ...],
        capability: str,
        probe: Mapping[str, str],
        namespace: str,
    ) -> bool | None:
        """Whether the token may not list in `namespace` (a 403 to `probe` there); None when
        Nomad does not answer."""
        params = {"namespace": namespace, **probe}
        timeout = self._settings.timeout
        try:
            self._send(api, parts, capability, params, timeout, namespace=namespace, single=True)
        except _Refused:
            return True
        except (DiscoveryError, _NotFound) as exc:  # no answer: what was found stands
            log.debug("cannot check whether the token may list in %r: %s", namespace, exc)
            return None
        return False

    def _visible(self) -> set[str] | None:
        """The namespaces the token sees (any capability there: GET /v1/namespaces); None,
        logged once until it answers again, when Nomad does not answer the list."""
        try:
            timeout = self._settings.timeout
            response = self._send(self._namespaces, (), "", {}, timeout, namespace="*")
            answer = _json(response, self._shown)
            if not isinstance(answer, list):
                raise DiscoveryError(
                    f"Nomad at {self._shown} answered GET /v1/namespaces with no list"
                )
        except DiscoveryError as exc:
            with self._lock:
                first, self._unchecked = self._unchecked is None, str(exc)
            if first:
                log.warning(
                    "cannot check in which namespaces the Nomad token may not list jobs (or "
                    "scaling policies), whose entries a list of every namespace leaves out "
                    "without a word: %s; discovery goes on without the check",
                    exc,
                )
            return None
        with self._lock:
            again, self._unchecked = self._unchecked is not None, None
        if again:
            log.info("the namespaces the Nomad token may not list in can be checked again")
        return {str(ns["Name"]) for ns in answer if isinstance(ns, dict) and ns.get("Name")}

    # --- unchanged lists -------------------------------------------------------------------

    def _unchanged(self, kind: str, index: int) -> bool:
        """Whether an answer to a blocking query on `index` that keeps that index may stand
        for the last listing: it was that listing's index, decoded within `REDECODE_AFTER`.

        Nomad's index moves with every change to the list, so an answer with the index it was
        asked about (the `wait` passed) holds the same entries; decoding it again every
        `wait` (6 MB of JSON at 10,000 jobs) only churned the allocator's arenas, and each
        round left resident memory a few MB higher.
        """
        with self._lock:
            last = self._last.get(kind)
        return (
            index > 0
            and last is not None
            and last[0].index == index
            and time.monotonic() - last[1] < REDECODE_AFTER
        )

    def _reused(self, kind: str, unlisted: tuple[str, ...]) -> Listing[Any]:
        """The last listing of `kind`, standing for an answer not decoded (`_unchanged`),
        with what the last check of the namespaces it leaves out found (`_audit`)."""
        with self._lock:
            last, decoded = self._last[kind]
            if last.unlisted != unlisted:
                last = replace(last, unlisted=unlisted)
                self._last[kind] = (last, decoded)
        return last

    def _decoded(self, kind: str, listing: Listing[_T], *, complete: bool) -> Listing[_T]:
        """`listing`, kept as the last of `kind`; one that could not read every entry it
        had to (a 404 on a listed job or policy) may not stand for the next (`_unchanged`):
        those entries are read at the next pass, not at the next full read."""
        with self._lock:
            self._last[kind] = (listing, time.monotonic() if complete else -math.inf)
        return listing

    # --- requests --------------------------------------------------------------------------

    def _read_all(self, keys: Iterable[_K], read: Callable[[_K], _R | None]) -> dict[_K, _R]:
        """`read(key)` for every key, `READERS` at a time; a key gone meanwhile is left out.

        The first failure (in key order) is raised once the reads in flight have ended, and
        no read starts after a failure. Each reader thread takes the next key itself: a
        `ThreadPoolExecutor.map` would create a future per key up front (10,000 at once), and
        the objects kept while those are freed one by one left some 15 MB of the allocator's
        arenas fragmented (measured at 10,000 jobs).
        """
        keys = list(keys)
        results: list[_R | None] = [None] * len(keys)
        failures: dict[int, BaseException] = {}
        pending = iter(range(len(keys)))
        lock = threading.Lock()

        def reader() -> None:
            while True:
                with lock:
                    position = None if failures else next(pending, None)
                if position is None:
                    return
                try:
                    results[position] = read(keys[position])
                except BaseException as exc:  # raised below, in the caller's thread
                    with lock:
                        failures[position] = exc

        threads = [
            threading.Thread(target=reader, name=f"nomad read {i}", daemon=True)
            for i in range(min(READERS, len(keys)))
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[min(failures)]
        return {k: r for k, r in zip(keys, results, strict=True) if r is not None}

    def _list(
        self,
        api: Any,
        parts: tuple[str, ...],
        capability: str,
        *,
        index: int,
        wait: float,
        fields: frozenset[str],
        extra: Mapping[str, str] | None = None,
        reuse: bool = False,
        namespace: str = "*",
    ) -> tuple[list[dict[str, Any]] | None, int]:
        """The entries of a list (those with an `ID`) in `namespace`, holding only `fields`,
        and the index; with `reuse`, None (nothing decoded) when Nomad answers with `index`
        itself."""
        params = {"namespace": namespace, **(extra or {})}
        timeout = self._settings.timeout
        if index > 0 and wait > 0:
            params.update({"index": str(index), "wait": f"{int(wait * 1000)}ms"})
            timeout += wait * 17 / 16  # Nomad adds up to wait/16 of jitter
        response = self._send(api, parts, capability, params, timeout, namespace=namespace)
        try:
            new_index = int(response.headers.get("X-Nomad-Index", "0"))
        except ValueError:
            new_index = 0
        if reuse and new_index == index:
            return None, new_index
        body = _json(response, self._shown, _keeping(fields))
        if not isinstance(body, list):
            path = _path(api, parts)
            raise DiscoveryError(f"Nomad at {self._shown} answered {path} with no list")
        return [s for s in body if isinstance(s, dict) and s.get("ID")], new_index

    def _get(
        self, api: Any, parts: tuple[str, ...], capability: str, *, namespace: str
    ) -> dict[str, Any] | None:
        """GET one object as JSON; None when Nomad says it is not there (404).

        Only a 404 says it is gone: an answer with no object (an empty body, `null`, from a
        proxy or a Nomad restarting) is a failed read, so the job's groups (or the policy)
        found last stay in force instead of being dropped as if the job were deleted."""
        try:
            response = self._send(
                api,
                parts,
                capability,
                {"namespace": namespace},
                self._settings.timeout,
                namespace=namespace,
                single=True,
            )
        except _NotFound:
            return None
        answer = _json(response, self._shown)
        if not isinstance(answer, dict):
            got = (
                "nothing (an empty body or null)"
                if answer is None
                else f"a JSON {type(answer).__name__}"
            )
            raise DiscoveryError(
                f"Nomad at {self._shown} answered GET {_path(api, parts)} with {got}, not an object"
            )
        return answer

    def _send(
        self,
        api: Any,
        parts: tuple[str, ...],
        capability: str,
        params: dict[str, str],
        timeout: float,
        *,
        namespace: str,
        single: bool = False,
    ) -> requests.Response:
        if self._settings.region:
            params["region"] = self._settings.region
        try:
            response: requests.Response = api.request(
                *parts, method="get", params=params, timeout=timeout
            )
        except BaseNomadException as exc:
            raise self._error(exc, _path(api, parts), capability, namespace, single) from None
        return response

    def _error(
        self, exc: BaseNomadException, path: str, capability: str, namespace: str, single: bool
    ) -> Exception:
        """Our error for python-nomad's; `_NotFound` for a single object that is gone."""
        address = self._shown
        exhausted = out_of_resources(exc)
        if exhausted is not None:
            return DiscoveryError(f"cannot reach Nomad at {address}: {exhausted}")
        answer = exc.nomad_resp
        if not isinstance(answer, requests.Response):
            cause = short(answer, self._settings.address)
            if isinstance(answer, NETWORK_ERRORS):
                return DiscoveryError(f"Nomad at {address} unreachable ({path}): {cause}")
            return DiscoveryError(f"cannot call Nomad at {address} ({path}): {cause}")
        status = answer.status_code
        text = scrub(answer.text.strip(), self._settings.address)[:300]
        if status == 404 and single:
            return _NotFound(path)
        if status == 403:
            where = "every namespace" if namespace == "*" else f"namespace {namespace!r}"
            message = f"Nomad refused GET {path} ({text})" + (
                f": the token needs the '{capability}' capability in {where}" if capability else ""
            )
            return _Refused(message) if single else DiscoveryError(message)
        return DiscoveryError(f"Nomad answered GET {path} with HTTP {status}: {text}")


class _NotFound(Exception):
    """A job or policy that disappeared between the list and the read."""


class _Refused(DiscoveryError):
    """A job or policy the token may not read (403): that job's or policy's alone (see
    `_or_refusal`), not the listing's."""


_K = TypeVar("_K")
_R = TypeVar("_R")


def _or_refusal(read: Callable[[_K], _R | None]) -> Callable[[_K], _R | _Refused | None]:
    """`read`, answering a refusal (403) with it instead of raising it."""

    def reading(key: _K) -> _R | _Refused | None:
        try:
            return read(key)
        except _Refused as refusal:
            return refusal

    return reading


def _stale(
    wanted: Mapping[_K, int],
    cache: Mapping[_K, tuple[int, Any]],
    refused: Mapping[_K, tuple[int, float]],
    now: float,
) -> list[_K]:
    """The keys of `wanted` (key -> modify index) to read: not in `cache` at that index, and
    not refused at that index less than `REDECODE_AFTER` ago. A refused one is not asked
    again at every pass (a namespace of 1,000 jobs the token may not read cost 1,000
    refused reads at each change of any job)."""
    stale = []
    for key, index in wanted.items():
        asked = refused.get(key)
        if cache.get(key, (-1,))[0] != index and not (
            asked is not None and asked[0] == index and now - asked[1] < REDECODE_AFTER
        ):
            stale.append(key)
    return stale


def _store(
    read: Mapping[_K, _R | _Refused],
    wanted: Mapping[_K, int],
    cache: dict[_K, tuple[int, _R]],
    refused: dict[_K, tuple[int, float]],
    now: float,
) -> None:
    """Put what was `read` in `cache`, or a refusal in `refused` (with its modify index and
    `now`: `_stale`), and forget the keys no longer `wanted`."""
    for key, value in read.items():
        if isinstance(value, _Refused):
            refused[key] = (wanted[key], now)
        else:
            refused.pop(key, None)
            cache[key] = (wanted[key], value)
    for key in [k for k in cache if k not in wanted]:
        del cache[key]
    for key in [k for k in refused if k not in wanted]:
        del refused[key]


def _scalable(stub: Mapping[str, Any]) -> bool:
    """A running service job, not periodic nor parameterized (those launch child jobs)."""
    return (
        stub.get("Type", "service") in _SCALABLE_TYPES
        and not stub.get("Stop")
        and not stub.get("Periodic")
        and not stub.get("ParameterizedJob")
        and not stub.get("ParentID")
    )


def _meta(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# Builds each object of a JSON answer from its (key, value) pairs, as `object_pairs_hook`.
Hook = Callable[[list[tuple[str, Any]]], dict[str, Any]]


def _json(response: requests.Response, shown: str, hook: Hook | None = None) -> Any:
    """The decoded answer; with `hook`, each of its objects is what `hook` makes of it."""
    if not response.content:
        return None
    try:
        if hook is None:
            return response.json()
        return json.loads(response.content, object_pairs_hook=hook)
    except ValueError:
        raise DiscoveryError(f"Nomad at {shown} sent a non-JSON answer") from None


def _keeping(fields: frozenset[str]) -> Hook:
    """A hook that keeps only `fields` (of duplicate keys the last wins, as in `json`)."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        return {key: value for key, value in pairs if key in fields}

    return hook


def _path(api: Any, parts: tuple[str, ...]) -> str:
    return "/".join(("/v1", str(api.ENDPOINT), *parts))
