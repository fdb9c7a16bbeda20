"""The database's time carried forward by the local clock (`service.db_clock`): a slow lease
renewal neither stops it nor sets it back, and no two readings are the same instant."""

from __future__ import annotations

from datetime import timedelta

from autoscaler.adapters.state.lease import LeaseState
from autoscaler.service.db_clock import DatabaseClock
from autoscaler.service.leadership import Leadership
from tests.unit.service.test_leadership import DB_T0, TTL, Clock, FakeLease


class LockedLease(FakeLease):
    """A renewal that waits `wait` seconds on the lease row's lock (the leader's own fenced
    write holds it FOR SHARE) after its statement started: the database time it answers is
    from its start, and it says it waited `reported` of them (0: a server that cannot)."""

    wait: float = 0.0
    reported: float = 0.0
    clock: Clock | None = None

    def acquire(self, holder: str, ttl: float, *, epoch: int | None) -> LeaseState:
        state = super().acquire(holder, ttl, epoch=epoch)
        assert self.clock is not None
        self.now += self.wait
        self.clock.t += self.wait
        if not self.reported:
            return state
        later = state.db_now + timedelta(seconds=self.reported)
        return LeaseState(
            held=state.held,
            holder=state.holder,
            epoch=state.epoch,
            expires_at=state.expires_at,
            db_now=later,
            waited=self.reported,
        )


def _leader(wait: float, *, reported: float = 0.0) -> tuple[Leadership, LockedLease, Clock]:
    """A leader renewed once at once, then once after a `wait` on the row's lock."""
    clock = Clock()
    lease = LockedLease()
    lease.clock = clock
    leader = Leadership(lease, replica="a", ttl=TTL, clock=clock)
    assert leader.step()
    lease.now += 4.0
    clock.t += 4.0
    lease.wait, lease.reported = wait, reported
    assert leader.step()
    return leader, lease, clock


def test_a_renewal_that_waited_on_the_lease_rows_lock_does_not_stop_the_clock() -> None:
    # Its answer's database time is from before the wait; anchored at the round trip's
    # middle it set the clock back by half the wait, and the clock, never going back, stood
    # still that long: two evaluations of a policy got one instant (the second, which
    # scaled, was taken for a new version of the first and dropped), and cooldowns were
    # recorded as starting early.
    leader, lease, clock = _leader(3.0)
    first = leader.clock()
    assert first == DB_T0 + timedelta(seconds=lease.now)  # the database's time, exactly
    clock.t += 1.0
    lease.now += 1.0
    assert leader.clock() == first + timedelta(seconds=1)


def test_the_lock_wait_the_database_reports_is_not_taken_for_network_delay() -> None:
    leader, lease, clock = _leader(3.0, reported=3.0)
    assert leader.clock() == DB_T0 + timedelta(seconds=lease.now)
    clock.t += 1.0
    lease.now += 1.0
    assert leader.clock() == DB_T0 + timedelta(seconds=lease.now)


def test_no_two_readings_are_the_same_instant() -> None:
    # Two evaluations of one policy at one instant are one decision to the history.
    clock = Clock()
    leader = Leadership(FakeLease(), replica="a", ttl=TTL, clock=clock)
    assert leader.step()
    first, second = leader.clock(), leader.clock()  # the local clock did not move
    assert first == DB_T0 and second > first


def test_a_slow_anchor_replaces_a_precise_one_only_once_that_one_is_old() -> None:
    clock = Clock()
    db = DatabaseClock(clock)
    assert db.anchor(DB_T0, sent=0.0, received=0.01, waited=0.0)
    assert not db.anchor(DB_T0, sent=10.0, received=13.0, waited=0.0)  # +-1.5 s: kept out
    # A precise one after a while (the rates may have drifted): always taken.
    assert db.anchor(DB_T0 + timedelta(seconds=20), sent=20.0, received=20.02, waited=0.0)
    # A slow one, long after the last precise one, is no worse than that one has become.
    assert db.anchor(DB_T0 + timedelta(seconds=3000), sent=3000.0, received=3003.0, waited=0.0)


def test_a_round_trip_the_database_spent_waiting_on_a_lock_is_a_precise_anchor() -> None:
    # The wait the renewal reports is the database's, not the network's: taken for network
    # delay, a 3 s wait made the anchor +-1.5 s and it was ignored, and the clock ran on an
    # older anchor however much the two clocks had drifted since.
    clock = Clock()
    db = DatabaseClock(clock)
    assert db.anchor(DB_T0, sent=0.0, received=0.01, waited=0.0)
    later = DB_T0 + timedelta(seconds=13.005)  # read after the 3 s wait, 5 ms before the answer
    assert db.anchor(later, sent=10.0, received=13.01, waited=3.0)
    clock.t = 13.01
    assert abs((db.now() - later).total_seconds() - 0.005) < 1e-6  # anchored at mid-network
