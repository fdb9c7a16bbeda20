"""`http_env.settle`: a session gets from the environment what requests would have read for
each request (proxies, NO_PROXY, ~/.netrc, the CA bundle), once, and never reads it again."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from autoscaler.adapters.http_env import ca_bundle, settle

URL = "http://nomad.internal:4646"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy",
                 "https_proxy", "all_proxy", "no_proxy", "REQUESTS_CA_BUNDLE",
                 "CURL_CA_BUNDLE", "NETRC"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def _what_requests_would_use(url: str) -> tuple[object, object, object]:
    """Proxies, auth and verify that a trusting session settles on for a request to `url`."""
    session = requests.Session()
    prepared = session.prepare_request(requests.Request("GET", url))
    settings = session.merge_environment_settings(url, {}, None, True, None)
    return settings["proxies"], prepared.headers.get("Authorization"), settings["verify"]


def _what_a_settled_session_uses(url: str) -> tuple[object, object, object]:
    session = settle(requests.Session(), url)
    prepared = session.prepare_request(requests.Request("GET", url))
    settings = session.merge_environment_settings(url, {}, None, session.verify, None)
    return settings["proxies"], prepared.headers.get("Authorization"), settings["verify"]


@pytest.mark.parametrize(
    "env",
    [
        pytest.param({}, id="nothing set"),
        pytest.param({"HTTP_PROXY": "http://proxy:3128"}, id="proxy"),
        pytest.param(
            {"HTTP_PROXY": "http://proxy:3128", "NO_PROXY": ".internal"}, id="proxy bypassed"
        ),
        pytest.param({"REQUESTS_CA_BUNDLE": "/etc/ca.pem"}, id="CA bundle"),
        pytest.param({"CURL_CA_BUNDLE": "/etc/curl.pem"}, id="curl CA bundle"),
    ],
)
def test_a_settled_session_uses_what_requests_would_read_each_time(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    expected = _what_requests_would_use(URL)
    assert _what_a_settled_session_uses(URL) == expected


def test_netrc_credentials_of_the_host_are_used_as_before(clean_env: Path) -> None:
    netrc = clean_env / ".netrc"
    netrc.write_text("machine nomad.internal login ops password s3cret\n")
    netrc.chmod(0o600)
    expected = _what_requests_would_use(URL)
    assert expected[1] is not None  # requests does send them
    assert _what_a_settled_session_uses(URL) == expected


def test_the_environment_is_read_once_not_per_request(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = settle(requests.Session(), URL)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    (clean_env / ".netrc").write_text("machine nomad.internal login ops password s3cret\n")
    settings = session.merge_environment_settings(URL, {}, None, True, None)
    assert settings["proxies"] == {}
    assert (
        session.prepare_request(requests.Request("GET", URL)).headers.get("Authorization") is None
    )


def test_own_settings_win_over_the_environment(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ca.pem")
    session = requests.Session()
    session.proxies["http"] = "http://mine:8080"
    session.verify = "/etc/private-ca.pem"
    settle(session, URL)
    assert session.proxies["http"] == "http://mine:8080"
    assert session.verify == "/etc/private-ca.pem"
    assert ca_bundle(False) is False
    assert ca_bundle("/etc/private-ca.pem") == "/etc/private-ca.pem"
    assert ca_bundle(True) == "/etc/ca.pem"
