"""`autoscaler run`: the long-lived service (and the single `--once` pass).

Wiring and process life only; the parts live in their own modules:

    registry    which policies are loaded (reload keeps broken files' last good version)
    discovery   targets of templates and Nomad's scaling policies, watched (hot reloads)
    scheduler   when each policy runs (interval + jitter, bounded pool, no self-overlap)
    controller  ties them to the reconciler, telemetry and notifications; backs the API
    http_api    the HTTP API (FastAPI on uvicorn, in a thread)

Signals: SIGTERM/SIGINT stop (evaluations in flight finish, state is persisted, exit 0;
with `--once`, the policy in flight finishes, the others are skipped, exit 3), SIGHUP
reloads the policy files. The policy files are also polled for changes.

With a `Leadership` (PostgreSQL state), only the leader evaluates; on SIGTERM the leader
writes out what it knows, then releases the lease, so a standby takes over at once.
"""

from __future__ import annotations

import ipaddress
import logging
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from autoscaler import redact
from autoscaler.adapters.sources.coalesce import CoalescingSource
from autoscaler.adapters.state import LayeredStateStore
from autoscaler.adapters.targets import TargetFactory, aws_calls
from autoscaler.api import client_log
from autoscaler.api.http import HttpServer, create_app
from autoscaler.api.request_metrics import RequestMetrics
from autoscaler.config.connections import Settings, unprintable
from autoscaler.config.listen import parse_listen
from autoscaler.config.service import ServiceConfig
from autoscaler.core.model import Policy
from autoscaler.core.names import counted
from autoscaler.core.ports import MetricSource, StateStore
from autoscaler.engine.evaluation import Evaluation
from autoscaler.engine.histories import range_source
from autoscaler.engine.reconciler import Reconciler, utcnow
from autoscaler.errors import AutoscalerError, Problem, StateError
from autoscaler.policy.loader import load_paths
from autoscaler.service.allocator import fix_mmap_threshold
from autoscaler.service.controller import Controller
from autoscaler.service.discovery import Discovery
from autoscaler.service.discovery_setup import from_settings, with_discovered
from autoscaler.service.discovery_sources import is_partly_read, split_source_failures
from autoscaler.service.heap import collect_less_often
from autoscaler.service.leadership import Leadership
from autoscaler.service.notify import Notifier
from autoscaler.service.registry import PolicyRegistry
from autoscaler.service.retention import TIDY_EVERY
from autoscaler.service.scheduler import crashed
from autoscaler.service.telemetry import Telemetry

log = logging.getLogger("autoscaler.service")

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_NOT_EVALUATED = 3
# How long `--once` waits, at most, for the notifications of its pass before it exits.
ONCE_NOTIFY_WAIT = 10.0
# A change of the policy files seen by polling is read once they have not changed for
# SETTLE s (a write in progress is not read half-done), looked at for SETTLE_MAX s at most.
SETTLE = 1.0
SETTLE_MAX = 30.0


def run_once(
    paths: Sequence[str],
    settings: Settings,
    state: StateStore,
    *,
    dry_run: bool,
    leadership: Leadership | None = None,
    log_unchanged: bool = True,
    notify_urls: Sequence[str] = (),
    scale_up_unrecorded: bool = False,
) -> int:
    """Evaluate every enabled policy once, apply (unless dry-run), and return an exit code.

    With `leadership`, this replica holds the lease already; it is released at the end.
    Templates are expanded (and Nomad's scaling policies read) with one discovery pass.
    Each scaling action is POSTed to `notify_urls`, as the service does; the pass waits up
    to ONCE_NOTIFY_WAIT seconds for them before returning (a notice never fails the pass).
    SIGTERM/SIGINT stop the pass as they stop the service: the policy in flight finishes
    (a recorded scaling action is made), the others are skipped, and the exit code is 3.
    """
    with _stop_signals() as stop:
        result = load_paths(paths)
        problems = list(result.problems)
        policies = result.policies
        unreadable_sources: list[Problem] = []
        warnings = list(result.warnings)
        if result.templates or settings.nomad_scaling_policies:
            discovery = from_settings(settings, watch=False)
            policies, found = with_discovered(result, discovery, warnings=warnings)
            invalid, unreadable_sources = split_source_failures(found)
            problems += invalid
        for problem in problems:
            log.error("invalid policy: %s", problem)
        for warning in warnings:  # valid policies: evaluated all the same
            log.warning("policy file %s", warning)
        for problem in unreadable_sources:  # its targets are unknown: not evaluated (3)
            if not is_partly_read(problem):  # (discovery warned of those it read in part)
                log.error("discovery source unreadable: %s", problem)
        if not any(p.enabled for p in policies):  # a wrong folder, as the service says it
            log.warning("no enabled policy in %s: this pass evaluates nothing", ", ".join(paths))
        prometheus = settings.source()
        source = CoalescingSource(prometheus)  # grouped queries: one per template
        reconciler = _reconciler(
            source,
            settings,
            state,
            leadership,
            prometheus,
            log_unchanged=log_unchanged,
            scale_up_unrecorded=scale_up_unrecorded,
        )
        notifier = Notifier(notify_urls, queue_size=max(100, len(policies)))  # none dropped
        if leadership is not None:
            leadership.start()  # renew while the policies are evaluated
        try:
            evaluations, skipped = _evaluate_all(
                reconciler, policies, dry_run=dry_run, notifier=notifier, stop=stop
            )
        finally:
            if leadership is not None:
                _hand_over(leadership, state)
            notifier.close(timeout=ONCE_NOTIFY_WAIT)
    if problems:
        return EXIT_INVALID
    if skipped or unreadable_sources:
        return EXIT_NOT_EVALUATED
    return EXIT_OK if all(e.ok for e in evaluations) else EXIT_NOT_EVALUATED


def _evaluate_all(
    reconciler: Reconciler,
    policies: Sequence[Policy],
    *,
    dry_run: bool,
    notifier: Notifier,
    stop: threading.Event,
) -> tuple[list[Evaluation], int]:
    """Evaluate each enabled policy in turn until `stop` is set: (evaluations, skipped)."""
    enabled = [p for p in policies if p.enabled]
    evaluations: list[Evaluation] = []
    for policy in enabled:
        if stop.is_set():
            skipped = len(enabled) - len(evaluations)
            log.warning("stopped: %d of %d policies not evaluated", skipped, len(enabled))
            return evaluations, skipped
        try:
            evaluation = reconciler.evaluate(policy, dry_run=dry_run)
        except Exception as exc:  # a bug in one policy's path: the others are still evaluated
            log.exception("evaluation of policy %s crashed", policy.name)
            evaluation = crashed(policy, exc, now=utcnow(), dry_run=dry_run)
        evaluations.append(evaluation)
        if evaluation.decision.changes_target:
            notifier.notify(evaluation.decision)
    return evaluations, 0


@contextmanager
def _stop_signals() -> Iterator[threading.Event]:
    """An event SIGTERM and SIGINT set while the block runs (instead of ending the process
    between a recorded scaling action and its scale call); the handlers before are back
    after it. Outside the main thread, where no handler can be set, it is never set."""
    stop = threading.Event()

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping after the policy in flight", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.signal(sig, on_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def read_token(path: str | None) -> str | None:
    """The API bearer token from its file; a missing, unreadable or empty file is fatal,
    and so is a token that is not printable ASCII (RFC 6750's b64token, the rest of the
    punctuation, and spaces or tabs inside it, which worked before and still do): one with `ä` or
    a byte-order mark started, but was compared as UTF-8 with headers read as latin-1, so
    curl and Alertmanager never got in. The error names the file and the first wrong
    byte's position, never the token."""
    if not path:
        return None
    try:
        raw = Path(path).read_bytes().strip()
    except OSError as exc:
        raise AutoscalerError(f"cannot read --api-token-file {path}: {exc.strerror}") from exc
    if not raw:
        raise AutoscalerError(f"--api-token-file {path} is empty; put the token in it")
    what = unprintable(raw)
    if what is not None:
        raise AutoscalerError(
            f"--api-token-file {path}: the token holds {what}; a bearer token is printable "
            "ASCII characters only (letters, digits, punctuation, spaces), e.g. "
            "`openssl rand -hex 32`"
        )
    token = raw.decode("ascii")
    redact.register(token)
    return token


def _reconciler(
    source: MetricSource,
    settings: Settings,
    state: StateStore,
    leadership: Leadership | None,
    prometheus: object,
    *,
    targets: TargetFactory | None = None,
    log_unchanged: bool = True,
    scale_up_unrecorded: bool = False,
) -> Reconciler:
    """The reconciler; with `leadership`, on the database's clock and fenced by the lease.
    `prometheus` answers the range queries forecasts read their history with; `targets`
    builds the targets (default: `settings`' factory, reading every status)."""
    history = range_source(prometheus)
    targets = settings.targets() if targets is None else targets
    if leadership is None:
        return Reconciler(
            source=source,
            targets=targets,
            state=state,
            history=history,
            log_unchanged=log_unchanged,
            scale_up_unrecorded=scale_up_unrecorded,
        )
    return Reconciler(
        source=source,
        targets=targets,
        state=state,
        clock=leadership.clock,
        fence=leadership.fence,
        tenure=leadership.check,
        history=history,
        log_unchanged=log_unchanged,
        scale_up_unrecorded=scale_up_unrecorded,
    )


def _hand_over(leadership: Leadership, state: StateStore) -> None:
    """Stop renewing; as the leader, write out what is pending, then release the lease so
    a standby takes over at once (it then knows all this replica knew)."""
    leadership.stop()
    if not leadership.acting():
        return
    if isinstance(state, LayeredStateStore):
        try:
            state.flush()
        except StateError as exc:
            log.error("could not write the state out before handing over: %s", exc)
    leadership.release()


def _controller(
    config: ServiceConfig, settings: Settings, state: StateStore, leadership: Leadership | None
) -> tuple[Controller, CoalescingSource, Discovery, TargetFactory]:
    """The controller and its parts, with their metrics; the source, the discovery
    watchers and the targets (their Nomad job event streams) to close at the end."""
    telemetry = Telemetry(per_policy_histograms=config.metrics_histograms == "per-policy")
    targets = settings.targets(watch=True)
    prometheus = settings.source(workers=config.workers)
    source = CoalescingSource(prometheus)
    telemetry.watch_queries(lambda: (source.sent, source.shared))
    layered = state if isinstance(state, LayeredStateStore) else None
    telemetry.watch_state(
        lambda: state.durability_problem() is None,
        dropped=None if layered is None else lambda: layered.dropped,
    )
    if leadership is not None:
        telemetry.watch_leader(leadership.acting, leadership.transitions)
    else:
        telemetry.watch_leader(lambda: True)
    telemetry.watch_nomad_streams(targets.nomad_streams)
    telemetry.watch_aws_requests(aws_calls.counts)
    telemetry.watch_malformed_requests(client_log.CLIENT_ERRORS.counts)
    # The controller is built next: the lambda reads it when a discovery change comes.
    discovery = from_settings(
        settings,
        poll=config.discovery_interval,
        on_change=lambda: controller.rediscover(),  # noqa: PLW0108
    )
    telemetry.watch_discovery(discovery.health)
    controller = Controller(
        registry=PolicyRegistry(config.paths, discover=discovery),
        # Forecasts read their history from Prometheus itself: range queries are not coalesced.
        reconciler=_reconciler(
            source,
            settings,
            state,
            leadership,
            prometheus,
            targets=targets,
            log_unchanged=config.log_decisions == "all",
            scale_up_unrecorded=config.scale_up_unrecorded,
        ),
        state=state,
        source=source,
        telemetry=telemetry,
        notifier=Notifier(config.notify_urls, on_result=telemetry.notified),
        dry_run=config.dry_run,
        workers=config.workers,
        clock=utcnow,
        leadership=leadership,
    )
    if leadership is not None:
        leadership.subscribe(on_leading=controller.scheduler.wake)  # dispatch at once
    return controller, source, discovery, targets


def run_service(
    config: ServiceConfig,
    settings: Settings,
    state: StateStore,
    *,
    leadership: Leadership | None = None,
) -> int:
    """Run until SIGTERM/SIGINT; returns 0 after a clean stop.

    Raises `AutoscalerError` for startup problems (token file, listen address, an API
    beyond loopback without a token), before anything is evaluated. With `leadership`,
    evaluates only while this replica leads.
    """
    token = read_token(config.api_token_file)
    if config.listen:
        check_exposure(config.listen, token, insecure=config.insecure_no_auth)
    fix_mmap_threshold()  # large transient buffers (a /metrics scrape) go back when freed
    collect_less_often()  # an evaluation's young objects die by reference count
    controller, source, discovery, targets = _controller(config, settings, state, leadership)
    http = None
    if config.listen:
        app = create_app(
            controller,
            token=token,
            listen=config.listen,
            allowed_hosts=config.allowed_hosts,
            request_metrics=controller.telemetry.watch_http_requests(RequestMetrics()),
        )
        http = HttpServer(app, config.listen, max_connections=config.api_max_connections)
        controller.telemetry.watch_http_connections(http.connection_counts, http.send_timeouts)

    wake = threading.Event()  # SIGHUP, or stop
    hup = threading.Event()
    stopping = threading.Event()

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stopping.set()
        wake.set()
        controller.scheduler.stop()

    def on_hup(_signum: int, _frame: FrameType | None) -> None:
        hup.set()
        wake.set()

    previous = {
        sig: signal.signal(sig, handler)
        for sig, handler in (
            (signal.SIGTERM, on_stop),
            (signal.SIGINT, on_stop),
            (signal.SIGHUP, on_hup),
        )
    }
    watcher = threading.Thread(
        target=_watch,
        args=(controller, config.reload_interval, wake, hup, stopping),
        name="reload",
        daemon=True,
    )
    try:
        controller.reload()
        log.info(
            "running %s%s",
            counted(len(controller.registry.policies()), "policy", "policies"),
            " in dry-run" if config.dry_run else "",
        )
        if http is not None:
            http.start()
        watcher.start()
        if leadership is not None:
            leadership.start()
        controller.scheduler.run()  # returns after stop(), once evaluations in flight end
    finally:
        if leadership is not None:
            _hand_over(leadership, state)
        stopping.set()
        wake.set()
        if watcher.is_alive():
            watcher.join(2)
        discovery.close()
        controller.notifier.close(timeout=3)
        if http is not None:
            http.stop(timeout=3)
        source.close()
        targets.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped")
    return EXIT_OK


def _watch(
    controller: Controller,
    interval: float,
    wake: threading.Event,
    hup: threading.Event,
    stopping: threading.Event,
) -> None:
    """Reload on SIGHUP, and when the policy files change (checked every `interval` s,
    read once they have not changed for `SETTLE` s: `_settled`).

    A failure that repeats (a policy folder that became unreadable) is logged with its
    traceback once, not at every check, and its end is logged too."""
    failing: str | None = None
    due = time.monotonic() + interval  # the next look at the files (`interval` > 0)
    while not stopping.is_set():
        # At least once per tidying period: removed policies' state goes in time, even
        # with no file watched (`interval` 0) and nothing reloaded; the files are still
        # looked at every `interval` only.
        wait = TIDY_EVERY if interval <= 0 else min(max(due - time.monotonic(), 0), TIDY_EVERY)
        wake.wait(timeout=wait)
        wake.clear()
        if stopping.is_set():
            return
        look = interval > 0 and time.monotonic() >= due
        if look:
            due = time.monotonic() + interval
        try:
            if hup.is_set():
                hup.clear()
                log.info("received SIGHUP: reloading policies")
                controller.reload()
            elif (
                look
                and controller.registry.changed_on_disk()
                and _settled(controller.registry, wake)
            ):
                log.info("policy files changed: reloading")
                controller.reload()
        except Exception as exc:
            again = f"{type(exc).__name__}: {exc}"
            if again != failing:
                log.exception("reloading the policies failed; the current set keeps running")
            failing = again
        else:
            if failing is not None:
                log.warning("reading the policy files works again: %s is over", failing)
            failing = None
        try:
            controller.tidy()
        except Exception:  # a bug: keep watching the files, say so
            log.exception("dropping the state of removed policies failed")


def _settled(registry: PolicyRegistry, wake: threading.Event) -> bool:
    """Whether the policy files, seen changed, have then stayed unchanged for `SETTLE` s;
    False when `wake` is set meanwhile (SIGHUP, stop: the watcher handles it) or when they
    still change after SETTLE_MAX s (looked at again at the next check).

    A change seen by polling may be one in progress: a file written in place (an editor
    that does, `cp`, `kubectl cp`), vim's save (the file renamed away, then written anew),
    a `git checkout` writing many files one by one. Read then, a half-written file can be
    valid YAML with other values (`max: 10` cut to `max: 1`: scaled in at once), a missing
    one takes its policies away. Those writers finish within milliseconds."""
    seen = registry.fingerprint()
    waited = 0.0
    while waited < SETTLE_MAX:
        if wake.wait(SETTLE):
            return False
        waited += SETTLE
        now = registry.fingerprint()
        if now == seen:
            return True
        seen = now
    log.warning(
        "policy files keep changing (for %.0f s): not reloaded until they stay unchanged "
        "for %g s (SIGHUP or POST /v1/reload reloads them at once)",
        SETTLE_MAX,
        SETTLE,
    )
    return False


def check_exposure(listen: str, token: str | None, *, insecure: bool) -> None:
    """Refuse an API beyond loopback without a token, unless `insecure` (then warn).

    Raises `AutoscalerError` with the three ways out: a token, loopback, or the flag.
    """
    host, port = parse_listen(listen)
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if loopback or token is not None:
        return
    if not insecure:
        raise AutoscalerError(
            f"refusing to serve the HTTP API on {listen} without a token: anyone who can "
            "reach it could trigger evaluations and reloads. Give a token with "
            "--api-token-file FILE (env AUTOSCALER_API_TOKEN_FILE), listen on loopback "
            f"(--listen 127.0.0.1:{port}), or accept the risk with --insecure-no-auth "
            "(env AUTOSCALER_INSECURE_NO_AUTH=1)"
        )
    log.warning(
        "the HTTP API listens on %s without a token (--insecure-no-auth): anyone who can "
        "reach it can trigger evaluations and reloads",
        listen,
    )
