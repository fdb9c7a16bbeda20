"""Which replica acts: the leader lease, kept by a thread, and the fence every action passes.

Several `autoscaler run --ha` replicas share one PostgreSQL state database; the one that
holds the lease (`adapters.state.lease`) evaluates, the others wait as standbys.

    standby --(lease free or expired: new epoch)--> leader --(renewed every ttl/3)--> leader
       ^                                              |
       +--(taken over, or not renewed in time, or released on SIGTERM)--+

Time. Expiry is judged by the database's clock alone, so no replica's clock matters to
who leads. The holder itself only measures elapsed time on its own monotonic clock (one
that keeps counting while the process is stopped): a renewal sent at `t` is good until
`t + ttl - margin`, earlier than the database's expiry, whatever the answer's delay. The
service's wall clock (cooldowns, stabilization windows, decision times) is the database's
time too, carried forward by that monotonic clock, so replicas with skewed clocks read one
another's cooldowns correctly.

Fencing. A replica dispatches evaluations only while its lease has more than one renewal
period left (so evaluations in flight can end before it could lapse), every state write
checks the epoch inside its transaction (`PostgresStateStore`), and every scale call is
preceded by `fence()`: the lease still valid locally and confirmed current by the
database. `fence()` returns where that validity ends, and the scale call sends no request
(first try or retry) from then on (`adapters.deadline`): a target that keeps failing
cannot carry a call past the lease. What a paused leader had already sent cannot be taken
back; everything after the pause is refused.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from autoscaler.adapters.deadline import monotonic
from autoscaler.adapters.state.layered import LayeredStateStore
from autoscaler.errors import NotLeader, StateError
from autoscaler.service.db_clock import DatabaseClock

if TYPE_CHECKING:
    # psycopg (~20 MB resident) is imported by `replicate`, for a PostgreSQL state only.
    from autoscaler.adapters.state.lease import LeaseState
    from autoscaler.adapters.state.postgres import PostgresStateStore

log = logging.getLogger("autoscaler.leadership")

LEADER = "leader"
STANDBY = "standby"
# How this replica started or stopped leading (`Leadership.transitions`): elected (or
# resumed its epoch); stopped because its lease lapsed (not renewed in time: the database
# out of reach, or the process paused, even when it renewed the same epoch afterwards),
# was taken over by another replica, or was released (a graceful stop).
TRANSITIONS = ("elected", "lapsed", "taken_over", "released")


class Lease(Protocol):
    """What `adapters.state.lease.PostgresLease` offers (tests may pass a fake)."""

    where: str

    def acquire(self, holder: str, ttl: float, *, epoch: int | None) -> LeaseState: ...
    def current(self) -> LeaseState: ...
    def confirm(self, holder: str, epoch: int) -> float | None: ...
    def release(self, holder: str, epoch: int) -> bool: ...
    def wait_for_release(self, timeout: float) -> bool: ...
    def close(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class LeaderView:
    """What the API shows: this replica's role and who leads."""

    ha: bool
    role: str
    replica: str
    leader: str | None
    epoch: int | None
    lease_expires_at: datetime | None
    lease_ttl_seconds: float
    problem: str | None


class Leadership:
    """Takes, renews and releases the lease; answers "may I act?" and "what time is it?".

    Subscribers (`subscribe`): `on_elected(epoch)` runs before the first evaluation under
    a new (or resumed) epoch; `on_deposed()` when this replica stops leading. Both run in
    the lease thread, in the order they subscribed.
    """

    def __init__(
        self,
        lease: Lease,
        *,
        replica: str,
        ttl: float = 15.0,
        ha: bool = True,
        clock: Callable[[], float] = monotonic,
    ) -> None:
        if ttl <= 0:
            raise ValueError("the lease TTL must be positive")
        self.replica = replica
        self.ha = ha  # False: the only controller on the database (it still takes the lease)
        self.ttl = ttl
        self.renew_every = ttl / 3
        self._margin = ttl * 0.05  # against the clocks' rates drifting apart
        self._lease = lease
        self._on_elected: list[Callable[[int], None]] = []
        self._on_deposed: list[Callable[[], None]] = []
        self._on_leading: list[Callable[[], None]] = []
        self._mono = clock
        self._epoch: int | None = None  # the epoch this replica leads under now
        self._mine: int | None = None  # the last epoch it held (to resume after a lapse)
        self._valid_until = 0.0
        self._sent = 0.0  # when (our clock) the last renewal was sent: the next is due from it
        # Since when (our clock) this replica has led without a lapse: set when it is
        # elected, and when a renewal comes only after its lease had lapsed (a pause).
        self._since = 0.0
        self._seen: LeaseState | None = None
        self._problem: str | None = None
        self._clock = DatabaseClock(clock)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._transitions = dict.fromkeys(TRANSITIONS, 0)

    def subscribe(
        self,
        *,
        on_elected: Callable[[int], None] | None = None,
        on_deposed: Callable[[], None] | None = None,
        on_leading: Callable[[], None] | None = None,
    ) -> None:
        """Be told when this replica starts and stops leading (see the class docstring);
        `on_leading()` runs once it acts (after every `on_elected`)."""
        if on_elected is not None:
            self._on_elected.append(on_elected)
        if on_leading is not None:
            self._on_leading.append(on_leading)
        if on_deposed is not None:
            self._on_deposed.append(on_deposed)

    # --- what the rest of the service asks ---------------------------------------------------

    def acting(self) -> bool:
        """True while this replica holds a lease that has not lapsed on its own clock."""
        return self._epoch is not None and self._mono() < self._valid_until

    def may_dispatch(self) -> bool:
        """True while a new evaluation may start: the lease has more than one renewal
        period left, so what starts now ends before anyone else can take over."""
        return self._epoch is not None and self._mono() < self._valid_until - self.renew_every

    @property
    def epoch(self) -> int | None:
        return self._epoch if self.acting() else None

    def fence(self, begun: float | None = None) -> float:
        """Where the lease's local validity ends (an instant of this leadership's clock:
        `adapters.deadline.monotonic`), while this replica leads and the database confirms
        its epoch is current; raise `NotLeader` otherwise. Called right before a scale
        call, which sends nothing from that instant on (the call's `deadline`).

        `begun` is when the evaluation that wants to scale began (the same clock): if the
        lease lapsed since, even when this replica got it back (the same epoch, nobody
        having taken it, or a new one), what it decided before the lapse is not applied."""
        epoch = self._epoch
        if epoch is None or not self.acting():
            raise NotLeader(f"replica {self.replica} does not hold the leader lease")
        try:
            left = self._lease.confirm(self.replica, epoch)
        except StateError as exc:
            raise NotLeader(f"the leader lease could not be confirmed: {exc}") from None
        if left is None:
            raise NotLeader(f"lease epoch {epoch} is no longer current (expired or taken over)")
        until = self._valid_until
        if self._epoch != epoch or not self._mono() < until:
            raise NotLeader(f"lease epoch {epoch} lapsed while it was being confirmed")
        if begun is not None:
            self._held_since(begun, "applied")
        return until

    def check(self, begun: float) -> None:
        """Raise `NotLeader` unless this replica has led without a lapse since `begun` (an
        instant of this leadership's clock): what an evaluation begun then decided may be
        written. Local (no database round trip): every write is fenced there besides."""
        if not self.acting():
            raise NotLeader(f"replica {self.replica} does not hold the leader lease")
        self._held_since(begun, "written")

    def _held_since(self, begun: float, what: str) -> None:
        """Raise `NotLeader` when the lease lapsed after `begun` (the current tenure began
        later), saying that what was decided before is not `what`."""
        if begun < self._since:
            raise NotLeader(
                "the leader lease lapsed while this evaluation ran (the process paused, or "
                "the database out of reach, for longer than the lease): what it decided "
                f"before is not {what}"
            )

    def clock(self) -> datetime:
        """The database's time now (never going backwards, never the same twice), or the
        local time before the database was first reached (`service.db_clock`)."""
        return self._clock.now()

    def role(self) -> str:
        return LEADER if self.acting() else STANDBY

    def transitions(self) -> dict[str, int]:
        """How many times this replica started or stopped leading, by how (`TRANSITIONS`)."""
        return dict(self._transitions)

    def problem(self) -> str | None:
        """Why the lease could not be read or renewed lately, or None."""
        return self._problem

    def view(self) -> LeaderView:
        """This replica's role, and the lease as last seen (None fields: nobody leads).
        Its expiry is judged by the database's time now (`clock`), not when it was seen:
        while the database is out of reach, a leader seen then is not shown for ever."""
        seen = self._seen
        acting = self.acting()
        live = None
        if seen is not None and seen.expires_at is not None and seen.expires_at > self.clock():
            live = seen
        return LeaderView(
            ha=self.ha,
            role=LEADER if acting else STANDBY,
            replica=self.replica,
            leader=self.replica if acting else (live.holder if live else None),
            epoch=self._epoch if acting else (live.epoch if live else None),
            lease_expires_at=live.expires_at if live else None,
            lease_ttl_seconds=self.ttl,
            problem=self._problem,
        )

    # --- life cycle ----------------------------------------------------------------------------

    def take_exclusively(self, *, one_off: bool = False) -> None:
        """Become the leader now, or raise `StateError` when another live replica holds
        the lease (it renews it while we wait). A lease left by a dead process is taken
        once it expires, so a controller restarted after a crash waits at most the TTL;
        one taken meanwhile by another replica is watched anew, and refused once renewed.

        `one_off`: for a single pass (`run --once`, with or without `--ha`), which cannot
        stand by; the error says so rather than suggesting `--ha`."""
        first: LeaseState | None = None
        while True:
            if self.step():
                return
            seen = self._seen
            if seen is None:  # the database did not answer
                raise StateError(self._problem or "the leader lease could not be read")
            if first is None or (seen.holder, seen.epoch) != (first.holder, first.epoch):
                # Another holder took it meanwhile (the first died): watch that one.
                first = seen
                log.info(
                    "state database %s: lease held by %s for %.1f s more; waiting to see "
                    "whether it is alive",
                    self._lease.where,
                    seen.holder,
                    seen.seconds_left(),
                )
            elif seen.expires_at != first.expires_at:
                busy = (
                    f"state database {self._lease.where} is in use by another autoscaler "
                    f"(replica {seen.holder}, which keeps its lease)"
                )
                if one_off:
                    raise StateError(
                        f"{busy}: a one-off pass (run --once) cannot run while replica "
                        f"{seen.holder} leads; stop that controller first, or see what the "
                        "pass would do with `autoscaler plan` (it reads the same --state)"
                    )
                raise StateError(
                    f"{busy}; run one controller per database, or start every replica with --ha"
                )
            self._stop.wait(min(self.renew_every, seen.seconds_left() + 0.05))

    def start(self) -> None:
        """Keep the lease (or wait for it) in a background thread until `stop()`."""
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop taking and renewing the lease (it is kept until `release()` or expiry)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.ttl)

    def release(self) -> None:
        """Give the lease up now, so a standby takes over at once (graceful handover)."""
        epoch = self._epoch
        if epoch is None:
            return
        self._depose(None, "released")
        try:
            if self._lease.release(self.replica, epoch):
                log.info("released the leader lease (epoch %d): a standby takes over now", epoch)
        except StateError as exc:
            log.warning(
                "could not release the leader lease (epoch %d): %s; a standby takes over "
                "when it expires",
                epoch,
                exc,
            )

    def close(self) -> None:
        """Close the lease's connections (after `stop()` / `release()`)."""
        self._lease.close()

    # --- the lease thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
                self._wait()
            except Exception:  # never let the lease thread die: standbys would never lead
                log.exception("leader election step failed")
                self._stop.wait(1.0)

    def _wait(self) -> None:
        """Until the next step: as leader, until the next renewal is due (`_renew_in`); as
        standby, until the lease expires or a release is announced, whichever comes first."""
        if self._epoch is not None:
            self._stop.wait(self._renew_in())
            return
        seen = self._seen
        wait = self.renew_every
        if seen is not None and self._problem is None:
            wait = min(wait, seen.seconds_left() + 0.02)
        deadline = self._mono() + wait
        while not self._stop.is_set():
            left = deadline - self._mono()
            if left <= 0:
                return
            try:
                if self._lease.wait_for_release(min(left, 0.5)):
                    return
            except StateError:
                return  # the next step reports it

    def _renew_in(self) -> float:
        """Seconds until the leader's next renewal: a renewal period after the last one was
        *sent* (at once if its answer took longer), as its validity counts from then; after
        a failure, half a second. Counted from the answer, every renewal came its answer's
        delay late, and answers slower than ~30 % of the TTL let a healthy lease lapse
        locally (~14 %: no evaluation dispatched) though the database never expired it.
        Now it holds while answers take less than ~47 % of the TTL (dispatching: ~28 %)."""
        if self._problem is not None:
            return min(0.5, self.renew_every)
        return max(0.0, self._sent + self.renew_every - self._mono())

    def step(self) -> bool:
        """Take or renew the lease once; True when this replica leads afterwards."""
        epoch = self._epoch
        sent = self._sent = self._mono()
        try:
            seen = self._lease.acquire(self.replica, self.ttl, epoch=epoch or self._mine)
        except StateError as exc:
            self._unreachable(exc, epoch)
            return self.acting()
        self._clock.anchor(seen.db_now, sent=sent, received=self._mono(), waited=seen.waited)
        self._seen = seen
        if self._problem is not None:
            log.warning("state database reachable again: %s", self._lease.where)
            self._problem = None
        if seen.held:
            if epoch is not None and epoch != seen.epoch:
                # Paused (or cut off) past its lease, while another replica took it and
                # lost it in turn: it stopped leading then, though no step saw it.
                self._depose(
                    f"the lease was taken over while this replica was paused or cut off "
                    f"(it leads again under epoch {seen.epoch})",
                    "taken_over",
                )
            if epoch != seen.epoch or not sent < self._valid_until:
                self._since = sent  # a new tenure: elected, or renewed after a lapse
                if epoch is not None and epoch == seen.epoch:
                    self._transitions["lapsed"] += 1  # it stopped acting meanwhile
            self._valid_until = sent + self.ttl - self._margin
            if epoch != seen.epoch:
                self._elect(seen.epoch)
            return True
        if epoch is not None:
            self._depose(
                f"the lease was taken over by {seen.holder} (epoch {seen.epoch})", "taken_over"
            )
        if self._mine is not None and seen.epoch != self._mine:
            self._mine = None  # someone else led since: nothing to resume
        return False

    def _unreachable(self, exc: StateError, epoch: int | None) -> None:
        if self._problem is None:
            log.error("leader lease: %s", exc)
        self._problem = f"the leader lease cannot be read or renewed: {exc}"
        if epoch is not None and not self.acting():
            self._depose("the lease could not be renewed before it lapsed", "lapsed")

    def _elect(self, epoch: int) -> None:
        resumed = epoch == self._mine
        for elected in self._on_elected:
            elected(epoch)  # before any evaluation can start under it
        self._mine = epoch
        self._epoch = epoch
        self._transitions["elected"] += 1
        for leading in self._on_leading:
            leading()
        log.warning(
            "replica %s is the leader (lease epoch %d%s): it evaluates the policies",
            self.replica,
            epoch,
            ", resumed" if resumed else "",
        )

    def _depose(self, reason: str | None, how: str) -> None:
        epoch, self._epoch = self._epoch, None
        if epoch is None:
            return
        self._transitions[how] += 1
        for deposed in self._on_deposed:
            deposed()
        if reason is not None:
            log.warning(
                "replica %s is no longer the leader (lease epoch %d): %s; it evaluates "
                "nothing until it leads again",
                self.replica,
                epoch,
                reason,
            )


def replicate(
    store: PostgresStateStore,
    state: LayeredStateStore,
    *,
    replica: str,
    ttl: float,
    ha: bool = True,
) -> Leadership:
    """The leadership of a replica whose state is `state` in front of `store`: elected,
    the store writes under the new epoch and memory starts from the database (unless the
    epoch is the one it had); deposed, it writes nothing and reads the database."""
    from autoscaler.adapters.state.lease import PostgresLease  # noqa: PLC0415 - psycopg

    # A renewal that waits (a lock held, a slow server) gives up within a quarter of the
    # TTL, so another can be sent before the lease lapses; with the store's timeouts (10 s)
    # it waited past a 15 s lease's local validity before the next could try. So does each
    # connection attempt of a renewal that must connect again (after a restart): with the
    # store's 5 s per address, one silent host of a multi-host list cost a short lease its
    # validity. libpq (and psycopg) count whole seconds, 2 at least. Safety does not rest
    # on it: the lease's validity counts from when the renewal was sent, however long that
    # took, so a slow reconnect can only make the leader stop acting, never act longer.
    settings = replace(
        store.settings,
        statement_timeout=min(store.settings.statement_timeout, ttl / 4),
        connect_timeout=max(2, min(store.settings.connect_timeout, int(ttl / 4))),
    )
    leadership = Leadership(PostgresLease(settings), replica=replica, ttl=ttl, ha=ha)

    def elected(epoch: int) -> None:
        # Memory first: `lead` waits for a write under way and drops what an earlier epoch
        # left unwritten; fenced with the new epoch before, that write would have gone out
        # under it (a write meanwhile is refused under the old token, and kept for later).
        state.lead(epoch)
        store.fence_with(replica, epoch)

    def deposed() -> None:
        store.unfence()
        state.standby()

    leadership.subscribe(on_elected=elected, on_deposed=deposed)
    return leadership
