"""AWS as a discovery source: the Auto Scaling Groups of a region that carry given tags.

One `DescribeAutoScalingGroups` call per page of 100 groups, filtered by AWS on the tags
(`tag:KEY = VALUE`), through the client every ASG target of that region already shares
(`aws_client.shared_client`). Each group comes back with all its tags, so the overrides
(`autoscaler:min`, ...) need no second call. AWS has no change feed for tags: the service
polls this, with backoff while it fails. botocore's own retries are off in that client (the
targets retry themselves), so a page that fails for a moment (throttling: AWS's rate limit
is shared by every caller of the account; a 5xx; a broken connection) is asked again here,
within `deadline` seconds, rather than failing the listing of every page until the next
poll. A page AWS refuses for its credentials (a key rotated in the credentials file) is
asked again once with the credentials read again (`aws_client.SharedClient.renew`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from botocore.parsers import ResponseParserError
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from autoscaler.adapters.exhausted import out_of_resources
from autoscaler.adapters.targets.aws_client import SharedClient, send_renewing, shared
from autoscaler.adapters.targets.aws_errors import (
    PERMISSION_CODES,
    credentials_call,
    is_transient,
    log_retry,
    rejected_credentials,
)
from autoscaler.core.discovered import AsgGroup
from autoscaler.errors import DiscoveryError, TargetError
from autoscaler.redact import scrub

if TYPE_CHECKING:
    from mypy_boto3_autoscaling import AutoScalingClient

log = logging.getLogger(__name__)

PAGE = 100  # DescribeAutoScalingGroups returns at most 100 groups per call
ATTEMPTS = 4  # of one page, at most, within the deadline


class AsgDiscovery:
    """Lists the Auto Scaling Groups of one region that carry every given tag."""

    def __init__(
        self,
        region: str | None,
        *,
        client: AutoScalingClient | None = None,
        deadline: float = 10.0,
    ) -> None:
        self._region = region
        self._given = None if client is None else SharedClient(client)  # never rebuilt
        self._deadline = deadline

    def __repr__(self) -> str:
        return f"AsgDiscovery(region={self._region!r})"

    def groups(self, tags: Mapping[str, str]) -> list[AsgGroup]:
        """Every group whose tags include all of `tags`, with all its tags.

        Raises `DiscoveryError` when AWS cannot be read (no credentials, a missing
        permission, throttling, an unreachable endpoint).
        """
        where = f"region {self._region or '(from the environment)'}"
        client: SharedClient | None = None
        try:
            client = self._given or shared(self._region, self._deadline)
            filters: Any = [{"Name": f"tag:{k}", "Values": [v]} for k, v in sorted(tags.items())]
            found: list[AsgGroup] = []
            token: str | None = None
            seen: set[str] = set()
            retrying = self._retrying(where)  # each call: its own attempts and deadline
            while True:
                extra: Any = {"NextToken": token} if token else {}
                page = self._page(client, retrying, Filters=filters, MaxRecords=PAGE, **extra)
                for group in page["AutoScalingGroups"]:
                    found.append(
                        AsgGroup(
                            name=group["AutoScalingGroupName"],
                            region=self._region,
                            tags={t["Key"]: t.get("Value", "") for t in group.get("Tags", [])},
                        )
                    )
                token = page.get("NextToken")
                if not token:
                    break
                if token in seen:  # an endpoint (a proxy, a stand-in) that pages in a circle
                    raise DiscoveryError(
                        f"Auto Scaling Groups of {where}: the listing gave the same NextToken "
                        f"twice after {len(found)} group(s), so it would never end; the last "
                        "listing is kept (check the endpoint: AWS never repeats a token)"
                    )
                seen.add(token)
        except TargetError as exc:  # the client could not be built (configuration)
            raise DiscoveryError(f"Auto Scaling Groups of {where}: {exc}") from exc
        except (ClientError, BotoCoreError, ResponseParserError) as exc:
            # (ResponseParserError: an answer that is not AWS's, e.g. a proxy's HTML page;
            # not a BotoCoreError, it was logged as an unexpected failure with a traceback.)
            reread = None if client is None else client.reread(exc)
            raise DiscoveryError(_message(exc, where, reread)) from exc
        return found

    @staticmethod
    def _page(client: SharedClient, retrying: Retrying, **params: Any) -> Any:
        """One page, through the client of the moment, sent again (`retrying`) while it
        fails for a moment, and once more with the credentials read again when AWS
        rejected them (`send_renewing`)."""
        return send_renewing(
            client, lambda: retrying(client.client.describe_auto_scaling_groups, **params)
        )

    def _retrying(self, where: str) -> Retrying:
        """Retries of one page's call on transient failures: `ATTEMPTS` at most, none
        starting a pause that would end more than `deadline` seconds after the first."""

        return Retrying(
            retry=retry_if_exception(is_transient),
            wait=wait_random_exponential(multiplier=0.2, max=min(2.0, self._deadline / 3)),
            stop=stop_after_attempt(ATTEMPTS) | stop_before_delay(self._deadline),
            before_sleep=log_retry(log, logging.INFO, f"DescribeAutoScalingGroups in {where}"),
            reraise=True,
        )


def _message(exc: Exception, where: str, reread: str | None = None) -> str:
    exhausted = out_of_resources(exc)
    if exhausted is not None:
        return f"DescribeAutoScalingGroups in {where}: {exhausted}"
    if isinstance(exc, NoCredentialsError):
        return (
            f"DescribeAutoScalingGroups in {where}: no AWS credentials found; configure the "
            "standard chain (environment, shared files, or an instance role)"
        )
    if isinstance(exc, ClientError):
        obtaining = credentials_call(exc, "DescribeAutoScalingGroups")
        if obtaining is not None:
            return f"DescribeAutoScalingGroups in {where}: {obtaining}"
        error = exc.response.get("Error", {})
        code, text = error.get("Code", "Unknown"), scrub(error.get("Message", ""))
        if code in PERMISSION_CODES:
            return (
                f"DescribeAutoScalingGroups in {where} was denied: grant the IAM action "
                f"autoscaling:DescribeAutoScalingGroups ({code}: {text})"
            )
        rejected = rejected_credentials(code, text, reread)
        if rejected is not None:
            return f"DescribeAutoScalingGroups in {where}: {rejected}"
        return f"DescribeAutoScalingGroups in {where} failed: {code}: {text}"
    return scrub(f"DescribeAutoScalingGroups in {where} failed: {type(exc).__name__}: {exc}")
