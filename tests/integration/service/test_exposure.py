"""The HTTP API beyond loopback, with the real service process: without a token it refuses
to start (exit 4, saying how to fix it) unless `--insecure-no-auth` is given; and however
it listens, it answers only to its own names and origins, while Prometheus still scrapes
it by address and the valid token works from anywhere."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support.net import wait_until
from tests.support.prometheus import PrometheusServer
from tests.support.service import ServiceProcess

pytestmark = pytest.mark.integration

NOWHERE = "http://127.0.0.1:9"
TOKEN = "exposure-token-8c2d"


def test_an_api_beyond_loopback_without_a_token_exits_4_saying_how_to_fix_it(
    service_factory: Callable[..., ServiceProcess],
) -> None:
    service = service_factory(prometheus_url=NOWHERE)
    service.args.append(f"--listen=0.0.0.0:{service.port}")
    service.start(wait=False)
    assert service.wait_exit(timeout=60) == 4
    log = service.log()
    assert f"refusing to serve the HTTP API on 0.0.0.0:{service.port} without a token" in log
    assert "--api-token-file" in log
    assert "--insecure-no-auth" in log
    assert "Traceback" not in log


def test_a_token_that_is_not_printable_ascii_exits_4_naming_the_file(
    service_factory: Callable[..., ServiceProcess],
) -> None:
    # It started, then compared the token as UTF-8 with headers read as latin-1: curl and
    # Alertmanager (which send UTF-8) got 401 for ever, only Python's requests got in.
    service = service_factory(prometheus_url=NOWHERE, token="pässwort-1234-geheim")
    service.start(wait=False)
    assert service.wait_exit(timeout=60) == 4
    log = service.log()
    assert f"--api-token-file {service.token_file}: the token holds" in log
    assert "printable ASCII" in log
    assert "geheim" not in log
    assert "Traceback" not in log


@pytest.mark.parametrize(
    ("args", "env"),
    [
        pytest.param(["--insecure-no-auth"], {}, id="flag"),
        pytest.param([], {"AUTOSCALER_INSECURE_NO_AUTH": "1"}, id="environment"),
    ],
)
def test_insecure_no_auth_starts_it_with_a_warning(
    service_factory: Callable[..., ServiceProcess], args: list[str], env: dict[str, str]
) -> None:
    service = service_factory(prometheus_url=NOWHERE, env=env, args=args)
    service.args.append(f"--listen=0.0.0.0:{service.port}")
    service.start()
    assert service.get("/healthz").status_code == 200
    warnings = [r["message"] for r in service.log_records() if r["level"] == "warning"]
    assert any("without a token (--insecure-no-auth)" in m for m in warnings), warnings
    assert service.stop() == 0


def test_a_bad_insecure_no_auth_value_is_a_usage_error(
    service_factory: Callable[..., ServiceProcess],
) -> None:
    service = service_factory(prometheus_url=NOWHERE, env={"AUTOSCALER_INSECURE_NO_AUTH": "maybe"})
    service.start(wait=False)
    assert service.wait_exit(timeout=60) == 2
    assert "AUTOSCALER_INSECURE_NO_AUTH: expected one of 1, true" in service.log()


def test_the_service_answers_only_its_own_names_and_origins(
    service_factory: Callable[..., ServiceProcess],
) -> None:
    service = service_factory(
        prometheus_url=NOWHERE,
        env={"AUTOSCALER_ALLOWED_HOSTS": "ops.example"},
        args=["--allowed-host=autoscaler"],
    ).start()
    own = f"127.0.0.1:{service.port}"

    def post(path: str, **headers: str) -> int:
        return service.http.post(service.url + path, headers=headers, timeout=10).status_code

    def get(path: str, **headers: str) -> int:
        return service.http.get(service.url + path, headers=headers, timeout=10).status_code

    assert post("/v1/reload", Host="evil.example") == 421
    assert get("/v1/decisions", Host="evil.example:80") == 421
    assert post("/v1/reload", Origin="http://evil.example") == 403
    assert post("/v1/policies/none/evaluate", Origin="null") == 403
    assert post("/v1/reload", Origin=f"http://{own}") == 200
    assert post("/v1/reload") == 200
    assert get("/metrics", Host=own) == 200
    assert get("/metrics", Host="autoscaler:8080") == 200
    assert get("/metrics", Host="ops.example") == 200
    assert service.stop() == 0


def test_prometheus_scrapes_a_token_protected_service_on_every_interface(
    service_factory: Callable[..., ServiceProcess],
    prometheus_factory: Callable[..., PrometheusServer],
) -> None:
    service = service_factory(prometheus_url=NOWHERE, token=TOKEN)
    service.args.append(f"--listen=0.0.0.0:{service.port}")
    service.start()
    scrape = {
        "job_name": "autoscaler",
        "static_configs": [{"targets": [f"127.0.0.1:{service.port}", f"localhost:{service.port}"]}],
    }
    prometheus = prometheus_factory(config={"scrape_configs": [scrape]})

    def both_up() -> bool:
        result = prometheus.query('up{job="autoscaler"} == 1')["result"]
        return len(result) == 2

    wait_until(both_up, timeout=30, what="Prometheus to scrape the service by address and name")
    foreign = {"Host": "evil.example"}
    assert (
        service.http.get(service.url + "/metrics", headers=foreign, timeout=10).status_code == 421
    )
    assert service.post("/v1/reload", token=TOKEN).status_code == 200
    with_token = {**foreign, "Authorization": f"Bearer {TOKEN}"}
    assert service.http.post(service.url + "/v1/reload", headers=with_token, timeout=10).ok
    assert service.stop() == 0
