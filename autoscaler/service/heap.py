"""The service's garbage collector: collections kept to those that can find garbage.

At 10,000 policies most of the heap is what the policies keep, alive for hours, and the
collector walked it again and again to find it alive. `collect_less_often` is called
once at start, `settle_heap` after each change of the policies (`Controller`).
"""

from __future__ import annotations

import gc
import time

# Young objects the collector lets pile up in the service before it looks at them. An
# evaluation makes hundreds of container objects that die by reference count; Python's
# default (700) ran about five collections a second at 10,000 policies, which found almost
# nothing and moved what was merely in flight into older generations, for later and
# longer collections to walk: 8 to 12 % of the service's CPU. At 10,000 it ran one
# collection every 15 to 20 s (bench.service, templated 10,000: collector time 1.1 to
# 1.7 s -> 0.26 s over 45 s, RSS unchanged); only cyclic garbage waits longer.
SERVICE_GC_THRESHOLD = 10_000


def collect_less_often() -> None:
    """Raise the youngest generation's threshold to `SERVICE_GC_THRESHOLD`; a higher one
    is kept, and a threshold of 0 (collection turned off on purpose) stays 0."""
    first, *rest = gc.get_threshold()
    if first != 0:
        gc.set_threshold(max(first, SERVICE_GC_THRESHOLD), *rest)


# A full collection at 10,000 policies takes a few tenths of a second of CPU: after one,
# the next waits this many times as long, however often discovery changes the policies
# (at most 2 % of a core on settling).
SETTLE_SPACING = 50
_next_settle = 0.0


def settle_heap(*, now: float | None = None) -> bool:
    """After the policies changed: collect what the old set left, then keep what is alive
    now (the policies, their targets, caches) out of later full collections. False when
    the last settling was too recent (`SETTLE_SPACING`); nothing is done then.

    At 10,000 policies the objects a reload leaves in place are most of the heap, and every
    full collection walked them all again to find them alive (`gc.freeze`, as CPython's
    documentation suggests for long-lived servers; 4 % of the service's CPU went to the
    collector). Unfrozen first, so what an earlier settling froze and is garbage now is
    collected; what dies by reference count is freed as always, frozen or not. A change
    that comes too soon after a settling unfreezes the heap (collected as usual again).
    """
    global _next_settle  # noqa: PLW0603 - one heap per process
    started = time.monotonic() if now is None else now
    if started < _next_settle:
        # Not frozen any more, so what the policies just replaced left in cycles is
        # collected as usual rather than kept until a settling that may never come.
        gc.unfreeze()
        return False
    cpu = time.thread_time()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    _next_settle = started + SETTLE_SPACING * (time.thread_time() - cpu)
    return True
