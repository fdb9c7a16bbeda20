"""Helpers of the Nomad target for failures: what to retry, and text safe to show.

NOMAD_ADDR may carry credentials (`https://user:pass@host:4646`) and Nomad's (or a proxy's)
answers may quote our request back, token included: every message, warning or repr that
shows the address or an underlying error goes through `redact_address`/`scrub`, which
defer to `autoscaler.redact` (the token and the address's credentials are registered
there by `NomadSettings`).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import requests
from nomad.api.exceptions import BaseNomadException

from autoscaler.adapters.exhausted import out_of_resources
from autoscaler.redact import mask_url
from autoscaler.redact import scrub as scrub_text

NO_REGION_PATH = "No path to region"  # Nomad's 500 for a region it cannot forward to
# What python-nomad wraps when the network, not the request, is at fault (worth a retry).
NETWORK_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
_MAX_SHOWN = 300


def redact_address(address: str) -> str:
    """The address with any `user:password@` part (and query values) shown as `***`."""
    return mask_url(address)


def scrub(text: str, address: str) -> str:
    """`text` without the token, URL credentials, nor the address's own `user:password@`."""
    userinfo = _userinfo(address)
    if userinfo:  # also without a scheme in front, as some errors show the bare address
        text = text.replace(f"{userinfo}@", "***@")
    return scrub_text(text)


def short(error: object, address: str) -> str:
    """An underlying error in one line of at most 300 characters, credentials scrubbed."""
    return scrub(f"{type(error).__name__}: {error}", address)[:_MAX_SHOWN]


def request_path(answer: requests.Response) -> str:
    """The path (no host, no query) of the request that got `answer`."""
    return urlsplit(answer.request.url or "").path or "?"


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: connection trouble, timeouts, 429 and 5xx (but not a missing region)."""
    if not isinstance(exc, BaseNomadException) or out_of_resources(exc) is not None:
        return False
    answer = exc.nomad_resp
    if isinstance(answer, requests.Response):
        status = answer.status_code
        return (status == 429 or status >= 500) and NO_REGION_PATH not in answer.text
    if isinstance(answer, requests.exceptions.SSLError):
        return False  # a certificate does not become valid by asking again
    return isinstance(answer, NETWORK_ERRORS)


def _userinfo(address: str) -> str:
    """The `user:password` of an address (with or without a scheme), or ""."""
    authority = address.partition("://")[2] if "://" in address else address
    authority = re.split(r"[/?#]", authority, maxsplit=1)[0]
    userinfo, at, _ = authority.rpartition("@")  # the last @ ends it, as in urlsplit
    return userinfo if at else ""
