"""What the AWS target makes of a failure: whether it is worth retrying, and the
`TargetError` it becomes, with a message that says what to fix (the IAM action to grant,
the credentials AWS rejected, the AWS validation message).

botocore's own retries are off (`aws_client.make_client`): `is_transient` is what the
target's one retry loop retries (throttling, 5xx, broken connections); everything else
becomes one of our errors at once (`translate`). A rejection of the credentials
themselves (`rejects_credentials`) has them read again and the call sent once more first
(`aws_client.send_renewing`). AWS's messages are scrubbed of anything that looks like an
access key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import (
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
)
from botocore.parsers import ResponseParserError

from autoscaler.adapters.exhausted import out_of_resources
from autoscaler.errors import (
    TargetBusy,
    TargetError,
    TargetForbidden,
    TargetNotFound,
    TargetUnavailable,
)
from autoscaler.redact import scrub

if TYPE_CHECKING:
    from tenacity import RetryCallState

# Error codes AWS uses for "slow down"; the same list botocore's standard mode retries on.
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "EC2ThrottledException",
        "BandwidthLimitExceeded",
        "PriorRequestNotComplete",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
# The group refuses a change for now; checked before the HTTP status, because AWS sends
# ResourceContention with HTTP 500. Not retried: the reconciler holds and tries next time.
BUSY_CODES = frozenset({"ScalingActivityInProgress", "ResourceContention", "ResourceInUse"})
PERMISSION_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
# The credentials themselves are rejected (unknown key, expired session, bad signature).
CREDENTIAL_CODES = frozenset(
    {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "AuthFailure",
        "MissingAuthenticationToken",
        "IncompleteSignature",
    }
)

# Credentials past their end. botocore renews only those it obtained itself (a role, SSO,
# a web identity, a credential_process with an expiry); those of the environment are read
# once, when the first target of their configuration is built, and those of a credentials
# file again when AWS rejects them (`aws_client.SharedClient.renew`).
EXPIRED_CODES = frozenset({"ExpiredToken", "ExpiredTokenException"})
RENEW_HINT = (
    "credentials from the environment are read once, when the service starts: restart it "
    "once they are renewed; a credentials file is read again when AWS rejects its "
    "credentials; or give it a source botocore renews itself (an instance or task role, a "
    "web identity, SSO, a credential_process)"
)
# A request signed too long before AWS received it, by AWS's clock: this host's is off.
CLOCK_HINT = "this host's clock is off by more than AWS allows: synchronise it (NTP)"


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying: throttling, 5xx, broken or timed-out connections."""
    if isinstance(exc, ClientError):
        code, _ = _error(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in BUSY_CODES:
            return False
        return code in THROTTLING_CODES or status >= 500
    if out_of_resources(exc) is not None:
        return False  # another attempt within the deadline would fail the same way
    # ResponseParserError: a proxy or load balancer answered with HTML instead of AWS XML.
    return isinstance(exc, ConnectionError | HTTPClientError | ResponseParserError)


def translate(
    action: str,
    exc: Exception,
    attempts: int,
    *,
    where: str,
    deadline: float,
    reread: str | None = None,
) -> TargetError:
    """The `TargetError` that tells an operator what went wrong and what to do.

    `attempts` were made on `where` within the `deadline` (seconds) of the operation;
    `reread` says what came of reading the credentials again, when AWS rejected them.
    """
    exhausted = out_of_resources(exc)
    if exhausted is not None:
        return TargetUnavailable(f"{action} on {where}: {exhausted}")
    if is_transient(exc):
        return TargetUnavailable(
            f"{action} on {where} kept failing ({attempts} attempts within the "
            f"{deadline:g}s deadline): {describe(exc)}"
        )
    if isinstance(exc, NoCredentialsError):
        return TargetForbidden(
            f"{action} on {where}: no AWS credentials found; configure the standard "
            "chain (environment, shared config/credentials file, or an instance role)"
        )
    if not isinstance(exc, ClientError):
        return TargetError(f"{action} on {where} failed: {describe(exc)}")
    code, message = _error(exc)
    obtaining = credentials_call(exc, action)
    if obtaining is not None:
        return TargetForbidden(f"{action} on {where}: {obtaining}")
    if code in PERMISSION_CODES:
        return TargetForbidden(
            f"{action} on {where} was denied: grant the IAM action autoscaling:{action} "
            f"({code}: {message})"
        )
    rejected = rejected_credentials(code, message, reread)
    if rejected is not None:
        return TargetForbidden(f"{action} on {where}: {rejected}")
    if code in BUSY_CODES:
        return TargetBusy(f"{where} refused {action} for now ({code}: {message})")
    if code == "ValidationError" and "not found" in message.lower():
        return TargetNotFound(f"{where}: {message}")
    if code == "ValidationError":
        return TargetError(f"{action} on {where} rejected by AWS: {message}")
    return TargetError(f"{action} on {where} failed: {code}: {message}")


def rejects_credentials(exc: BaseException) -> bool:
    """True when AWS rejected the credentials a request was signed with (an unknown or
    deleted key, an expired session, a signature made with the wrong secret): reading the
    credentials again may help. Not for a request signed too long ago (the clock's fault)."""
    if not isinstance(exc, ClientError):
        return False
    code, message = _error(exc)
    return code in CREDENTIAL_CODES and not _clock_off(code, message)


def rejected_credentials(code: str, message: str, reread: str | None = None) -> str | None:
    """What to say when AWS rejected the request's credentials or signature; else None.

    `reread` says what came of reading the credentials again after the rejection.
    """
    if _clock_off(code, message):
        return f"{CLOCK_HINT} ({code}: {message})"
    if code in CREDENTIAL_CODES:
        again = f"; {reread}" if reread else ""
        hint = f": {RENEW_HINT}" if code in EXPIRED_CODES else ""
        return f"AWS rejected the credentials ({code}: {message}){again}{hint}"
    return None


def _clock_off(code: str, message: str) -> bool:
    return code == "RequestExpired" or (
        code == "SignatureDoesNotMatch" and "signature expired" in message.lower()
    )


def credentials_call(exc: ClientError, action: str) -> str | None:
    """What went wrong, when `exc` came from a call the credential chain made on our behalf
    to get the credentials for `action` (sts:AssumeRole of a profile's role,
    AssumeRoleWithWebIdentity, SSO's GetRoleCredentials), not from `action`; else None.

    Its AccessDenied is the role's trust policy or the caller's sts permission, not a
    missing autoscaling grant, which is what the denial of `action` itself asks for.
    """
    operation = getattr(exc, "operation_name", None)
    if not operation or operation == action:
        return None
    code, message = _error(exc)
    if code in PERMISSION_CODES:
        return (
            f"the AWS credentials could not be obtained: {operation} was denied ({code}: "
            f"{message}); check the role the AWS configuration assumes (its ARN, its trust "
            "policy) and the permission to assume it"
        )
    return f"the AWS credentials could not be obtained: {operation} failed ({code}: {message})"


def _error(exc: ClientError) -> tuple[str, str]:
    """AWS's error code and message, with anything that looks like an access key masked."""
    error = exc.response.get("Error", {})
    return error.get("Code", "Unknown"), scrub(error.get("Message", ""))


def describe(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        code, message = _error(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"HTTP {status} {code}: {message}"
    return scrub(f"{type(exc).__name__}: {exc}")


def log_retry(logger: logging.Logger, level: int, what: str) -> Callable[[RetryCallState], None]:
    """tenacity's `before_sleep`: log that `what` (`SetDesiredCapacity on …`) failed and is
    retried, with the attempt, the pause and AWS's error."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        logger.log(
            level,
            "%s failed (attempt %d), retrying in %.2fs: %s",
            what,
            state.attempt_number,
            state.upcoming_sleep,
            describe(exc) if exc else "?",
        )

    return before_sleep
