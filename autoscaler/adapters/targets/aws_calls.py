"""Requests sent to the AWS Auto Scaling API, counted by region and action.

AWS throttles each account's Auto Scaling API calls, and every ASG target of the service
shares that allowance with whatever else the account runs: the count is what an operator
compares with the throttling they see (`autoscaler_aws_requests_total` on `/metrics`).
Every attempt is counted, retries included, as AWS counts them. Kept apart from
`aws_asg` so that reading the counts does not import boto3.
"""

from __future__ import annotations

import threading
from collections import Counter

__all__ = ["count", "counts"]

_lock = threading.Lock()
_sent: Counter[tuple[str, str]] = Counter()


def count(region: str, action: str) -> None:
    """One request of `action` sent to `region`."""
    with _lock:
        _sent[(region, action)] += 1


def counts() -> list[tuple[str, str, int]]:
    """(region, action, requests sent) since the process started."""
    with _lock:
        return [(region, action, n) for (region, action), n in sorted(_sent.items())]
