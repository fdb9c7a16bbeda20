"""Secrets never leave the process: a registry of the secret values in use, and `scrub`.

A server's error body may quote our own request back (a proxy that echoes headers puts
`X-Nomad-Token` in its 403), and a bad configuration value may hold a token. Whatever
the path, text that leaves the process (decisions, log records, API answers, CLI output,
notifications) goes through `scrub`, which replaces:

- every *registered* secret: configuration registers what it reads (Nomad token,
  Prometheus bearer token / password / credential header values / URL credentials, AWS
  keys and session tokens, the API token, webhook URLs), in the forms a request or an
  error shows them: as is, URL-encoded, JSON- and repr-escaped, and `user:password` as
  HTTP Basic credentials (base64); a secret replaced over time (a refreshed AWS session
  token) is held in a `Slot`, which keeps its current value and the one before, not all
  of them;
- URL credentials (`scheme://user:password@`, also without the scheme), values of
  credential headers quoted back (`Authorization: …`, `X-Nomad-Token: …`), and AWS access
  key IDs, whether registered or not.

Values shorter than 4 characters cannot be told apart from ordinary text, so they are not
registered (and guard nothing). `ScrubFilter` applies `scrub` to log records (message,
arguments, traceback, `extra` fields) on the handlers the CLI installs.

May import: the standard library only; every layer except the pure core may import it.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit

__all__ = [
    "MASK",
    "PRESCRUBBED",
    "ScrubFilter",
    "Slot",
    "mask_url",
    "register",
    "register_basic",
    "register_header",
    "register_url",
    "registered",
    "scrub",
    "scrub_data",
    "url_origin",
]

MASK = "***"
# A log record's attribute (via `extra`) saying its producer scrubbed its message, arguments
# and every `extra` field already (`engine.decision_log.log_decision`, a line per decision):
# `ScrubFilter` then leaves it as it is instead of scrubbing each field again.
PRESCRUBBED = "autoscaler_prescrubbed"
MIN_LENGTH = 4

# `scheme://userinfo@`, or a bare `user:password@host` (as an error shows a URL without
# its scheme); an e-mail address (no colon before the @, no //) is left alone, and so is
# an ASG target as decisions name it (`aws-asg:NAME@REGION`), which has the same shape.
# After `//` the userinfo runs to the last `@` before the path (a password may hold a raw
# `@`: `http://admin:hunter@22x@prom:9090`, as urlsplit and urllib3 read it).
_USERINFO = re.compile(
    r"(?:(?<=//)[^/?#\s]+|(?<![^\s'\"(<=,\[])(?!aws-asg:)[^/?#@\s:'\"=]+:[^/?#@\s]*)@"
)
# A credential header quoted back, as `Name: value`, `"Name": "value"` or `'Name': 'value'`
# (also Go's JSON of a header map, `"Name":["value"]`).
_HEADER = re.compile(
    r"(?i)(\b(?:authorization|proxy-authorization|x-nomad-token|x-amz-security-token|"
    r"x-api-key|cookie|set-cookie)[\"']?\s*[:=]\s*\[?[\"']?)[^\r\n\"']+"
)
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b")
_QUERY_VALUE = re.compile(r"([?&][^=&#\s]+=)[^&#\s]+")
# What each of the three patterns above needs to match at all (a superset): text without
# any of it is left as it is after one search instead of three substitutions. Most text
# scrubbed (every reason of every decision) has none.
_MAYBE = re.compile(
    r"@|(?i:authorization|x-nomad-token|x-amz-security-token|x-api-key|cookie)|AKIA|ASIA|AROA|AIDA"
)


def _maybe(text: str) -> bool:
    """Whether `text` may hold what the three patterns match: True whenever `_MAYBE` finds
    something (a superset), in about a tenth of its time. Replays scrub every reason of
    hundreds of thousands of decisions, and a case-insensitive regex search was a tenth
    of an evaluation; substring tests on the lowered text ask the same question.

    `re` matches three characters case-insensitively to a letter of those words although
    `str.lower` does not turn them into it (`ſ` ~ s, `ı` and `İ` ~ i; the Kelvin sign
    lowers to `k`): text holding one goes through `_MAYBE` itself."""
    if "@" in text or "AKIA" in text or "ASIA" in text or "AROA" in text or "AIDA" in text:
        return True
    if not text.isascii() and ("\u017f" in text or "\u0131" in text or "\u0130" in text):
        return _MAYBE.search(text) is not None
    low = text.lower()
    return (
        "authorization" in low
        or "x-nomad-token" in low
        or "x-amz-security-token" in low
        or "x-api-key" in low
        or "cookie" in low
    )


_lock = threading.Lock()
_secrets: set[str] = set()  # registered with `register`: secrets for the process's life
_slots: weakref.WeakSet[Slot] = weakref.WeakSet()  # holding a value, alive
_pattern: re.Pattern[str] | None = None


def register(*values: str | None) -> None:
    """Treat each value (and its encoded forms) as a secret from now on; None is ignored."""
    forms = {form for value in values if value for form in _forms(value)}
    with _lock:  # asked here, so that two threads registering one value compile once
        new = forms - _secrets
        if not new:
            return
        _secrets.update(new)
        _compile()


class Slot:
    """A secret that is replaced over time (the session token of refreshable AWS
    credentials, a new one every hour): `set` registers a value in place of the one before
    last, so a slot holds two values at most, the current one and the one before it (which
    a request sent just before the change may still show).

    `register` keeps every value for the process's life, and each new value compiles the
    pattern of all of them again: a token a refresh replaced would leave a month's worth
    (~720 of ~1 KB) behind, each request that brought a new one then stalling seconds. A
    slot no one holds any more is forgotten at the next change of any secret.
    """

    __slots__ = ("__weakref__", "_forms", "_values")

    def __init__(self) -> None:
        self._values: tuple[str, ...] = ()  # the one before, then the current one
        self._forms: frozenset[str] = frozenset()

    def set(self, value: str | None) -> None:
        """Make `value` the slot's current secret (None and short values are ignored)."""
        if not value or len(value) < MIN_LENGTH:
            return
        with _lock:  # asked here, so that each value is compiled in once by one thread
            if value in self._values:
                if self._values[-1] != value:  # back to the one before: no new form
                    self._values = (self._values[-1], value)
                return
            self._values = (*self._values[-1:], value)
            self._forms = frozenset(form for kept in self._values for form in _forms(kept))
            _slots.add(self)
            _compile()


def _compile() -> None:
    """Compile the pattern of every secret registered and held by a slot (under `_lock`)."""
    global _pattern  # noqa: PLW0603 - one registry per process, on purpose
    every = _secrets.union(*(slot._forms for slot in _slots))
    # Longest first, so that a secret containing another is replaced whole.
    ordered = sorted(every, key=len, reverse=True)
    _pattern = re.compile("|".join(re.escape(s) for s in ordered)) if ordered else None


def register_basic(user: str | None, password: str | None) -> None:
    """Register a `password` and the HTTP Basic credentials `user:password` make (what an
    `Authorization: Basic ...` header echoed back by a proxy shows)."""
    if password:
        register(password, _basic(user or "", password))


# A webhook URL's path, or one of its query values, shorter than this is no secret of its
# own (the URL as a whole still is): see `register_url`.
MIN_PART = 16


def register_url(url: str | None, *, whole: bool = False) -> None:
    """Register a URL's credentials (`user:password@`, query values); with `whole`, also
    the URL itself and everything after its host (a webhook URL is a secret as a whole)."""
    if not url:
        return
    userinfo = _userinfo(url)
    if userinfo:
        user, _, password = userinfo.partition(":")
        register(password, unquote(password), _basic(unquote(user), unquote(password)))
    for match in _QUERY_VALUE.finditer(url):
        value = url[match.end(1) : match.end()]
        if len(value) >= MIN_PART or not whole:
            register(value)
    if whole:
        parts = urlsplit(url)
        rest = url.split(parts.netloc, 1)[1] if parts.netloc else ""
        # Alone, only a path long enough to hold a token (Slack's `/services/T…/B…/X…`):
        # a short one (`/autoscaler`, `?channel=checkout`) masked that word in every file
        # path, policy name and log line. The whole URL is a secret whatever its length.
        register(url, rest if len(rest) >= MIN_PART else None)


# A request header whose name says it carries a credential (`Authorization`, `Cookie`,
# `X-Api-Key`, `X-Auth-Token`, `X-Vault-Secret`, a session or signature): its value is a
# secret whatever its length (from `MIN_LENGTH`, as every secret). See `register_header`.
_CREDENTIAL_NAME = re.compile(
    r"(?i)auth|token|secret|pass|cookie|key|session|signature|credential|jwt|bearer"
)


# A header that names a tenant or organization (`X-Scope-OrgID` of Mimir, Cortex, Loki;
# `X-Grafana-Org-Id`): an ID, never a secret, however long (`checkout-production`).
_TENANT_NAME = re.compile(r"(?i)org-?id|tenant")


def register_header(name: str, value: str | None) -> None:
    """Register the value of a header we send, when it is a secret.

    A header named for a credential (`_CREDENTIAL_NAME`) is one at any length, and of an
    `Authorization: Bearer TOKEN` the credential alone too (an echo may show just it). Any
    other header's value only from `MIN_PART` characters, and a tenant's or organization's
    never (`X-Scope-OrgID: default` masked the word `default` in every policy name and
    message), while a long value under an unusual name may still be a key."""
    if not value:
        return
    if _CREDENTIAL_NAME.search(name):
        scheme, _, credential = value.strip().partition(" ")
        register(value, credential.strip() if scheme.isalpha() else None)
    elif len(value) >= MIN_PART and not _TENANT_NAME.search(name):
        register(value)


def registered() -> frozenset[str]:
    """Every registered secret form, slots' included (for tests and diagnostics; never
    print it)."""
    with _lock:
        return frozenset(_secrets.union(*(slot._forms for slot in _slots)))


def clear() -> None:
    """Forget every registered secret (tests only: a process keeps its secrets for life)."""
    global _pattern  # noqa: PLW0603
    with _lock:
        _secrets.clear()
        for slot in _slots:
            slot._values, slot._forms = (), frozenset()
        _slots.clear()
        _pattern = None


def scrub(text: str) -> str:
    """`text` with every registered secret, URL credential and credential header masked."""
    if not text:
        return text
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    if not _maybe(text):
        return text
    text = _USERINFO.sub(MASK + "@", text)
    text = _HEADER.sub(r"\1" + MASK, text)
    return _ACCESS_KEY_ID.sub(MASK, text)


def scrub_data(value: Any, _memo: dict[int, Any] | None = None) -> Any:
    """`value` with `scrub` applied to every string inside dicts, lists and tuples.

    `_memo` (id of a value -> its scrubbed form) lets one caller scrub objects that several
    of its values share once (a decision's log record holds each field twice); the caller
    keeps every value it passes alive meanwhile, so no id is reused. Only plain str, dict,
    list and tuple are remembered: another mapping may make its items on the fly."""
    kind = type(value)
    if kind in _PLAIN:  # the common leaves, without the ABC checks below
        return value
    if kind not in _BUILTIN:
        _memo = None
    elif _memo is not None:
        done = _memo.get(id(value), _memo)
        if done is not _memo:
            return done
    if isinstance(value, str):
        scrubbed: Any = scrub(value)
    elif isinstance(value, Mapping):  # keys are field names, not text
        scrubbed = {k: scrub_data(v, _memo) for k, v in value.items()}
    elif isinstance(value, list | tuple):
        scrubbed = type(value)(scrub_data(v, _memo) for v in value)
    else:
        return value
    if _memo is not None:
        _memo[id(value)] = scrubbed
    return scrubbed


_PLAIN = frozenset({int, float, bool, type(None)})
_BUILTIN = frozenset({str, dict, list, tuple})


def mask_url(url: str) -> str:
    """A URL fit to show: credentials and query values masked, even when it is malformed."""
    return _QUERY_VALUE.sub(r"\1" + MASK, scrub(url))


def url_origin(url: str) -> str:
    """`scheme://host[:port]/…`: enough to tell URLs apart, nothing of their secret parts."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}/…"


class ScrubFilter(logging.Filter):
    """Scrubs a log record in place: message and arguments, traceback, stack, `extra`.

    Installed on a handler, it sees the records of every logger that reaches the handler.
    The traceback is rendered here (and cached on the record, as `Formatter` does), so
    formatters print the scrubbed text. A record marked `PRESCRUBBED` without a traceback
    or stack is passed as it is: its producer scrubbed all it holds.
    """

    _standard = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            getattr(record, PRESCRUBBED, False)
            and not record.exc_info
            and not record.exc_text
            and not record.stack_info
        ):
            return True
        try:
            record.msg = scrub(record.getMessage())
        except Exception:  # a bad format string: let the handler report it as usual
            return True
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        memo: dict[int, Any] = {}  # what two fields share is scrubbed once
        for key, value in list(vars(record).items()):
            if key not in self._standard and type(value) not in _PLAIN and _is_data(value):
                setattr(record, key, scrub_data(value, memo))
        return True


def _is_data(value: Any) -> bool:
    return isinstance(value, str | Mapping | list | tuple)


def _forms(value: str) -> Iterable[str]:
    """The ways a secret shows up in text: as is, URL-encoded, JSON- and repr-escaped."""
    if len(value) < MIN_LENGTH:
        return ()
    return {
        value,
        quote(value, safe=""),
        quote_plus(value, safe=""),
        json.dumps(value)[1:-1],
        repr(value)[1:-1],
    }


def _basic(user: str, password: str) -> str | None:
    """The HTTP Basic credentials `requests` sends for a URL's `user:password@`."""
    if not password:
        return None
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _userinfo(url: str) -> str:
    """The `user:password` of a URL (with or without a scheme, even malformed), or ""."""
    match = _USERINFO.search(url)
    return match.group(0)[:-1] if match else ""
