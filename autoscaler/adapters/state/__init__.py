"""State stores: each implements `autoscaler.core.ports.StateStore`.

`SqliteStateStore` is the durable memory of one controller; `LayeredStateStore` keeps what
the controller knows in memory in front of it, so a failed write never makes it forget;
`MemoryStateStore` serves `plan` without a state file, tests and replays.
"""

from autoscaler.adapters.state.layered import LayeredStateStore
from autoscaler.adapters.state.memory import MemoryStateStore
from autoscaler.adapters.state.schema import decision_from_dict
from autoscaler.adapters.state.sqlite import SqliteStateStore

__all__ = ["LayeredStateStore", "MemoryStateStore", "SqliteStateStore", "decision_from_dict"]
