"""`autoscaler.redact`: registered secrets and credential-shaped text never leave the process."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
import threading
import uuid
from collections.abc import Iterator, Mapping
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoscaler import redact
from autoscaler.adapters.sources.prometheus_settings import PrometheusSettings
from autoscaler.cli.logs import JsonFormatter
from tests.support.fuzz import fuzz_settings


def secret() -> str:
    """A fresh secret per test: the registry is process-wide and never forgets."""
    return f"s3cr3t-{uuid.uuid4().hex}"


@pytest.mark.parametrize(
    ("shown", "describe"),
    [
        pytest.param(lambda s: s, "as is", id="raw"),
        pytest.param(lambda s: quote(s, safe=""), "url", id="url"),
        pytest.param(lambda s: json.dumps({"token": s}), "json", id="json"),
        pytest.param(lambda s: repr({"token": s}), "repr", id="repr"),
    ],
)
def test_a_registered_secret_is_masked_in_every_usual_form(shown: object, describe: str) -> None:
    value = secret() + '/"quoted"'
    redact.register(value)
    text = f"upstream said: {shown(value)} (end)"  # type: ignore[operator]

    scrubbed = redact.scrub(text)

    assert value not in scrubbed
    assert "s3cr3t" not in scrubbed, describe
    assert scrubbed.endswith("(end)")


def test_url_credentials_register_their_basic_auth_header_too() -> None:
    password = secret()
    redact.register_url(f"https://alice:{password}@prometheus.example:9090")
    basic = base64.b64encode(f"alice:{password}".encode()).decode()

    scrubbed = redact.scrub(f"echoed header: Basic {basic}")

    assert basic not in scrubbed


def test_a_prometheus_username_and_password_register_their_basic_auth_header_too() -> None:
    # Given as --prometheus-username/--prometheus-password-file, not in the URL: a proxy
    # echoing its request headers (Go's JSON of a header map) showed them base64-encoded.
    password = secret()
    PrometheusSettings(url="http://prom.example:9090", username="admin", password=password)
    basic = base64.b64encode(f"admin:{password}".encode()).decode()
    for echoed in (f"got Basic {basic}", f'{{"Other":["{basic}"]}}'):
        assert basic not in redact.scrub(echoed), echoed


def test_an_unregistered_header_echoed_as_go_json_is_masked() -> None:
    scrubbed = redact.scrub('headers: {"Authorization":["Bearer abc.def.ghi"],"Accept":["*/*"]}')
    assert "abc.def.ghi" not in scrubbed and "Accept" in scrubbed


def test_a_password_with_a_raw_at_sign_is_masked_whole() -> None:
    # urlsplit and urllib3 split the userinfo at the last `@` before the host.
    tail = secret()
    url = f"http://admin:hunter@{tail}@prom.example:9090/api"
    redact.register_url(url)
    assert redact.mask_url(url) == "http://***@prom.example:9090/api"
    assert redact.scrub(f"GET {url} failed") == "GET http://***@prom.example:9090/api failed"
    basic = base64.b64encode(f"admin:hunter@{tail}".encode()).decode()
    assert tail not in redact.scrub(f"password hunter@{tail} refused")
    assert basic not in redact.scrub(f"Basic {basic}")


def test_a_webhook_url_is_a_secret_as_a_whole_and_after_its_host() -> None:
    hook = secret()
    url = f"https://hooks.slack.com/services/T0/B0/{hook}"
    redact.register_url(url, whole=True)

    assert hook not in redact.scrub(f"posting to {url} failed")
    assert hook not in redact.scrub(f"path /services/T0/B0/{hook} not found")
    assert redact.url_origin(url) == "https://hooks.slack.com/…"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("GET http://u:pw@h:1/x", "GET http://***@h:1/x", id="scheme"),
        pytest.param("Invalid URL 'https//u:pw@h:1/x'", "Invalid URL 'https//***@h:1/x'", id="bad"),
        pytest.param("dial u:pw@h:4646 refused", "dial ***@h:4646 refused", id="bare"),
        pytest.param("https://token@h/x", "https://***@h/x", id="token-as-user"),
        pytest.param("mail ops@example.com now", "mail ops@example.com now", id="e-mail-kept"),
        pytest.param(
            "policy=web target=aws-asg:web@eu-west-3 from=2",
            "policy=web target=aws-asg:web@eu-west-3 from=2",
            id="asg-target-kept",
        ),
        pytest.param(
            "scaled aws-asg:checkout-web@eu-west-3 up; dial u:pw@h:1",
            "scaled aws-asg:checkout-web@eu-west-3 up; dial ***@h:1",
            id="asg-target-beside-credentials",
        ),
        pytest.param("dial url=u:pw@h:1", "dial url=***@h:1", id="bare-after-equals"),
    ],
)
def test_url_credentials_are_masked_whether_registered_or_not(text: str, expected: str) -> None:
    assert redact.scrub(text) == expected


@pytest.mark.parametrize(
    "echo",
    [
        "X-Nomad-Token: 9a8b7c6d-unknown",
        '{"Authorization": "Bearer unknown-token", "Accept": "*/*"}',
        "{'X-Amz-Security-Token': 'FwoGZXIvYXdzEunknown'}",
        "cookie=session-unknown",
    ],
)
def test_credential_headers_quoted_back_are_masked_even_when_unknown(echo: str) -> None:
    scrubbed = redact.scrub(f"403 from proxy: {echo}")

    assert "unknown" not in scrubbed
    assert "***" in scrubbed


def test_aws_access_key_ids_are_masked() -> None:
    assert "AKIAABCDEFGHIJKLMNOP" not in redact.scrub("Credential=AKIAABCDEFGHIJKLMNOP/2024")


def test_short_values_are_not_secrets_and_text_stays_readable() -> None:
    redact.register("abc", "", None)

    assert redact.scrub("abc 123 hold") == "abc 123 hold"


def test_a_slot_masks_its_current_value_and_the_one_before_and_forgets_older_ones() -> None:
    slot = redact.Slot()
    first, second, third = secret(), secret(), secret()
    before = len(redact.registered())

    for value in (first, second, third):
        slot.set(value)

    assert redact.scrub(f"{first} {second} {third}") == f"{first} *** ***"
    # A refreshed token replaces the one before last: the registry does not grow.
    assert len(redact.registered()) == before + 2 * len(set(redact._forms(third)))


def test_one_secret_registered_by_many_threads_at_once_is_compiled_in_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Each compile of every secret takes seconds once there are many: workers that asked
    # for the same new value at once must not each compile it again, one after another.
    workers = 4
    arrived = threading.Barrier(workers, timeout=5)
    lock = redact._lock

    class ArrivingTogether:
        """The registry's lock, entered by every worker at once (as they queue up behind
        a compile): each has done what it does before taking the lock."""

        def __enter__(self) -> None:
            arrived.wait()
            lock.acquire()

        def __exit__(self, *_exc: object) -> None:
            lock.release()

    compiled: list[str] = []

    class CountingRe:
        def __getattr__(self, name: str) -> object:
            return getattr(re, name)

        def compile(self, pattern: str) -> re.Pattern[str]:
            compiled.append(pattern)
            return re.compile(pattern)

    monkeypatch.setattr(redact, "_lock", ArrivingTogether())
    monkeypatch.setattr(redact, "re", CountingRe())
    value = secret()

    threads = [threading.Thread(target=redact.register, args=(value,)) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(compiled) == 1
    assert redact.scrub(value) == "***"


def test_mask_url_hides_query_values_of_a_malformed_url() -> None:
    assert redact.mask_url("prom:9090/?token=xyz123&x=1") == "prom:9090/?token=***&x=***"


def test_scrub_data_keeps_keys_and_non_text_values() -> None:
    value = secret()
    redact.register(value)

    data = redact.scrub_data({"reasons": [f"saw {value}"], "current": 3, "ok": (True, value)})

    assert data == {"reasons": ["saw ***"], "current": 3, "ok": (True, "***")}


def _reference_scrub_data(value: object) -> object:
    """`scrub_data` as it was written before its fast paths: the behaviour they keep."""
    if isinstance(value, str):
        return redact.scrub(value)
    if isinstance(value, Mapping):
        return {k: _reference_scrub_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_reference_scrub_data(v) for v in value)
    return value


class _Named(str):
    """A str subclass (as an enum's value may be): scrubbed like any text."""


_SECRET_FOR_DATA = secret()
_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.sampled_from(
        ["load 3 → 4", f"token {_SECRET_FOR_DATA}", "http://u:p@h/", "AKIAABCDEFGHIJKLMNOP"]
    ),
    st.text(max_size=12),
    st.builds(_Named, st.sampled_from(["plain", f"x{_SECRET_FOR_DATA}"])),
)
_data = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
    ),
    max_leaves=20,
)


@given(_data, _data)
@fuzz_settings(ci=300)
def test_scrub_data_with_shared_parts_scrubs_as_it_always_did(a: object, b: object) -> None:
    """Values shared between the fields of one record are scrubbed once (`_memo`), with
    the very result scrubbing each on its own gives."""
    redact.register(_SECRET_FOR_DATA)
    shared = {"first": a, "again": a, "other": b, "nested": [a, (b, a)]}
    memo: dict[int, object] = {}
    assert redact.scrub_data(shared, memo) == _reference_scrub_data(shared)
    assert redact.scrub_data(a, memo) == _reference_scrub_data(a)
    assert redact.scrub_data(b) == _reference_scrub_data(b)


# --- logging -------------------------------------------------------------------------------


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO, io.StringIO]]:
    """A logger with a text and a JSON handler, both filtered, as `setup_logging` does."""
    text, as_json = io.StringIO(), io.StringIO()
    handlers = [logging.StreamHandler(text), logging.StreamHandler(as_json)]
    handlers[1].setFormatter(JsonFormatter())
    logger = logging.getLogger(f"test.redact.{uuid.uuid4().hex}")
    logger.propagate = False
    for handler in handlers:
        handler.addFilter(redact.ScrubFilter())
        logger.addHandler(handler)
    yield logger, text, as_json
    for handler in handlers:
        logger.removeHandler(handler)


def test_log_records_are_scrubbed_in_message_arguments_traceback_and_extra(
    logged: tuple[logging.Logger, io.StringIO, io.StringIO],
) -> None:
    logger, text, as_json = logged
    value = secret()
    redact.register(value)

    try:
        raise RuntimeError(f"server answered: token {value}")
    except RuntimeError:
        logger.exception(
            "call with %s failed", value, extra={"decision": {"reasons": [f"saw {value}"]}}
        )

    for output in (text.getvalue(), as_json.getvalue()):
        assert "s3cr3t" not in output
        assert "RuntimeError: server answered: token ***" in output
    record = json.loads(as_json.getvalue())
    assert record["message"] == "call with *** failed"
    assert record["decision"] == {"reasons": ["saw ***"]}


def test_a_prescrubbed_record_still_has_its_traceback_scrubbed(
    logged: tuple[logging.Logger, io.StringIO, io.StringIO],
) -> None:
    # The mark spares the fields its producer scrubbed, never what it could not see.
    logger, text, as_json = logged
    value = secret()
    redact.register(value)
    try:
        raise RuntimeError(f"token {value}")
    except RuntimeError:
        logger.exception("failed", extra={redact.PRESCRUBBED: True})
    for output in (text.getvalue(), as_json.getvalue()):
        assert "s3cr3t" not in output
        assert "RuntimeError: token ***" in output
    assert redact.PRESCRUBBED not in json.loads(as_json.getvalue())


_WORDS = ("authorization", "x-nomad-token", "x-amz-security-token", "x-api-key", "cookie")


def _spellings(word: str) -> Iterator[str]:
    """`word` with each letter in turn replaced by every character `re` matches to it
    case-insensitively (upper case, the Kelvin sign, the long s, dotted and dotless i)."""
    letters = re.compile("(?i)[a-z]")
    alike = [chr(cp) for cp in range(0x110000) if letters.fullmatch(chr(cp))]
    for i, letter in enumerate(word):
        for c in alike:
            if c != letter and re.fullmatch(f"(?i:{letter})", c):
                yield word[:i] + c + word[i + 1 :]


def test_the_quick_pre_check_never_skips_text_the_full_patterns_may_match() -> None:
    # Scrubbing skips its three patterns when `_maybe` says no: it must say yes wherever
    # the case-insensitive `_MAYBE` finds anything, in ASCII text and beside arrows alike.
    texts = [w.upper() for w in _WORDS] + [f"→ {w.title()}: x" for w in _WORDS]
    texts += [s for w in _WORDS for s in _spellings(w)]
    texts += ["a@b", "key AKIAABCDEFGHIJKLMNOP", "ASIA", "AROA", "AIDA", "→ ſet-cooKie"]
    for text in texts:
        assert redact._MAYBE.search(text), text
        assert redact._maybe(text), text
        assert redact._maybe("load: 12 / 7 → 2; " + text), text
    for plain in ["load: 12.5 / 7 per instance → 2", "cooldown up: 40 s left → hold", "ünïcode"]:
        assert not redact._MAYBE.search(plain)
        assert not redact._maybe(plain)


def test_a_webhooks_short_path_or_query_value_is_no_secret_of_its_own() -> None:
    # `/autoscaler` masked `/etc/autoscaler/policies/web.yaml` in every error, and
    # `?channel=checkout` the word `checkout` in policy names and log lines.
    url = f"http://notify.internal/autoscaler?channel=checkout&key={secret()}"
    redact.register_url(url, whole=True)
    assert redact.scrub("invalid policy: /etc/autoscaler/policies/web.yaml:3") == (
        "invalid policy: /etc/autoscaler/policies/web.yaml:3"
    )
    assert redact.scrub("policy checkout-latency scaled") == "policy checkout-latency scaled"
    assert url.rsplit("=", 1)[1] not in redact.scrub(f"posting to {url} failed")


def test_a_prometheus_tenant_header_is_no_secret_but_credential_headers_are() -> None:
    # `X-Scope-OrgID: default` masked the word `default` in every policy name and message.
    tenant = f"tn-{uuid.uuid4().hex[:8]}"  # short, unique: no other test shares the word
    long_tenant = secret()  # 39 characters: under any name, possibly a key
    token, key, cookie = secret(), secret()[:10], secret()
    named_tenant = f"checkout-production-{uuid.uuid4().hex[:8]}"  # long, but named a tenant
    PrometheusSettings(
        headers={
            "X-Scope-OrgID": tenant,
            "X-Grafana-Org": long_tenant,
            "X-Tenant-ID": named_tenant,
            "Authorization": f"Bearer {token}",
            "X-Api-Key": key,  # a short key is still a key
            "Cookie": cookie,
        }
    )

    shown = f"policy {tenant}-web: load 3 → 4"
    assert redact.scrub(shown) == shown
    named = f"policy {named_tenant}-web: load 3 → 4"
    assert redact.scrub(named) == named
    for hidden in (long_tenant, f"Bearer {token}", token, key, cookie):
        assert hidden not in redact.scrub(f"upstream said: {hidden} (end)"), hidden
