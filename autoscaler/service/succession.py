"""A policy that takes over another's target takes over its memory too.

A rename, a template's new name or Nomad's policy taking over a group is a new policy on
the same target: without its predecessor's stabilization windows and missing-data count
it could scale in at once. The controller carries them over after a reload
(`carry_memory`) and once more before the successor's first run (`copy_memory`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from autoscaler.core.model import Policy
from autoscaler.core.ports import StateStore
from autoscaler.errors import NotLeader, StateError
from autoscaler.policy.conflicts import same_target

log = logging.getLogger("autoscaler.service")


def carry_memory(
    state: StateStore, before: list[Policy], after: list[Policy], *, added: Sequence[str]
) -> list[tuple[Policy, Policy]]:
    """Give each enabled policy `added` by a reload the memory of the enabled policy that
    was on its target before and is gone now (renamed, or replaced by another on the
    target: a template's new name, Nomad's policy taking over a group); return the pairs
    (old, new).

    The last action is kept by target, but the stabilization windows' recommendations and
    the missing-data count are kept by policy name: without this, a renamed policy had no
    down window behind it and could scale in at once. It goes on as an edited one would.
    Done before the new policy is scheduled, for what reads its state meanwhile, and again
    before its first run (`Controller._evaluate`): the scheduler starts it only once the
    old policy's run in flight has ended, whose result is then carried too. A replica that
    may not write keeps nothing."""
    if not added:
        return []
    names = {policy.name for policy in after}
    # By identity (region aside, as `same_target` compares): a region given on one side
    # only (a file's policy, a template's expansion with NOMAD_REGION) is one target still;
    # one name in two regions is two targets (a list per identity).
    gone: dict[tuple[str, ...], list[Policy]] = {}
    for p in before:
        if p.enabled and p.name not in names:
            gone.setdefault(p.target.identity, []).append(p)
    if not gone:
        return []
    new = set(added)  # (a tuple: `in` on it was quadratic at 10,000 renamed at once)
    carried: list[tuple[Policy, Policy]] = []
    for policy in after:
        candidates = gone.get(policy.target.identity) if policy.enabled else None
        if not candidates:
            continue
        old = next((p for p in candidates if same_target(p.target, policy.target)), None)
        if old is None:
            continue
        candidates.remove(old)
        if policy.name not in new:
            continue
        if not copy_memory(state, old, policy):
            return carried  # a standby: the leader carries it over
        carried.append((old, policy))
    return carried


def copy_memory(state: StateStore, old: Policy, policy: Policy) -> bool:
    """`old`'s memory as `policy`'s; False on a replica that may not write."""
    try:
        memory = state.load(old.name, old.target.key)
        state.remember(policy.name, policy.target.key, memory)
    except NotLeader:
        return False  # the database holds it, and the leader carries it over
    except StateError as exc:
        log.warning(
            "policy %s took over %s from %s without its memory (stabilization, missing data): %s",
            policy.name,
            policy.target,
            old.name,
            exc,
        )
    return True
