"""How to reach Nomad: `NomadSettings` (address, ACL token, TLS files, default namespace
and region, time limits), from the standard NOMAD_* variables or built in code.

python-nomad reads NOMAD_* variables behind our back; every setting is passed explicitly
instead (`nomad_session`), so these settings are the single source of truth. The token and
NOMAD_ADDR's `user:password@` are registered with `autoscaler.redact` when they are built,
and never shown by their repr.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from autoscaler.adapters.targets.nomad_errors import redact_address
from autoscaler.core.model import NomadTarget
from autoscaler.errors import TargetError
from autoscaler.redact import register, register_url

_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})  # Go's strconv.ParseBool
_FALSE = frozenset({"0", "f", "F", "false", "FALSE", "False"})


@dataclass(frozen=True, kw_only=True)
class NomadSettings:
    """How to reach Nomad: address, ACL token, TLS, default namespace/region, time limits.

    `timeout` bounds one HTTP attempt; `deadline` bounds one call including its retries.
    The token never appears in `repr`/`str`, nor the address's `user:password@`.
    """

    address: str = "http://127.0.0.1:4646"
    token: str | None = None
    namespace: str | None = None
    region: str | None = None
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    skip_verify: bool = False
    timeout: float = 5.0
    deadline: float = 10.0

    def __repr__(self) -> str:
        token = "'<hidden>'" if self.token else "None"
        return (
            f"NomadSettings(address={redact_address(self.address)!r}, token={token}, "
            f"namespace={self.namespace!r}, region={self.region!r}, ca_cert={self.ca_cert!r}, "
            f"client_cert={self.client_cert!r}, client_key={self.client_key!r}, "
            f"skip_verify={self.skip_verify}, timeout={self.timeout}, deadline={self.deadline})"
        )

    __str__ = __repr__

    def __post_init__(self) -> None:
        # Registered first: from now on no text that leaves the process can show them.
        register(self.token)
        register_url(self.address)
        if self.token is not None and ("\n" in self.token or "\r" in self.token):
            raise TargetError("NOMAD_TOKEN contains a line break: set the token alone")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NomadSettings:
        """Settings from the standard Nomad variables (NOMAD_ADDR, NOMAD_TOKEN, ...).

        Unset or empty variables keep the defaults. Raises `TargetError` when
        NOMAD_SKIP_VERIFY is not a boolean.
        """
        env = os.environ if env is None else env

        def get(name: str) -> str | None:
            return env.get(name) or None

        skip = get("NOMAD_SKIP_VERIFY")
        if skip is not None and skip not in _TRUE | _FALSE:
            # The value is not shown: a token pasted into the wrong variable is still a token.
            raise TargetError("NOMAD_SKIP_VERIFY is not a boolean: use true or false")
        return cls(
            address=get("NOMAD_ADDR") or cls.address,
            token=get("NOMAD_TOKEN"),
            namespace=get("NOMAD_NAMESPACE"),
            region=get("NOMAD_REGION"),
            ca_cert=get("NOMAD_CACERT"),
            client_cert=get("NOMAD_CLIENT_CERT"),
            client_key=get("NOMAD_CLIENT_KEY"),
            skip_verify=skip in _TRUE,
        )

    def verify(self) -> bool | str:
        """What `requests` gets as `verify`: the CA path, True (system CAs), or False."""
        if self.skip_verify:
            return False
        return self.ca_cert or True

    def cert(self) -> tuple[str, str] | str | tuple[()]:
        """What `requests` gets as `cert`: (cert, key), a combined PEM path, or nothing."""
        if self.client_cert and self.client_key:
            return (self.client_cert, self.client_key)
        if self.client_key:
            raise TargetError("NOMAD_CLIENT_KEY is set without NOMAD_CLIENT_CERT: set both")
        return self.client_cert or ()


def placement(ref: NomadTarget, settings: NomadSettings) -> tuple[str, str | None]:
    """The namespace and region `ref` is read and scaled in: the policy's win over the
    settings' (NOMAD_NAMESPACE / NOMAD_REGION); no region means the agent's own."""
    return ref.namespace or settings.namespace or "default", ref.region or settings.region
