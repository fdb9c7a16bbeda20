"""Helpers of the Nomad target for failures: what to retry, the error each failure
becomes, and text safe to show.

NOMAD_ADDR may carry credentials (`https://user:pass@host:4646`) and Nomad's (or a proxy's)
answers may quote our request back, token included: every message, warning or repr that
shows the address or an underlying error goes through `redact_address`/`scrub`, which
defer to `autoscaler.redact` (the token and the address's credentials are registered
there by `NomadSettings`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import requests
from nomad.api.exceptions import BaseNomadException

from autoscaler.adapters.exhausted import out_of_resources
from autoscaler.core.model import NomadTarget
from autoscaler.errors import (
    TargetBusy,
    TargetError,
    TargetForbidden,
    TargetNotFound,
    TargetUnavailable,
)
from autoscaler.redact import mask_url
from autoscaler.redact import scrub as scrub_text

if TYPE_CHECKING:  # it imports `redact_address` from here
    from autoscaler.adapters.targets.nomad_settings import NomadSettings

NO_REGION_PATH = "No path to region"  # Nomad's 500 for a region it cannot forward to
_DEPLOYMENT_BLOCKED = "job scaling blocked due to active deployment"
# Nomad's prefix (RegisterEnforceIndexErrPrefix) of a scale refused because the job modify
# index it carries is no longer the job's (a new version since): a plain error, so a 500.
INDEX_CONFLICT = "Enforcing job modify index"
# Nomad's 403 (structs.ErrJobRegistrationDisabled) to any token but a management one while
# its scheduler configuration has `reject_job_registration` set (load shedding).
_REGISTRATION_DISABLED = "disabled by the scheduler configuration"
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
        text = answer.text
        return (
            (status == 429 or status >= 500)
            and NO_REGION_PATH not in text
            and INDEX_CONFLICT not in text  # the job changed: asking again cannot help
        )
    if isinstance(answer, requests.exceptions.SSLError):
        return False  # a certificate does not become valid by asking again
    return isinstance(answer, NETWORK_ERRORS)


def last_attempt(exc: BaseNomadException, address: str) -> tuple[str, bool]:
    """How the last attempt failed (shown redacted), and whether it was sent and got no
    answer in time (a read timeout, a connection dropped mid-answer): it may have landed."""
    answer = exc.nomad_resp
    if isinstance(answer, requests.Response):
        text = scrub(answer.text.strip(), address)
        return f"HTTP {answer.status_code}: {text[:200]}", False
    unanswered = isinstance(
        answer, requests.exceptions.ReadTimeout | requests.exceptions.ChunkedEncodingError
    ) or (
        isinstance(answer, requests.exceptions.ConnectionError)
        and not isinstance(answer, requests.exceptions.ConnectTimeout)
        and "Connection aborted" in str(answer)
    )
    return short(answer, address), unanswered


def translate(
    exc: BaseNomadException,
    capability: str,
    *,
    ref: NomadTarget,
    settings: NomadSettings,
    namespace: str,
    region: str | None,
    shown_address: str,
) -> TargetError:
    """Our error for python-nomad's exception; never shows the token or NOMAD_ADDR's
    `user:password@`. `capability` is the ACL capability the request needs; `namespace` and
    `region` are the target's, `shown_address` Nomad's address as it may be shown.
    """
    where, address = _where(namespace, region), shown_address
    answer = exc.nomad_resp
    exhausted = out_of_resources(exc)
    if exhausted is not None:
        return TargetUnavailable(f"cannot reach Nomad at {address}: {exhausted}")
    if not isinstance(answer, requests.Response):
        cause = short(answer, settings.address)
        if isinstance(answer, requests.exceptions.SSLError):
            return TargetUnavailable(
                f"TLS handshake with Nomad at {address} failed ({cause}); set "
                "NOMAD_CACERT to the CA that signed Nomad's certificate"
            )
        if isinstance(answer, NETWORK_ERRORS):
            return TargetUnavailable(
                f"Nomad at {address} unreachable within {settings.deadline:g}s: {cause}"
            )
        return TargetError(
            f"cannot call Nomad at {address} (check NOMAD_ADDR and the TLS files): {cause}"
        )
    status = answer.status_code
    text = scrub(answer.text.strip(), settings.address)
    if status == 403 and _REGISTRATION_DISABLED in text:
        # No capability is missing: an operator shed load; a passing state, so a hold.
        return TargetBusy(
            f"Nomad refused to scale {ref}: {text} (the cluster's scheduler configuration "
            "has reject_job_registration set, which refuses every scale but a management "
            "token's); it scales again once an operator lifts it "
            "(nomad operator scheduler set-config -reject-job-registration=false)"
        )
    if status == 403:
        refused = f"Nomad refused {answer.request.method} {request_path(answer)} ({text})"
        if "token" in text.lower():  # "ACL token not found", "ACL token expired", ...
            return TargetForbidden(
                f"{refused}: NOMAD_TOKEN is not a valid token for this cluster "
                "(expired, deleted, or from another cluster)"
            )
        hint = "" if settings.token else "; no token is set: set NOMAD_TOKEN"
        return TargetForbidden(
            f"{refused}: the token lacks the '{capability}' capability in namespace "
            f"'{namespace}'{hint}"
        )
    if status == 404:
        return TargetNotFound(f"job '{ref.job}' not found in {where}")
    if status == 400 and _DEPLOYMENT_BLOCKED in text.lower():
        return TargetBusy(f"Nomad refused to scale {ref}: {text}")
    if status == 400 and "task group" in text and "does not exist" in text:
        return TargetNotFound(f"task group '{ref.group}' not found in job '{ref.job}'")
    if INDEX_CONFLICT in text:
        # A new version of the job since the status this scale was decided on: not a
        # failure, a passing state; the next evaluation reads the new version.
        return TargetBusy(
            f"job '{ref.job}' changed since it was read (a new version was registered): "
            f"not scaled on a stale count; it is read again at the next evaluation ({text})"
        )
    if status == 500 and NO_REGION_PATH in text:
        return TargetUnavailable(
            f"Nomad at {address} has no path to region "
            f"'{region}': check the policy's region or NOMAD_REGION"
        )
    if 400 <= status < 500:
        return TargetError(f"Nomad refused the request for {ref} (HTTP {status}): {text}")
    return TargetUnavailable(
        f"Nomad kept failing for {ref} for {settings.deadline:g}s "
        f"(last: HTTP {status}: {text[:200]})"
    )


def _where(namespace: str, region: str | None) -> str:
    return f"namespace '{namespace}'" + (f" of region '{region}'" if region else "")


def _userinfo(address: str) -> str:
    """The `user:password` of an address (with or without a scheme), or ""."""
    authority = address.partition("://")[2] if "://" in address else address
    authority = re.split(r"[/?#]", authority, maxsplit=1)[0]
    userinfo, at, _ = authority.rpartition("@")  # the last @ ends it, as in urlsplit
    return userinfo if at else ""
