"""Who may talk to the API, and what a request body may hold.

A browser is the threat when the API has no token, or for its open read-only routes: a
page the operator visits can POST to `http://127.0.0.1:8080/v1/reload` (CSRF), and a page
whose DNS name is rebound to the controller's address can read every answer (DNS
rebinding). So, unless a request carries the valid bearer token (which no browser adds by
itself):

- its `Host` must name this server: an IP address (an IP is never rebound), `localhost`
  when listening on loopback or every interface, the name given to `--listen`, or a name
  given with `--allowed-host`; otherwise 421. The port is not compared: port mappings
  (Docker `-p`, Nomad dynamic ports, SSH tunnels) change it, and rebinding is about names;
- a changing request (anything but GET, HEAD, OPTIONS) from a browser must come from the
  server's own origin: an `Origin` other than the `Host` it was sent to, `Origin: null`, or
  (without `Origin`) `Sec-Fetch-Site: cross-site`/`same-site` is refused with 403.

JSON bodies are parsed strictly: `NaN`, `Infinity` and numbers beyond a double (`1e999`)
are a 400 with that said, rather than a 500 when they are echoed back in an error.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

ANY_HOST = "*"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Refused(Exception):
    """A request the guard turns away: `status` (400, 403, 408, 413 or 421) and a message that
    says what to change."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def split_host(value: str) -> tuple[str, int | None]:
    """`name:port`, `[v6]:port`, `name` or `v6` -> (lowercase name without brackets, port)."""
    value = value.strip().lower()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif value.count(":") == 1:
        name, _, port = value.partition(":")
    else:  # a bare IPv6 address, or a name without a port
        name, port = value, ""
    return name.rstrip("."), int(port) if port.isdigit() else None


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _is_loopback(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return name == "localhost"


def _is_wildcard(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_unspecified
    except ValueError:
        return False


@dataclass(frozen=True)
class Guard:
    """The Host/Origin rules of one server (see the module docstring)."""

    listen: str  # as given to --listen, for messages
    names: frozenset[str]  # host names (not IPs) that name this server; "*" = any
    token: str | None = None

    @classmethod
    def of(cls, listen: str | None, allowed_hosts: Iterable[str], token: str | None) -> Guard:
        """The rules for a server on `listen` (HOST:PORT), with extra allowed names."""
        names = {split_host(name)[0] if name != ANY_HOST else name for name in allowed_hosts}
        listen = listen or "127.0.0.1:0"
        host = split_host(listen.rpartition(":")[0] or "0.0.0.0")[0]  # noqa: S104 - ":PORT"
        if _is_loopback(host) or _is_wildcard(host):
            names.add("localhost")
        if not _is_ip(host):
            names.add(host)
        return cls(listen=listen, names=frozenset(n for n in names if n), token=token)

    def authorized(self, authorization: str | None) -> bool:
        """True when the request carries the valid bearer token (compared in constant time)."""
        if self.token is None or not authorization:
            return False
        scheme, _, given = authorization.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self.token.encode()
        )

    def check(self, method: str, headers: dict[str, str]) -> None:
        """Raise `Refused` for a request this server must not answer; `headers` lowercase."""
        if self.authorized(headers.get("authorization")):
            return
        host = headers.get("host")
        if host is not None and not self._names_us(host):
            raise Refused(
                421,
                f"Host {host!r} does not name this server (listening on {self.listen}): use its "
                "address or localhost, or allow the name with --allowed-host NAME (env "
                "AUTOSCALER_ALLOWED_HOSTS); this protects against DNS rebinding",
            )
        if method.upper() not in SAFE_METHODS:
            self._check_origin(headers, host)

    def _names_us(self, host: str) -> bool:
        name, _ = split_host(host)
        return ANY_HOST in self.names or _is_ip(name) or name in self.names

    def _check_origin(self, headers: dict[str, str], host: str | None) -> None:
        origin = headers.get("origin")
        if origin is None:
            site = headers.get("sec-fetch-site", "").lower()
            if site in ("cross-site", "same-site"):
                raise Refused(403, f"cross-origin request refused (Sec-Fetch-Site: {site})")
            return
        if host is None or not _same_origin(origin, host):
            raise Refused(
                403,
                f"cross-origin request refused: Origin {origin!r} is not this server's own "
                f"origin ({host or self.listen}). Changing requests from web pages of other "
                "origins are never accepted; scripts send no Origin, or send the bearer token",
            )


def _same_origin(origin: str, host: str) -> bool:
    """Whether a browser's `Origin` is the origin of the URL it sent to `Host`."""
    parts = urlsplit(origin.strip().lower())
    default = _DEFAULT_PORTS.get(parts.scheme)
    if default is None or not parts.hostname:  # "null", or not a web origin at all
        return False
    try:
        origin_port = parts.port or default
    except ValueError:
        return False
    name, port = split_host(host)
    return parts.hostname.rstrip(".") == name and origin_port == (port or default)


class _NotFinite(ValueError):
    pass


def _constant(name: str) -> float:
    raise _NotFinite(name)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite(text)
    return value


def is_json(content_type: str | None) -> bool:
    """Whether a `Content-Type` is one FastAPI parses a body of as JSON (`application/json`,
    `application/*+json`, with any parameters)."""
    kind = (content_type or "").split(";")[0].strip().lower()
    maintype, _, subtype = kind.partition("/")
    return maintype == "application" and (subtype == "json" or subtype.endswith("+json"))


# What `check_json` returns for a body it does not parse (empty, or not JSON).
NOT_PARSED: Any = object()


def check_json(body: bytes, content_type: str | None) -> Any:
    """The JSON value of `body` (what `json.loads` gives), or `NOT_PARSED` for an empty body
    or one of another content type (the routes only parse JSON). Raises `Refused(400)` when
    a JSON body holds a number JSON cannot carry, or is no JSON."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if not body or not (kind.endswith("/json") or kind.endswith("+json")):
        return NOT_PARSED
    try:
        return json.loads(body, parse_constant=_constant, parse_float=_finite)
    except _NotFinite as exc:
        shown = str(exc) if len(str(exc)) <= 40 else str(exc)[:37] + "..."
        raise Refused(
            400,
            f"the request body is not valid JSON: {shown} is not a finite number (JSON has no "
            "NaN or Infinity, and a number must fit a 64-bit float)",
        ) from None
    except (ValueError, RecursionError) as exc:
        raise Refused(400, f"the request body is not valid JSON: {exc}") from None
