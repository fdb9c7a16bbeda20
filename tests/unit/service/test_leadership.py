"""Leadership on a fake lease and a fake clock: when a replica may act, and what time it is.

The lease here behaves like the PostgreSQL one (expiry judged by "database time", which
the test moves), so each rule is a plain function of time: no test sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from autoscaler.adapters.state.lease import LeaseState
from autoscaler.errors import NotLeader, StateError
from autoscaler.service.leadership import Leadership

DB_T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TTL = 15.0


@dataclass
class FakeLease:
    """One lease row; `now` is the database's clock (seconds after DB_T0)."""

    where: str = "postgresql://test"
    now: float = 0.0
    holder: str | None = None
    epoch: int = 0
    expires: float = 0.0
    down: bool = False
    released: list[int] = field(default_factory=list)

    def _state(self, held: bool) -> LeaseState:
        return LeaseState(
            held=held,
            holder=self.holder,
            epoch=self.epoch,
            expires_at=DB_T0 + timedelta(seconds=self.expires) if self.holder else None,
            db_now=DB_T0 + timedelta(seconds=self.now),
        )

    def _check(self) -> None:
        if self.down:
            raise StateError("connection refused")

    def acquire(self, holder: str, ttl: float, *, epoch: int | None) -> LeaseState:
        self._check()
        mine = self.holder == holder and self.epoch == epoch
        if not mine and self.holder is not None and self.expires > self.now:
            return self._state(False)
        if not mine:
            self.epoch += 1
        self.holder, self.expires = holder, self.now + ttl
        return self._state(True)

    def current(self) -> LeaseState:
        self._check()
        return self._state(False)

    def confirm(self, holder: str, epoch: int) -> float | None:
        self._check()
        if (self.holder, self.epoch) == (holder, epoch) and self.expires > self.now:
            return self.expires - self.now
        return None

    def release(self, holder: str, epoch: int) -> bool:
        self._check()
        if (self.holder, self.epoch) != (holder, epoch):
            return False
        self.expires = self.now
        self.released.append(epoch)
        return True

    def wait_for_release(self, timeout: float) -> bool:
        return False

    def close(self) -> None:
        return None


@dataclass
class SlowLease(FakeLease):
    """A lease whose answers take `delay` seconds to come back (the database acts at once);
    `meanwhile(seconds)` lets that time pass."""

    delay: float = 0.0
    meanwhile: Callable[[float], object] = lambda seconds: None

    def acquire(self, holder: str, ttl: float, *, epoch: int | None) -> LeaseState:
        state = super().acquire(holder, ttl, epoch=epoch)
        self.meanwhile(self.delay)
        return state


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def leadership(lease: FakeLease, clock: Clock, replica: str = "a") -> Leadership:
    return Leadership(lease, replica=replica, ttl=TTL, clock=clock)


def advance(lease: FakeLease, clock: Clock, seconds: float) -> None:
    """Time passes for everyone: the database and this replica."""
    lease.now += seconds
    clock.t += seconds


def test_the_first_replica_leads_and_others_stand_by(lease: FakeLease, clock: Clock) -> None:
    elected: list[int] = []
    a, b = leadership(lease, clock, "a"), leadership(lease, clock, "b")
    a.subscribe(on_elected=elected.append)
    assert a.step() and a.acting() and a.may_dispatch() and a.role() == "leader"
    assert not b.step() and b.role() == "standby"
    assert elected == [1]
    view = b.view()
    assert (view.leader, view.epoch, view.role) == ("a", 1, "standby")


def test_a_paused_leader_stops_acting_on_its_own_clock_before_anyone_can_take_over(
    lease: FakeLease, clock: Clock
) -> None:
    a, b = leadership(lease, clock, "a"), leadership(lease, clock, "b")
    a.step()
    advance(lease, clock, TTL / 3 * 2)  # two renewals missed: no new evaluation starts
    assert a.acting() and not a.may_dispatch()
    advance(lease, clock, TTL / 3 - 0.5)  # just short of the database's expiry
    assert not a.acting(), "the holder stops before the database lets anyone in"
    with pytest.raises(NotLeader):
        a.fence()
    assert not b.step(), "b may not take over before the lease expires in database time"
    advance(lease, clock, 0.6)
    assert b.step() and b.view().epoch == 2


def test_the_fence_asks_the_database(lease: FakeLease, clock: Clock) -> None:
    a = leadership(lease, clock)
    a.step()
    a.fence()  # current
    lease.epoch += 1  # taken over behind a's back (its clock would still say it leads)
    with pytest.raises(NotLeader, match="no longer current"):
        a.fence()
    lease.epoch -= 1
    lease.down = True
    with pytest.raises(NotLeader, match="could not be confirmed"):
        a.fence()


def test_the_fence_gives_where_the_lease_validity_ends(lease: FakeLease, clock: Clock) -> None:
    # The scale call that follows sends nothing from then on (its `deadline`).
    a = leadership(lease, clock)
    a.step()  # sent at 1000: valid until 1000 + 15 - 5 % of 15
    advance(lease, clock, 2.0)
    assert a.fence() == pytest.approx(1000 + TTL - TTL * 0.05)
    a.step()  # renewed at 1002
    assert a.fence() == pytest.approx(1002 + TTL - TTL * 0.05)


def test_an_evaluation_that_straddles_a_lapse_is_fenced_even_when_the_lease_comes_back(
    lease: FakeLease, clock: Clock
) -> None:
    # Paused mid-evaluation past the lease, then renewed (nobody took it: the same epoch)
    # before the worker goes on: what it decided before the pause must not be applied.
    a = leadership(lease, clock)
    a.step()
    begun = clock.t
    advance(lease, clock, 2.0)
    assert a.fence(begun) == pytest.approx(1000 + TTL - TTL * 0.05)  # no lapse: it acts
    a.step()  # renewed in time: still one tenure
    assert a.fence(begun) == pytest.approx(1002 + TTL - TTL * 0.05)
    advance(lease, clock, TTL + 5)  # the whole process paused
    assert a.step() and a.view().epoch == 1, "the same epoch, renewed after the lapse"
    with pytest.raises(NotLeader, match="lapsed while this evaluation ran"):
        a.fence(begun)
    assert a.fence(clock.t) > clock.t, "an evaluation begun since acts"
    a.fence()  # without an instant: the lease alone, as before


def test_the_local_tenure_check_refuses_what_began_before_a_lapse(
    lease: FakeLease, clock: Clock
) -> None:
    a = leadership(lease, clock)
    a.step()
    begun = clock.t
    a.check(begun)  # leading since before it began: may write
    advance(lease, clock, TTL + 5)  # paused past the lease
    with pytest.raises(NotLeader, match="does not hold"):
        a.check(begun)  # not even acting now
    assert a.step()  # back, the same epoch
    with pytest.raises(NotLeader, match="lapsed while this evaluation ran"):
        a.check(begun)
    a.check(clock.t)  # what begins now may


def test_an_evaluation_begun_under_an_earlier_epoch_is_fenced(
    lease: FakeLease, clock: Clock
) -> None:
    a, b = leadership(lease, clock, "a"), leadership(lease, clock, "b")
    a.step()
    begun = clock.t
    advance(lease, clock, TTL + 1)  # a paused; b leads, then hands the lease back
    assert b.step()
    b.release()
    assert a.step() and a.view().epoch == 3
    with pytest.raises(NotLeader, match="lapsed while this evaluation ran"):
        a.fence(begun)


def test_a_leader_that_wakes_after_a_takeover_steps_down(lease: FakeLease, clock: Clock) -> None:
    deposed: list[bool] = []
    a, b = leadership(lease, clock, "a"), leadership(lease, clock, "b")
    a.subscribe(on_deposed=lambda: deposed.append(True))
    a.step()
    advance(lease, clock, TTL + 1)  # a is paused meanwhile
    assert b.step()
    assert not a.acting()
    assert not a.step()
    assert deposed == [True]
    assert a.view().leader == "b"


def test_a_lapse_while_the_database_was_down_resumes_the_same_epoch(
    lease: FakeLease, clock: Clock
) -> None:
    elected: list[int] = []
    a = leadership(lease, clock)
    a.subscribe(on_elected=elected.append)
    a.step()
    lease.down = True
    advance(lease, clock, TTL + 1)
    assert not a.step() and not a.acting()
    assert a.problem() is not None and "connection refused" in a.problem()  # type: ignore[operator]
    lease.down = False
    assert a.step()
    assert elected == [1, 1], "same epoch: memory of it is still right"
    assert a.problem() is None


def test_the_clock_is_the_databases_and_never_goes_back(lease: FakeLease, clock: Clock) -> None:
    a = leadership(lease, clock)
    lease.now = 3600.0  # the database is an hour "ahead" of this replica's wall clock
    a.step()
    assert a.clock() == DB_T0 + timedelta(hours=1)
    clock.t += 2.5
    assert a.clock() == DB_T0 + timedelta(hours=1, seconds=2.5)
    lease.now -= 1.0  # the next answer looks earlier (jitter)
    a.step()
    assert a.clock() >= DB_T0 + timedelta(hours=1, seconds=2.5)


def test_a_time_read_before_the_database_is_reached_does_not_stop_its_clock(
    lease: FakeLease, clock: Clock
) -> None:
    # An API read before the first lease step gave this host's time (December), kept as a
    # floor: the database's (March) then stood still at it for nine months.
    a = leadership(lease, clock)
    before = a.clock()
    assert before > DB_T0 + timedelta(days=30)
    a.step()
    first = a.clock()
    clock.t += 1.0
    assert a.clock() == first + timedelta(seconds=1)


def test_release_hands_over_and_stops_acting(lease: FakeLease, clock: Clock) -> None:
    a, b = leadership(lease, clock, "a"), leadership(lease, clock, "b")
    a.step()
    a.release()
    assert not a.acting() and lease.released == [1]
    assert b.step()


def test_a_second_controller_without_ha_is_refused_while_the_first_renews(
    lease: FakeLease, clock: Clock
) -> None:
    a, b = leadership(lease, clock, "a"), leadership(lease, clock, "b")
    a.step()

    def renewing_wait(timeout: float | None = None) -> bool:
        advance(lease, clock, timeout or 0)
        a.step()
        return False

    b._stop.wait = renewing_wait  # type: ignore[method-assign]
    with pytest.raises(StateError, match="in use by another autoscaler"):
        b.take_exclusively()


@pytest.mark.parametrize("ha", [True, False])
def test_a_one_off_pass_while_another_replica_leads_is_refused_without_suggesting_ha(
    lease: FakeLease, clock: Clock, ha: bool
) -> None:
    # `run --once` (with --ha or without) cannot stand by: it must not be told to use --ha.
    a = leadership(lease, clock, "a")
    once = Leadership(lease, replica="ops", ttl=TTL, ha=ha, clock=clock)
    a.step()

    def renewing_wait(timeout: float | None = None) -> bool:
        advance(lease, clock, timeout or 0)
        a.step()
        return False

    once._stop.wait = renewing_wait  # type: ignore[method-assign]
    with pytest.raises(StateError) as refused:
        once.take_exclusively(one_off=True)
    message = str(refused.value)
    assert "a one-off pass (run --once) cannot run while replica a leads" in message
    assert "stop that controller first" in message and "autoscaler plan" in message
    assert "--ha" not in message


def test_a_second_controller_without_ha_takes_a_dead_ones_lease_once_it_expires(
    lease: FakeLease, clock: Clock
) -> None:
    a, b = leadership(lease, clock, "a"), leadership(lease, clock, "b")
    a.step()  # then a dies

    def waiting(timeout: float | None = None) -> bool:
        advance(lease, clock, timeout or 0)
        return False

    b._stop.wait = waiting  # type: ignore[method-assign]
    b.take_exclusively()
    assert b.acting() and lease.now <= TTL + 1


@pytest.mark.parametrize(
    ("delay", "kept"),
    [
        (3.0, "may_dispatch"),  # a fifth of the TTL: evaluations go on being dispatched
        (4.8, "acting"),  # just under a renewal period: the lease holds
        (6.0, "acting"),  # longer than a renewal period: renewals go back to back
        (7.0, "acting"),  # 47 % of the TTL: two answers still fit in 95 % of it
    ],
)
def test_slow_renewal_answers_do_not_make_a_healthy_leader_lapse(
    clock: Clock, delay: float, kept: str
) -> None:
    # Every renewal succeeds long before the database's expiry, but its answer is slow: the
    # next renewal is due a period after the last was *sent*, which its validity counts from.
    lease = SlowLease()
    a = leadership(lease, clock)
    samples: list[bool] = []

    def passing(timeout: float | None = None) -> bool:
        end = clock.t + (timeout or 0)
        while clock.t < end:
            advance(lease, clock, min(0.1, end - clock.t))
            samples.append(getattr(a, kept)())
        return False

    assert a.step()
    lease.delay, lease.meanwhile = delay, passing
    a._stop.wait = passing  # type: ignore[method-assign]
    for _ in range(10):
        a._wait()
        a.step()
    assert lease.expires > lease.now  # the database never saw it expire
    assert all(samples), f"{kept}() turned False {samples.count(False)} times of {len(samples)}"


def test_answers_slower_than_the_safety_margin_pause_the_leader_but_never_lose_the_lease(
    clock: Clock,
) -> None:
    # Answers after 49 % of the TTL: back to back, two of them outlast the 95 % of the TTL a
    # renewal is valid for locally (counted from its sending, as the database may have run
    # it at once), so the leader stops acting until the next answer comes. It is the
    # intended margin, not a loss: the database never expires the lease, nobody can take
    # it, and the leader resumes under its epoch (README: High availability, Limits).
    lease = SlowLease()
    a = leadership(lease, clock)
    deposed: list[bool] = []
    a.subscribe(on_deposed=lambda: deposed.append(True))
    samples: list[tuple[bool, bool]] = []

    def passing(timeout: float | None = None) -> bool:
        end = clock.t + (timeout or 0)
        while clock.t < end:
            advance(lease, clock, min(0.1, end - clock.t))
            samples.append((a.acting(), lease.expires > lease.now))
        return False

    assert a.step()
    lease.delay, lease.meanwhile = TTL * 0.49, passing
    a._stop.wait = passing  # type: ignore[method-assign]
    for _ in range(10):
        a._wait()
        assert a.step()
    assert all(alive for _, alive in samples), "the database saw the lease expire"
    assert not all(acting for acting, _ in samples), "no pause: the margin is not 5 %?"
    assert (deposed, lease.holder, lease.epoch, a.epoch) == ([], "a", 1, 1)


def test_every_change_of_leadership_is_counted_by_how_it_came(
    lease: FakeLease, clock: Clock
) -> None:
    # `autoscaler_leader` is sampled at each scrape: a leader lost and taken back between
    # two scrapes, or a pause that made it stop acting for a while, left no trace.
    a, b = leadership(lease, clock, "a"), leadership(lease, clock, "b")
    zero = {"elected": 0, "lapsed": 0, "taken_over": 0, "released": 0}
    assert a.transitions() == zero
    a.step()
    lease.down = True  # the database out of reach past the lease: a lapses
    advance(lease, clock, TTL + 1)
    a.step()
    lease.down = False
    a.step()  # leads again (the same epoch)
    advance(lease, clock, TTL + 1)  # a paused past its lease, not renewed meanwhile
    a.step()  # renewed after the lapse: it had stopped acting
    advance(lease, clock, TTL + 1)  # paused again, and b takes over
    b.step()
    a.step()
    b.release()
    assert a.transitions() == {"elected": 2, "lapsed": 2, "taken_over": 1, "released": 0}
    assert b.transitions() == {**zero, "elected": 1, "released": 1}
