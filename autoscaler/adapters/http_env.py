"""What `requests` takes from the environment, read once per session instead of per request.

With `trust_env` (its default), every request of a `requests.Session` reads the proxy
variables (walking all of `os.environ`), checks `NO_PROXY`, looks for `~/.netrc` and
`~/_netrc` on disk and reads `REQUESTS_CA_BUNDLE`/`CURL_CA_BUNDLE`: about a fifth of the
CPU of an evaluation against Nomad, for answers that cannot change while the process
runs. `settle` resolves them once, for the one server a session talks to, the way
requests would for each request to that server, and switches `trust_env` off: the
environment keeps the same effect (proxies, `NO_PROXY`, netrc credentials, CA bundle),
read at start-up.
"""

from __future__ import annotations

import os

import requests
from requests.utils import get_environ_proxies, get_netrc_auth

from autoscaler.redact import register_basic

__all__ = ["ca_bundle", "settle"]


def settle(session: requests.Session, url: str) -> requests.Session:
    """`session`, for requests to `url`'s server, with the environment resolved once.

    Proxies from the environment (unless `NO_PROXY` exempts the server) join the session's
    own, which win; netrc credentials for the host become the session's auth when it has
    none (a request's own auth, or credentials in the URL given to requests, still win as
    before); a `verify=True` session takes the environment's CA bundle.
    """
    for scheme, proxy in get_environ_proxies(url).items():
        session.proxies.setdefault(scheme, proxy)
    if session.auth is None:
        session.auth = get_netrc_auth(url)
        if session.auth is not None:  # (user, password): never shown, in either form
            register_basic(*session.auth)
    if session.verify is True:
        session.verify = ca_bundle(True)
    session.trust_env = False
    return session


def ca_bundle(verify: bool | str) -> bool | str:
    """What requests would verify with, for a request that passes `verify` itself: with
    `True`, the CA bundle named by `REQUESTS_CA_BUNDLE` or `CURL_CA_BUNDLE`, if any."""
    if verify is True:
        return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return verify
