"""The connection pool shared by everything that reaches one Nomad: it keeps a connection
for every request discovery may have in flight, besides the evaluations'."""

from __future__ import annotations

from requests.adapters import HTTPAdapter

from autoscaler.adapters.discovery.nomad import CONNECTIONS, NomadDiscovery
from autoscaler.adapters.targets.nomad_session import POOL_SIZE, shared_session
from autoscaler.adapters.targets.nomad_settings import NomadSettings


def _kept(settings: NomadSettings) -> int:
    adapter = shared_session(settings).get_adapter(settings.address)
    assert isinstance(adapter, HTTPAdapter)
    return int(adapter._pool_maxsize)  # type: ignore[attr-defined]


def test_discovery_grows_the_pool_the_targets_already_share() -> None:
    # Discovery's readers and probes beside the evaluations outnumbered the 16 kept: urllib3
    # closed the connections coming back ("Connection pool is full, discarding connection").
    settings = NomadSettings(address="http://nomad.pool-test.example:4646")
    session = shared_session(settings)  # as the targets build it, first
    assert _kept(settings) == POOL_SIZE
    NomadDiscovery(settings)
    assert shared_session(settings) is session  # still the one every target holds
    assert _kept(settings) == POOL_SIZE + CONNECTIONS
    shared_session(settings)  # a target built later asks for less: the pool stays as large
    assert _kept(settings) == POOL_SIZE + CONNECTIONS
