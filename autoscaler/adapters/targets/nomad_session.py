"""The connection to Nomad every target shares: one HTTP session (connection pool) and one
python-nomad `Job` endpoint per settings, whatever the number of targets.

Two python-nomad traps are handled here on purpose: it does not verify TLS certificates by
default (we pass `verify`), and `nomad.Nomad` falls back to NOMAD_* variables for every
unset argument (we build `nomad.api.Job` with every setting given). The session's
connections neither open nor write a request at or after its caller's deadline (`send_by`).
"""

from __future__ import annotations

import threading
from typing import Any

import nomad.api
import requests
from requests.adapters import HTTPAdapter

from autoscaler.adapters import send_by
from autoscaler.adapters.http_env import ca_bundle, settle
from autoscaler.adapters.targets.nomad_settings import NomadSettings

# Connections kept open per Nomad server for reuse by the evaluations; more may be open
# while requests are in flight (one per concurrent evaluation), and are closed when they are
# returned (urllib3 logs "Connection pool is full, discarding connection").
POOL_SIZE = 16


_sessions: dict[NomadSettings, requests.Session] = {}
_kept: dict[NomadSettings, int] = {}  # the connections each session's pool keeps
_sessions_lock = threading.Lock()


def shared_session(settings: NomadSettings, *, connections: int = 0) -> requests.Session:
    """The one HTTP session (connection pool) for Nomad reached with `settings`.

    Every `NomadScaler` of the same server and credentials shares it, so the sockets held
    open are bounded by the requests in flight (at most `POOL_SIZE` kept for reuse), not by
    the number of targets: one session per target once held a socket each and ran out of
    file descriptors at 1,021 targets. `requests` sessions are safe to share between
    threads for plain requests like ours (no cookies, no per-session auth).

    `connections`: requests the caller may have in flight at once besides the evaluations'
    (discovery's readers and probes): the pool keeps that many more for reuse, given to the
    session already shared if it was built smaller (its connections in use end their
    request as they were).
    """
    size = POOL_SIZE + connections
    with _sessions_lock:
        session = _sessions.get(settings)
        if session is None:
            session = requests.Session()
            _mount(session, size)
            # Proxies, NO_PROXY and ~/.netrc once, not on every request (`http_env`).
            _sessions[settings], _kept[settings] = settle(session, settings.address), size
        elif _kept[settings] < size:
            _mount(session, size)
            _kept[settings] = size
        return session


def _mount(session: requests.Session, size: int) -> None:
    """Give `session` an adapter whose pool keeps `size` connections per server."""
    adapter = _SendByAdapter(pool_connections=1, pool_maxsize=size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)


class _SendByAdapter(HTTPAdapter):
    """requests' adapter whose connections, pooled or through a proxy, neither open nor
    write a request at or after its caller's deadline (`send_by`)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        _checked(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        known = proxy in self.proxy_manager  # requests asks at every proxied request
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        return manager if known else _checked(manager)


def _checked(manager: Any) -> Any:
    """`manager` (a urllib3 pool manager) making `send_by` connections."""
    manager.pool_classes_by_scheme = send_by.checked_pools(manager.pool_classes_by_scheme)
    return manager


_job_apis: dict[tuple[NomadSettings, bool | str], nomad.api.Job] = {}


def job_api(settings: NomadSettings, session: requests.Session | None) -> nomad.api.Job:
    """The python-nomad `Job` endpoint for `settings`: with the shared session, one per
    settings (and CA bundle) for every target, as it only holds the connection's settings
    (namespace and region go in each request's parameters); 2 objects and 180 bytes per
    target before, 1.8 MB at 10,000 targets.

    nomad.api.Job instead of nomad.Nomad: the latter falls back to NOMAD_* variables for
    every unset argument, so settings built in code would silently mix with the env.
    """
    # Passed with each request, so the environment's CA bundle is resolved here.
    verify = ca_bundle(settings.verify())

    def build(session: requests.Session) -> nomad.api.Job:
        return nomad.api.Job(
            address=settings.address.rstrip("/"),
            token=settings.token,
            timeout=settings.timeout,
            verify=verify,
            cert=settings.cert(),
            session=session,
        )

    if session is not None:
        return build(session)
    with _sessions_lock:
        api = _job_apis.get((settings, verify))
    if api is None:
        api = build(shared_session(settings))
        with _sessions_lock:
            api = _job_apis.setdefault((settings, verify), api)
    return api
