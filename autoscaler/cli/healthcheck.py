"""`python -m autoscaler.cli.healthcheck [HOST:PORT]`: exit 0 when the local controller's
`/readyz` answers 200, else 1 with the reason on stdout. The Docker image's HEALTHCHECK.

The slim image has no curl, and a health check runs every few seconds, so this uses only
the standard library (no FastAPI, no boto3: it starts in a few tens of milliseconds). The
address is the argument, else `AUTOSCALER_LISTEN` (the image sets it), else the default
`127.0.0.1:8080`; a wildcard host (`0.0.0.0`, `::`, `:PORT`) is reached over loopback.
Proxies from the environment are ignored: the controller is on this host.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

from autoscaler.cli.printable import printable
from autoscaler.config.listen import parse_listen
from autoscaler.errors import AutoscalerError

DEFAULT_LISTEN = "127.0.0.1:8080"
TIMEOUT = 4.0  # seconds; below Docker's --timeout in the Dockerfile
HEALTHY, UNHEALTHY = 0, 1


def readyz_url(listen: str) -> str:
    """The `/readyz` URL of a server listening on `listen`, reached from this host."""
    host, port = parse_listen(listen)
    if host in ("0.0.0.0", ""):  # noqa: S104 - every IPv4 interface: loopback is one
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/readyz"


def check(listen: str, timeout: float = TIMEOUT) -> tuple[int, str]:
    """(exit code, why) for the controller listening on `listen`; the reason is the server's
    text as it came (`main` prints it with its control characters escaped)."""
    url = readyz_url(listen)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout):
            return HEALTHY, f"ready ({url})"
    except urllib.error.HTTPError as exc:
        return UNHEALTHY, f"not ready ({url} answered {exc.code}): {_reason(exc)}"
    except (urllib.error.URLError, OSError) as exc:
        why = getattr(exc, "reason", exc)
        return UNHEALTHY, f"no answer from {url}: {why}"


def _reason(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read() or b"{}")
    except ValueError:
        return error.reason or "?"
    if isinstance(body, dict):
        return str(body.get("reason") or body.get("detail") or error.reason)
    return str(error.reason)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    listen = args[0] if args else os.environ.get("AUTOSCALER_LISTEN", DEFAULT_LISTEN)
    if not listen:
        print("the HTTP API is off (AUTOSCALER_LISTEN is empty): nothing to check")
        return HEALTHY
    try:
        code, line = check(listen)
    except AutoscalerError as exc:
        code, line = UNHEALTHY, str(exc)
    print(printable(line))  # the reason is the server's text: no escape sequence runs
    return code


if __name__ == "__main__":
    sys.exit(main())
