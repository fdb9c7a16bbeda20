"""A moto server that checks every request's credentials and signature as AWS does.

moto enforces IAM authentication once `INITIAL_NO_AUTH_ACTION_COUNT` requests have been
served (`/moto-api/reset-auth` sets it): an access key IAM does not know is refused with
`InvalidClientTokenId`, a signature made with the wrong secret with `SignatureDoesNotMatch`,
and a key's user must be allowed the action. That setting is global to moto's process, so
the shared `moto_server` (a thread of the test process) cannot turn it on without every
other test of the worker having to sign with real IAM keys: this one runs in a process of
its own, with the same gaps filled (`aws.fill_moto_gaps`).

`MotoAuthServer.start()` serves with authentication off; `enforce_auth(admin)` creates
an IAM user allowed everything and turns authentication on; `admin` then holds that
user's key, with which the tests arrange what they need.
"""

from __future__ import annotations

import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.aws import REGION, fill_moto_gaps
from tests.support.net import LOCAL_HTTP
from tests.support.process import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
ALLOW_ALL = (
    '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'
)


@dataclass(frozen=True)
class Key:
    """An access key pair."""

    id: str
    secret: str

    def credentials_file(self, path: Path) -> None:
        """Write `path` as a shared credentials file whose default profile is this key."""
        path.write_text(
            f"[default]\naws_access_key_id = {self.id}\naws_secret_access_key = {self.secret}\n"
        )


class MotoAuthServer(ServerProcess):
    """moto in a process of its own (authentication is global to moto's process)."""

    name = "moto (IAM authentication)"
    admin: Key | None = None

    def command(self) -> list[str]:
        launch = (
            "import sys; sys.path.insert(0, sys.argv[1]); "
            "from tests.support.moto_auth import serve; serve(int(sys.argv[2]))"
        )
        return [sys.executable, "-c", launch, str(ROOT), str(self.port)]

    def _ready(self) -> bool:
        try:
            with LOCAL_HTTP.open(self.url + "/moto-api/data.json", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def enforce_auth(self) -> Key:
        """Create an IAM user allowed every action and its key (`admin`), then have every
        later request authenticated."""
        iam = self.client("iam", Key("testing", "testing"))
        self.admin = self.new_key(self.new_user("admin", iam), iam)
        request = urllib.request.Request(  # a form's body would not reach moto's `data`
            f"{self.url}/moto-api/reset-auth", data=b"0", headers={"Content-Type": "text/plain"}
        )
        with LOCAL_HTTP.open(request, timeout=10) as response:
            response.read()
        return self.admin

    def client(self, service: str, key: Key | None = None) -> Any:
        """A boto3 client of `service` signing with `key` (the admin's by default)."""
        key = key or self.admin
        assert key is not None, "enforce_auth() first"
        make: Any = boto3.client  # untyped: the stubs type it by service name only
        return make(
            service,
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id=key.id,
            aws_secret_access_key=key.secret,
        )

    def new_user(self, name: str, iam: Any = None) -> str:
        """A new IAM user allowed every action; `name`."""
        iam = iam or self.client("iam")
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="all", PolicyDocument=ALLOW_ALL)
        return name

    def new_key(self, user: str, iam: Any = None) -> Key:
        """A new access key of IAM user `user`."""
        made = (iam or self.client("iam")).create_access_key(UserName=user)["AccessKey"]
        return Key(made["AccessKeyId"], made["SecretAccessKey"])


def serve(port: int) -> None:
    """Run moto's server on 127.0.0.1:`port` (in the process `MotoAuthServer` starts)."""
    from moto.server import main

    fill_moto_gaps(pytest.MonkeyPatch())  # the process ends with it: nothing to undo
    main(["-H", "127.0.0.1", "-p", str(port)])
