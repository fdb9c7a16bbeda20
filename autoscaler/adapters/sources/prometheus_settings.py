"""Where Prometheus is and how to reach it: `PrometheusSettings`, checked when built.

The secrets it holds (a bearer token, a password, credential headers, URL credentials) are
registered with `autoscaler.redact` before anything else, and never shown by its repr.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from autoscaler.redact import (
    mask_url,
    register,
    register_basic,
    register_header,
    register_url,
)

__all__ = ["PrometheusSettings"]

_LINE_BREAK = re.compile(r"[\r\n]")


@dataclass(frozen=True, kw_only=True)
class PrometheusSettings:
    """Where Prometheus is, how to authenticate, and how long one query may take.

    `timeout` bounds one HTTP attempt; `deadline` bounds all attempts of one query together.
    The repr shows neither the token, the password, header values nor URL credentials.
    """

    url: str = "http://localhost:9090"
    bearer_token: str | None = None
    username: str | None = None
    password: str | None = None
    ca_bundle: str | None = None
    # Mutual TLS: the certificate (PEM; with its key unless `client_key` is given) and key.
    client_cert: str | None = None
    client_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)
    timeout: float = 2.0
    deadline: float = 6.0

    def __post_init__(self) -> None:
        # Registered first, so that no error below (nor any later text) can show them.
        register(self.bearer_token)
        for header, sent in self.headers.items():  # credentials; not a tenant ID (`redact`)
            register_header(header, sent)
        register_basic(self.username, self.password)  # the password, and as HTTP Basic
        register_url(self.url)
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            shown = mask_url(self.url)
            raise ValueError(f"url must be http(s)://host[:port][/prefix], got {shown}")
        if parts.query or parts.fragment or self.url.rstrip("/").endswith(("?", "#")):
            # The API paths are appended to the URL: `http://p:9090/?tenant=a` would send
            # `/?tenant=a/api/v1/query`, which Prometheus answers with its HTML UI.
            shown = mask_url(self.url)
            raise ValueError(
                f"url must not carry a query string or fragment (the API paths are appended "
                f"to it), got {shown}: send tenant IDs or tokens with --prometheus-header"
            )
        for name, value in (("bearer_token", self.bearer_token), ("password", self.password)):
            if value is not None and _LINE_BREAK.search(value):
                raise ValueError(f"{name} contains a line break: check the file it is read from")
        for name, value in self.headers.items():
            if _LINE_BREAK.search(f"{name}{value}"):
                raise ValueError(f"header {name.strip()!r} contains a line break")
        if self.bearer_token is not None and self.username is not None:
            raise ValueError("set either bearer_token or username/password, not both")
        if self.password is not None and self.username is None:
            raise ValueError("password is set without username")
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key is set without client_cert")
        if not self.timeout > 0 or not self.deadline > 0:
            raise ValueError("timeout and deadline must be positive (seconds)")

    def __repr__(self) -> str:
        hidden = dict.fromkeys(self.headers, "***")
        return (
            f"PrometheusSettings(url={mask_url(self.url)!r}, "
            f"bearer_token={_mask(self.bearer_token)}, username={self.username!r}, "
            f"password={_mask(self.password)}, ca_bundle={self.ca_bundle!r}, "
            f"client_cert={self.client_cert!r}, client_key={self.client_key!r}, "
            f"headers={hidden!r}, timeout={self.timeout!r}, deadline={self.deadline!r})"
        )

    __str__ = __repr__


def _mask(secret: str | None) -> str:
    return "None" if secret is None else "'***'"
