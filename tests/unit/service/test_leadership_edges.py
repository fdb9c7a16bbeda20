"""Leadership where the lease changed hands behind a replica's back: a controller without
`--ha` waiting on a lease another took meanwhile, a leader that comes back under a newer
epoch, and who leads as seen while the database is out of reach."""

from __future__ import annotations

import pytest

from autoscaler.errors import StateError
from tests.unit.service.test_leadership import TTL, Clock, FakeLease, advance, leadership


def test_a_controller_without_ha_is_refused_once_a_lease_taken_meanwhile_is_renewed(
    lease: FakeLease, clock: Clock
) -> None:
    # a dies; b (without --ha) waits to see whether a is alive, c takes the expired lease
    # and renews it. b compared every lease it saw with a's alone, and waited forever.
    a, b, c = (leadership(lease, clock, name) for name in "abc")
    a.step()
    rounds: list[float] = []

    def waiting(timeout: float | None = None) -> bool:
        rounds.append(timeout or 0)
        if len(rounds) > 50:
            raise AssertionError("b still waiting after 50 rounds")
        advance(lease, clock, timeout or 0)
        c.step()  # c took the expired lease, and renews it
        return False

    b._stop.wait = waiting  # type: ignore[method-assign]
    with pytest.raises(StateError, match=r"in use by another autoscaler \(replica c,"):
        b.take_exclusively()


def test_a_leader_that_comes_back_under_a_newer_epoch_was_deposed_in_between(
    lease: FakeLease, clock: Clock
) -> None:
    # Paused 40 s: b took the lease (epoch 2) and died; a then takes epoch 3. It went
    # from epoch 1 to 3 without being deposed: no transition counted (the README's
    # AutoscalerLeaderLost alert watches them), no log line, no `on_deposed`.
    a = leadership(lease, clock, "a")
    events: list[str] = []
    a.subscribe(
        on_elected=lambda epoch: events.append(f"elected {epoch}"),
        on_deposed=lambda: events.append("deposed"),
    )
    assert a.step() and a.epoch == 1
    advance(lease, clock, 20)
    assert lease.acquire("b", TTL, epoch=None).held and lease.epoch == 2
    advance(lease, clock, 20)
    assert a.step() and a.epoch == 3
    assert events == ["elected 1", "deposed", "elected 3"]
    assert a.transitions() == {"elected": 2, "lapsed": 0, "taken_over": 1, "released": 0}


def test_while_the_database_is_out_of_reach_no_replica_names_a_leader_past_its_lease(
    lease: FakeLease, clock: Clock
) -> None:
    # The lease's expiry was judged by the database's time when it was last read: ten
    # minutes into an outage, /v1/leader on the standby still named a as the leader.
    a, b = leadership(lease, clock, "a"), leadership(lease, clock, "b")
    a.step()
    b.step()
    assert b.view().leader == "a"
    lease.down = True
    advance(lease, clock, TTL - 1)
    b.step()
    assert b.view().leader == "a"  # its lease has not run out yet
    advance(lease, clock, 600)
    a.step()
    b.step()
    for view in (a.view(), b.view()):
        assert (view.role, view.leader, view.epoch, view.lease_expires_at) == (
            "standby",
            None,
            None,
            None,
        )
        assert view.problem is not None
