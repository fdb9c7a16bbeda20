"""The Prometheus source's connection pool: one connection kept per query that may run at once."""

from __future__ import annotations

import urllib3
from requests.adapters import HTTPAdapter

from autoscaler.adapters.sources.coalesce import FETCHERS
from autoscaler.adapters.sources.prometheus import POOL_SIZE, PrometheusSource
from autoscaler.adapters.sources.prometheus_settings import PrometheusSettings
from autoscaler.adapters.targets.nomad_settings import NomadSettings
from autoscaler.config.connections import Settings

URL = "https://prom.example:9443/prefix"


def adapter_of(source: PrometheusSource) -> HTTPAdapter:
    adapter = source._session.get_adapter(f"{URL}/api/v1/query")
    assert isinstance(adapter, HTTPAdapter)
    return adapter


def test_the_pool_keeps_a_connection_for_every_query_that_may_run_at_once() -> None:
    """The client mounts requests' default (10 kept): with --workers evaluations, 4 grouped
    fetchers and a ping at once, urllib3 closed the extras and opened new ones each time."""
    settings = PrometheusSettings(url=URL)
    default = adapter_of(PrometheusSource(settings))
    # requests' private pool size (types-requests does not declare it)
    assert default._pool_maxsize == POOL_SIZE  # type: ignore[attr-defined]
    many = adapter_of(Settings(prometheus=settings, nomad=NomadSettings()).source(workers=32))
    assert many._pool_maxsize == 32 + FETCHERS + 1  # type: ignore[attr-defined]
    for adapter in (default, many):  # retries stay ours (tenacity), never urllib3's
        assert isinstance(adapter.max_retries, urllib3.util.Retry)
        assert adapter.max_retries.total == 0
