"""`out_of_resources`: running out of file descriptors is told apart from a network failure,
however deeply requests, urllib3, botocore or python-nomad wrap it."""

from __future__ import annotations

import errno

import pytest
import requests
from botocore.exceptions import EndpointConnectionError
from nomad.api.exceptions import BaseNomadException
from urllib3.exceptions import MaxRetryError, NewConnectionError

from autoscaler.adapters.exhausted import out_of_resources


def _urllib3_error(code: int) -> NewConnectionError:
    """What urllib3 raises when `socket()` or `connect()` fails with `code`."""
    cause = OSError(code, errno.errorcode[code])
    try:
        raise NewConnectionError(None, f"Failed to establish a new connection: {cause}") from cause  # type: ignore[arg-type]
    except NewConnectionError as exc:
        return exc


def _requests_error(code: int) -> requests.exceptions.ConnectionError:
    reason = _urllib3_error(code)
    return requests.exceptions.ConnectionError(MaxRetryError(None, "/v1/job/x", reason))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: OSError(errno.EMFILE, "Too many open files"), id="plain"),
        pytest.param(lambda: _requests_error(errno.EMFILE), id="requests"),
        pytest.param(lambda: BaseNomadException(_requests_error(errno.EMFILE)), id="nomad"),
        pytest.param(
            lambda: EndpointConnectionError(
                endpoint_url="http://x", error=_urllib3_error(errno.EMFILE)
            ),
            id="botocore",
        ),
        pytest.param(
            lambda: RuntimeError("wrapped: [Errno 24] Too many open files"), id="text-only"
        ),
    ],
)
def test_emfile_is_found_and_names_the_limit_and_the_fix(build: object) -> None:
    message = out_of_resources(build())  # type: ignore[operator]

    assert message is not None
    assert "open files" in message
    assert "EMFILE" in message
    assert "ulimit -n" in message


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(_requests_error(errno.ECONNREFUSED), id="refused"),
        pytest.param(requests.exceptions.ReadTimeout("read timed out"), id="timeout"),
        pytest.param(ValueError("not JSON"), id="other"),
    ],
)
def test_network_failures_are_not_resource_exhaustion(error: BaseException) -> None:
    assert out_of_resources(error) is None
