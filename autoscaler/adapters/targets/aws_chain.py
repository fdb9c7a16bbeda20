"""Reading an AWS configuration's credential chain (again): a new boto3 session, what
it found, and whether that is news.

botocore reads static credentials once per session; `aws_client.SharedClient.renew` reads
them again in a new session when AWS rejected them. That reading may take seconds (SSO,
STS, instance metadata with its retries, a `credential_process`), so it is done here,
without the shared clients' lock, on a session nobody else holds yet (`read_again`), one
reading per configuration at a time (`Reading`).
"""

from __future__ import annotations

import threading

import boto3
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import BotoCoreError

from autoscaler.errors import TargetError
from autoscaler.redact import scrub


def credentials(session: boto3.session.Session) -> object | None:
    """The session's credentials, None when the chain found none."""
    try:
        return session.get_credentials()
    except BotoCoreError as exc:
        raise TargetError(f"AWS configuration: {scrub(str(exc))}") from exc


def read_again(old: boto3.session.Session | None) -> tuple[boto3.session.Session | None, str]:
    """A new session that read the credential chain again, or None with what to add to a
    rejection's message: the reading failed, found none, or found `old`'s key again
    (environment credentials, or a file nobody changed: the same key would only be refused
    again, so no client is built again and no call sent once more). Without the lock: the
    new session is nobody else's yet, and `old`'s credentials were resolved already."""
    try:
        session = new_session()
        found = credentials(session)
    except TargetError as exc:
        return None, f" (and failed: {exc})"
    if found is None:
        return None, " (and none were found)"
    if old is not None and _same(found, credentials(old)):
        return None, " (and they were unchanged)"
    return session, ""


def _same(new: object, old: object | None) -> bool:
    """Whether two sessions' credentials are the same static key (credentials that renew
    themselves are never the same: botocore refreshes those, so their rejection is news)."""
    if old is None or isinstance(new, RefreshableCredentials):
        return False
    if isinstance(old, RefreshableCredentials):
        return False
    keys = ("access_key", "secret_key", "token")
    return all(getattr(new, k, None) == getattr(old, k, None) for k in keys)


def new_session() -> boto3.session.Session:
    """A boto3 session of the AWS configuration of the moment (`AWS_*`), nothing read yet."""
    try:
        return boto3.session.Session()
    except BotoCoreError as exc:  # e.g. AWS_PROFILE names a profile that does not exist
        raise TargetError(f"AWS configuration: {scrub(str(exc))}") from exc


class Reading:
    """One reading of an AWS configuration's credential chain under way
    (`aws_client.SharedClient.renew`): when it started, and `done` once it ended."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.done = threading.Event()
