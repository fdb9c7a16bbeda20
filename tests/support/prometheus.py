"""Real Prometheus servers for tests: start and stop them, push samples, backfill history.

`PrometheusServer` runs `/usr/bin/prometheus` on 127.0.0.1 with a free port, a temporary
TSDB, the remote-write receiver (so tests push exact values, NaN and ±Inf included, that
are queryable at once) and the lifecycle API (`reload()`). Callers add scrape configs, rule
files or an alerting section through `config=`, and flags through `args=`.

Fixtures: `prometheus` (one server per session, or per xdist worker), `metrics` (a unique
metric-name prefix per test on that shared server), `prometheus_factory` (a dedicated server
with its own config/args, stopped after the test) and `dead_prometheus_url`.
"""

from __future__ import annotations

import copy
import json
import struct
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import cramjam
import pytest
import yaml

from tests.support.net import LOCAL_HTTP, free_port
from tests.support.process import ServerProcess

PROMETHEUS_BIN = "/usr/bin/prometheus"
PROMTOOL_BIN = "/usr/bin/promtool"

BASE_CONFIG: Mapping[str, Any] = {
    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
    # Lets tests push (and backfill) samples up to 3 days old.
    "storage": {"tsdb": {"out_of_order_time_window": "3d"}},
}


@dataclass(frozen=True)
class Sample:
    """One value of one series. `timestamp`: seconds since the epoch or a datetime; None = now."""

    metric: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)
    timestamp: float | datetime | None = None


class PrometheusServer(ServerProcess):
    """One `prometheus` process, its config file, TSDB and log, all under `workdir`.

    `config` is deep-merged over `BASE_CONFIG` (dicts merge, anything else replaces).
    `args` are extra flags in `--flag=value` form; a flag given here replaces the default
    with the same name (e.g. `--storage.tsdb.retention.time=1h`).
    Use as a context manager, or call `start()` and `stop()`.
    """

    name = "Prometheus"

    def __init__(
        self,
        workdir: Path,
        *,
        config: Mapping[str, Any] | None = None,
        args: Sequence[str] = (),
        port: int | None = None,
        startup_timeout: float = 20.0,
        binary: str = PROMETHEUS_BIN,
    ) -> None:
        super().__init__(
            workdir, log_name="prometheus.log", port=port, startup_timeout=startup_timeout
        )
        self.config: dict[str, Any] = _deep_merge(BASE_CONFIG, config or {})
        self.config_path = workdir / "prometheus.yml"
        self.data_dir = workdir / "data"
        self._binary = binary
        self._extra_args = list(args)

    def command(self) -> list[str]:
        """The full command line `start()` runs."""
        flags = {
            "--config.file": str(self.config_path),
            "--storage.tsdb.path": str(self.data_dir),
            "--web.listen-address": f"127.0.0.1:{self.port}",
            # Backfilled history must outlive the default 15 days of retention.
            "--storage.tsdb.retention.time": "100y",
        }
        switches = ["--web.enable-remote-write-receiver", "--web.enable-lifecycle"]
        for arg in self._extra_args:
            flags.pop(arg.split("=", 1)[0], None)
        return [
            self._binary,
            *(f"{k}={v}" for k, v in flags.items()),
            *(s for s in switches if s not in self._extra_args),
            *self._extra_args,
        ]

    def prepare(self) -> None:
        """Write the config file."""
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))

    def reload(self) -> None:
        """Make Prometheus re-read its config and rule files (after editing them on disk)."""
        self._http("POST", "/-/reload")

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Deep-merge `config` over the current config, rewrite the file and `reload()`."""
        self.config = _deep_merge(self.config, config)
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        if self.running:
            self.reload()

    def push(
        self,
        metric: str,
        value: float,
        labels: Mapping[str, str] | None = None,
        timestamp: float | datetime | None = None,
    ) -> None:
        """Write one sample over remote write; it is queryable as soon as this returns."""
        self.push_many([Sample(metric, value, labels or {}, timestamp)])

    def push_many(self, samples: Iterable[Sample]) -> None:
        """Write samples in one remote-write request (a series' samples in time order)."""
        body = cramjam.snappy.compress_raw(encode_write_request(samples))
        self._http(
            "POST",
            "/api/v1/write",
            data=bytes(body),
            headers={
                "Content-Encoding": "snappy",
                "Content-Type": "application/x-protobuf",
                "X-Prometheus-Remote-Write-Version": "0.1.0",
            },
        )

    def query(self, promql: str, at: float | datetime | None = None) -> dict[str, Any]:
        """The `data` of an instant query (`resultType` and `result`), as Prometheus sends it."""
        params = {"query": promql}
        if at is not None:
            params["time"] = str(_seconds(at))
        answer = json.loads(self._http("GET", "/api/v1/query?" + urllib.parse.urlencode(params)))
        data: dict[str, Any] = answer["data"]
        return data

    def backfill(self, openmetrics: str) -> None:
        """Add history with `promtool tsdb create-blocks-from openmetrics`.

        The text is OpenMetrics with timestamps in **seconds**, each series in time order
        (out-of-order samples are dropped silently); `# EOF` is appended if missing.
        Prometheus only loads new blocks at startup, so a running server is restarted (same
        port, ~1 s). Remember that an instant query without `at=` sees a series only if it
        has a sample within the lookback (5 min) before now.
        """
        if not openmetrics.rstrip().endswith("# EOF"):
            openmetrics = openmetrics.rstrip("\n") + "\n# EOF\n"
        source = self.workdir / f"backfill-{uuid.uuid4().hex[:8]}.om"
        self.workdir.mkdir(parents=True, exist_ok=True)
        source.write_text(openmetrics)
        was_running = self.running
        self.stop()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # promtool's default cuts 2 h blocks: 14 days of history made ~170 blocks, seconds
        # of promtool time and a startup compaction; one block per day holds the same data.
        command = [
            PROMTOOL_BIN,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=24h",
            str(source),
        ]
        done = subprocess.run(
            [*command, str(self.data_dir)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"promtool backfill failed:\n{done.stdout}\n{done.stderr}")
        if was_running:
            self.start()

    def _http(
        self,
        method: str,
        path: str,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers=dict(headers or {})
        )
        try:
            with LOCAL_HTTP.open(request, timeout=10) as response:
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace").strip()
            raise RuntimeError(f"{method} {path} -> HTTP {exc.code}: {detail}") from None


class Metrics:
    """A per-test namespace on a shared server: `name("x")` is unique to this test."""

    def __init__(self, server: PrometheusServer, prefix: str) -> None:
        self.server = server
        self.prefix = prefix

    def name(self, base: str) -> str:
        """The unique metric name this test uses for `base`."""
        return self.prefix + base

    def push(
        self,
        base: str,
        value: float,
        labels: Mapping[str, str] | None = None,
        timestamp: float | datetime | None = None,
    ) -> str:
        """Push one sample of `name(base)`; returns that name, ready to put in a query."""
        self.server.push(self.name(base), value, labels, timestamp)
        return self.name(base)

    def push_many(self, samples: Iterable[Sample]) -> None:
        """Push samples whose `metric` is a base name (prefixed here)."""
        self.server.push_many(
            Sample(self.name(s.metric), s.value, s.labels, s.timestamp) for s in samples
        )


# --- remote write encoding --------------------------------------------------------------
# WriteRequest { repeated TimeSeries timeseries = 1; }
# TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
# Label        { string name = 1; string value = 2; }
# Sample       { double value = 1; int64 timestamp = 2; }   (timestamp in milliseconds)


def encode_write_request(samples: Iterable[Sample]) -> bytes:
    """A remote-write `WriteRequest` protobuf, one TimeSeries per sample, labels sorted."""
    out = bytearray()
    for sample in samples:
        labels = {**sample.labels, "__name__": sample.metric}
        series = bytearray()
        for name in sorted(labels):
            label = _field_bytes(1, name.encode()) + _field_bytes(2, labels[name].encode())
            series += _field_bytes(1, label)
        ts_ms = round(_seconds(sample.timestamp) * 1000)
        encoded = b"\x09" + struct.pack("<d", sample.value) + b"\x10" + _varint(ts_ms)
        series += _field_bytes(2, encoded)
        out += _field_bytes(1, bytes(series))
    return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 two's complement, as protobuf encodes negative varints
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _seconds(when: float | datetime | None) -> float:
    if when is None:
        return time.time()
    if isinstance(when, datetime):
        return when.timestamp()
    return float(when)


def _deep_merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(base))
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """One real Prometheus for the whole session (one per xdist worker)."""
    with PrometheusServer(tmp_path_factory.mktemp("prometheus")) as server:
        yield server


@pytest.fixture
def metrics(prometheus: PrometheusServer) -> Metrics:
    """A metric-name prefix unique to this test, so tests sharing `prometheus` never collide."""
    return Metrics(prometheus, f"t{uuid.uuid4().hex[:10]}_")


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[..., PrometheusServer]]:
    """Start dedicated servers: `prometheus_factory(config={...}, args=[...])`; stopped after.

    Keyword arguments are those of `PrometheusServer` (except `workdir`). Pass `start=False`
    to get the server unstarted (e.g. to `backfill()` first).
    """
    servers: list[PrometheusServer] = []

    def factory(*, start: bool = True, **kwargs: Any) -> PrometheusServer:
        server = PrometheusServer(tmp_path / f"prometheus-{len(servers)}", **kwargs)
        servers.append(server)
        if start:
            server.start()
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def dead_prometheus_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connections are refused)."""
    return f"http://127.0.0.1:{free_port()}"


def promtool_lint(exposition: str) -> tuple[int, str]:
    """`promtool check metrics` of a `/metrics` page: (exit code, everything it said).
    `(0, "")` when it follows every convention Prometheus' own linter knows."""
    lint = subprocess.run(
        ["promtool", "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return lint.returncode, lint.stdout + lint.stderr
