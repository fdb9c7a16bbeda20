"""pytest plugin: real Alertmanager servers that deliver to a webhook, for the service tests.

`AlertmanagerServer` runs `/usr/bin/prometheus-alertmanager` on 127.0.0.1 with gossip off
(`--cluster.listen-address=` empty; otherwise it binds *:9094) and one route to a webhook,
grouped per alert name (or by `group_by=`) and sent at once (`group_wait: 0s`), resolved
alerts included, at most `max_alerts=` of a group's alerts per notification when given.
With `token=` it sends `Authorization: Bearer <token>`, as a production config would.
`post_alerts` hands it alerts directly (API v2), as Prometheus does.

`prometheus_alerting(server)` is the Prometheus config section that makes a Prometheus
send its alerts there. Fixture: `alertmanager_factory(webhook_url=..., token=None)`.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.net import LOCAL_HTTP
from tests.support.process import ServerProcess

ALERTMANAGER_BIN = "/usr/bin/prometheus-alertmanager"


class AlertmanagerServer(ServerProcess):
    """One Alertmanager process with its config, storage and log under `workdir`."""

    name = "Alertmanager"

    def __init__(
        self,
        workdir: Path,
        *,
        webhook_url: str,
        token: str | None = None,
        group_by: Sequence[str] = ("alertname",),
        max_alerts: int | None = None,
        port: int | None = None,
        startup_timeout: float = 20.0,
    ) -> None:
        super().__init__(
            workdir, log_name="alertmanager.log", port=port, startup_timeout=startup_timeout
        )
        self.webhook_url = webhook_url
        self.token = token
        self.group_by = list(group_by)
        self.max_alerts = max_alerts
        self.config_path = workdir / "alertmanager.yml"

    def config(self) -> dict[str, Any]:
        webhook: dict[str, Any] = {"url": self.webhook_url, "send_resolved": True}
        if self.max_alerts is not None:
            webhook["max_alerts"] = self.max_alerts
        if self.token is not None:
            webhook["http_config"] = {
                "authorization": {"type": "Bearer", "credentials": self.token}
            }
        return {
            "route": {
                "receiver": "autoscaler",
                "group_by": self.group_by,
                "group_wait": "0s",
                "group_interval": "1s",
                "repeat_interval": "1h",
            },
            "receivers": [{"name": "autoscaler", "webhook_configs": [webhook]}],
        }

    def prepare(self) -> None:
        """Write the config file."""
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))

    def command(self) -> list[str]:
        return [
            ALERTMANAGER_BIN,
            f"--config.file={self.config_path}",
            f"--storage.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
        ]

    def post_alerts(self, *labels: Mapping[str, str]) -> None:
        """Hand Alertmanager firing alerts with these label sets (API v2)."""
        body = json.dumps([{"labels": dict(each)} for each in labels]).encode()
        request = urllib.request.Request(
            self.url + "/api/v2/alerts",
            data=body,
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with LOCAL_HTTP.open(request, timeout=5) as response:
            response.read()

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds now (API v2)."""
        with LOCAL_HTTP.open(self.url + "/api/v2/alerts", timeout=5) as response:
            found: list[dict[str, Any]] = json.loads(response.read())
            return found


def prometheus_alerting(server: AlertmanagerServer) -> dict[str, Any]:
    """The `alerting` section that points a Prometheus at `server`."""
    return {
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}]}]
        }
    }


# Prometheus flags that make an alert reach Alertmanager in about a second.
PROMETHEUS_ALERT_ARGS = ("--rules.alert.resend-delay=1s",)


@pytest.fixture
def alertmanager_factory(tmp_path: Path) -> Iterator[Callable[..., AlertmanagerServer]]:
    """Start Alertmanagers: `alertmanager_factory(webhook_url=..., token=None)`; stopped after."""
    servers: list[AlertmanagerServer] = []

    def factory(**kwargs: Any) -> AlertmanagerServer:
        server = AlertmanagerServer(tmp_path / f"alertmanager-{len(servers)}", **kwargs)
        servers.append(server)
        server.start()
        return server

    yield factory
    for server in servers:
        server.stop()
