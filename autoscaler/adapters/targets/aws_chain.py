"""Reading an AWS configuration's credential chain (again): a new boto3 session, what
it found, and whether that is news.

botocore reads static credentials once per session; `aws_client.SharedClient.renew` reads
them again in a new session when AWS rejected them. That reading may take seconds (SSO,
STS, instance metadata with its retries, a `credential_process`, whose hang botocore
waits out with no timeout), so it is done here, without the shared clients' lock, on a
session nobody else holds yet (`read_again`), in a thread of its own that every rejected
call waits for no longer than its time allows, one reading per configuration at a time
(`Reading`); what a call that asked was told is a `Renewal`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import boto3
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

from autoscaler.errors import TargetError
from autoscaler.redact import scrub

log = logging.getLogger(__name__)


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
    (`aws_client.SharedClient.renew`): when it started, and `done` once it ended.

    `start` reads in a daemon thread, not in the thread of the call AWS rejected: a hung
    chain (a `credential_process` that never exits: botocore waits for it without a
    timeout) would hold that call, and its policy's evaluation, for ever. The calls wait on
    `done` as long as their time allows; the reading goes on without them, and `ended`
    (the session read, or None with what to add to a rejection's message) keeps its
    outcome for the next rejected call.
    """

    def __init__(self, started: float) -> None:
        self.started = started
        self.done = threading.Event()

    def under_way(self, now: float) -> str:
        """What a call that gave up waiting for it (at `now`) adds to its rejection."""
        return (
            f"the credentials are being read again (for {now - self.started:.0f}s); "
            "the call was not sent once more"
        )

    def start(
        self,
        old: boto3.session.Session | None,
        ended: Callable[[boto3.session.Session | None, str], None],
    ) -> None:
        """Read the chain again (`read_again(old)`) in a daemon thread; `ended` with its
        outcome, then `done` set."""

        def run() -> None:
            session: boto3.session.Session | None = None
            said = " (and failed)"
            try:
                session, said = read_again(old)
            except Exception as exc:  # not botocore's own errors (`read_again` says those)
                log.warning("reading the AWS credential chain again failed: %s", exc)
                said = f" (and failed: {scrub(str(exc))})"
            finally:
                try:
                    ended(session, said)
                finally:
                    self.done.set()

        threading.Thread(target=run, name="aws-credentials", daemon=True).start()


@dataclass(frozen=True)
class Renewal:
    """What a call AWS rejected for its credentials was told (`SharedClient.renew`): true
    when it may be sent once more with the client of the moment; else `why` not, for the
    rejection's message (None: nothing to add)."""

    again: bool
    why: str | None = None

    def __bool__(self) -> bool:
        return self.again


class StillRejected(ClientError):
    """AWS's rejection of a call's credentials, which stands: they were not read again, or
    not in the time the call had, or not to any avail (`why`, from its `Renewal`, says
    which, for the message: what the state says once the call gives up may be a reading
    that ended a moment later, whose key the call never tried)."""

    def __init__(self, rejection: ClientError, why: str | None) -> None:
        super().__init__(rejection.response, rejection.operation_name)
        self.why = why
