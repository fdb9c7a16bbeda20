"""State stores: each implements `autoscaler.core.ports.StateStore`.

`SqliteStateStore` is the durable memory of one controller; `MemoryStateStore` serves
`plan` without a state file, tests and replays.
"""

from autoscaler.adapters.state.memory import MemoryStateStore
from autoscaler.adapters.state.sqlite import SqliteStateStore, decision_from_dict

__all__ = ["MemoryStateStore", "SqliteStateStore", "decision_from_dict"]
