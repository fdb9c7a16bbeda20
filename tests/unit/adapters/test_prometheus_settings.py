"""What `PrometheusSettings` accepts as the server's URL."""

from __future__ import annotations

import pytest

from autoscaler.adapters.sources.prometheus_settings import PrometheusSettings


@pytest.mark.parametrize(
    "url",
    [
        "http://prom.example:9090/?tenant=a",
        "http://prom.example:9090/prefix?x=1",
        "http://prom.example:9090/#top",
        "http://prom.example:9090/?",
    ],
)
def test_a_url_with_a_query_string_or_fragment_is_refused_before_any_query(url: str) -> None:
    # The API paths are appended to the URL, so the query string would swallow them.
    with pytest.raises(ValueError, match="must not carry a query string or fragment"):
        PrometheusSettings(url=url)


def test_the_refusal_does_not_show_a_token_given_in_the_query_string() -> None:
    with pytest.raises(ValueError, match="query string") as refused:
        PrometheusSettings(url="https://prom.example/?token=s3cret-7f3a9e1")
    assert "s3cret-7f3a9e1" not in str(refused.value)


@pytest.mark.parametrize(
    "url", ["http://prom.example:9090", "http://prom.example:9090/", "https://p.example/prefix/"]
)
def test_a_url_with_a_path_prefix_and_no_query_string_is_accepted(url: str) -> None:
    assert PrometheusSettings(url=url).url == url
