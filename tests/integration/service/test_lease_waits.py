"""How long a lease renewal may wait on a real PostgreSQL: less than a renewal period.

The renewal updates the lease row; while something holds that row (a state write stuck in
its transaction, an operator's session), the renewal waits for the lock. With the store's
own timeouts (10 s) it waited past the local validity of a 15 s lease, so the leader
lapsed without having had a second try; the lease's statements now give up within a
quarter of the TTL.
"""

from __future__ import annotations

import time

import pytest

from autoscaler.adapters.state import LayeredStateStore
from autoscaler.config.state import open_postgres_state
from autoscaler.service.leadership import replicate
from tests.support.postgres import Database

pytestmark = pytest.mark.integration

TTL = 4.0


def test_a_renewal_waiting_on_a_locked_lease_row_gives_up_within_a_renewal_period(
    postgres_db: Database,
) -> None:
    store = open_postgres_state(postgres_db.dsn, str(postgres_db.server.password_file))
    state = LayeredStateStore(store)
    state.standby()
    lead = replicate(store, state, replica="a", ttl=TTL)
    try:
        assert lead.step()
        with postgres_db.connect() as blocker, blocker.transaction():
            blocker.execute("SELECT 1 FROM autoscaler_lease FOR UPDATE")
            started = time.monotonic()
            leading = lead.step()
            took = time.monotonic() - started
            problem = lead.problem() or ""
        assert took < TTL / 3, f"the renewal waited {took:.1f} s for the lock"
        assert leading  # still valid locally: the next renewal can be sent in time
        assert "timeout" in problem and "autoscaler_lease" in problem, problem
        assert lead.step() and lead.problem() is None  # the lock gone: renewed
    finally:
        lead.close()
        state.close()
