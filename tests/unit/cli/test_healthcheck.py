"""The container health check: 0 while `/readyz` answers 200, 1 (with the reason) when it
answers 503 or nothing answers; light enough to run every few seconds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from autoscaler.cli import healthcheck
from tests.unit.api.conftest import Api, StubBackend


@pytest.mark.parametrize(
    ("listen", "url"),
    [
        pytest.param("0.0.0.0:8080", "http://127.0.0.1:8080/readyz", id="every-ipv4-interface"),
        pytest.param(":8080", "http://127.0.0.1:8080/readyz", id="port-only"),
        pytest.param("[::]:8080", "http://[::1]:8080/readyz", id="every-ipv6-interface"),
        pytest.param("[::1]:9000", "http://[::1]:9000/readyz", id="ipv6-loopback"),
        pytest.param("10.1.2.3:8080", "http://10.1.2.3:8080/readyz", id="one-address"),
    ],
)
def test_the_url_reaches_the_listening_server_from_this_host(listen: str, url: str) -> None:
    assert healthcheck.readyz_url(listen) == url


def test_ready_is_healthy(serve_api: Callable[..., Api]) -> None:
    api = serve_api()
    code, line = healthcheck.check(f"127.0.0.1:{api.port}")
    assert (code, line) == (0, f"ready (http://127.0.0.1:{api.port}/readyz)")


def test_not_ready_is_unhealthy_and_says_why(serve_api: Callable[..., Api]) -> None:
    api = serve_api(backend=StubBackend(not_ready="Prometheus unreachable: refused"))
    code, line = healthcheck.check(f"0.0.0.0:{api.port}")
    assert code == 1
    assert line.endswith("answered 503): Prometheus unreachable: refused")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_nothing_listening_is_unhealthy() -> None:
    code, line = healthcheck.check(f"127.0.0.1:{_free_port()}", timeout=2)
    assert code == 1
    assert line.startswith("no answer from http://127.0.0.1:")


def test_a_bad_address_is_unhealthy_with_the_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert healthcheck.main(["nonsense"]) == 1
    assert "write it as HOST:PORT" in capsys.readouterr().out


def test_no_http_api_means_nothing_to_check(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTOSCALER_LISTEN", "")
    assert healthcheck.main([]) == 0
    assert "nothing to check" in capsys.readouterr().out


def test_as_the_image_runs_it_from_the_environment_ignoring_proxies(
    serve_api: Callable[..., Api],
) -> None:
    api = serve_api()
    env = {
        **os.environ,
        "AUTOSCALER_LISTEN": f"0.0.0.0:{api.port}",
        "HTTP_PROXY": f"http://127.0.0.1:{_free_port()}",  # would refuse: must not be used
        "http_proxy": f"http://127.0.0.1:{_free_port()}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "autoscaler.cli.healthcheck"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (
        0,
        f"ready (http://127.0.0.1:{api.port}/readyz)",
    )


def test_it_imports_no_web_framework_or_cloud_client() -> None:
    """Run every 30 s in the container: it must start in milliseconds, not load FastAPI."""
    script = (
        "import sys, autoscaler.cli.healthcheck; "
        "print(sorted(m for m in ('fastapi', 'uvicorn', 'boto3', 'pydantic') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


class _Answer(BaseHTTPRequestHandler):
    """Answers every GET with the status and body of the server's `answer`."""

    def do_GET(self) -> None:
        status, body = self.server.answer  # type: ignore[attr-defined]
        self.send_response(status)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        pytest.param(503, b"<html>down</html>", "Service Unavailable", id="not-json"),
        pytest.param(503, b"[1, 2]", "Service Unavailable", id="json-but-no-object"),
        pytest.param(502, b'{"detail": "bad gateway"}', "bad gateway", id="a-proxy-detail"),
        pytest.param(421, b'{"detail": "Host not allowed"}', "Host not allowed", id="guard"),
    ],
)
def test_any_other_answer_is_unhealthy_with_what_it_said(
    status: int, body: bytes, reason: str
) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Answer)
    server.answer = (status, body)  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        code, line = healthcheck.check(f"127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
    assert code == 1
    assert line.endswith(f"answered {status}): {reason}")


def test_the_reason_is_printed_on_one_line_with_its_control_characters_escaped(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The reason is the server's text: it may clear the screen of whoever reads the health
    check's output (`docker inspect`), or forge a line."""
    server = HTTPServer(("127.0.0.1", 0), _Answer)
    reason = '{"reason": "down\\u001b[2J\\u001b[31m\\nready (forged)\\u202e\\u009b"}'
    server.answer = (503, reason.encode())  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        code = healthcheck.main([f"127.0.0.1:{server.server_port}"])
    finally:
        server.shutdown()
        server.server_close()
    out = capsys.readouterr().out
    assert code == 1
    assert out.endswith("answered 503): down\\x1b[2J\\x1b[31m\\nready (forged)\\u202e\\x9b\n"), out
    assert out.count("\n") == 1 and "\x1b" not in out and "\u202e" not in out
