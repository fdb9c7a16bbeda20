"""State kept in memory: for `plan` without a state file, and for tests and replays."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from autoscaler.core.model import Decision, Memory


class MemoryStateStore:
    """`ports.StateStore` kept in memory: for `plan` without a state file, and for tests."""

    def __init__(self) -> None:
        self._memory: dict[str, tuple[str, Memory]] = {}
        self._targets: dict[str, datetime] = {}
        self._decisions: list[Decision] = []

    def load(self, policy: str, target_key: str) -> Memory:
        kept = self._memory.get(policy)  # (no default built at every call: replays load a lot)
        memory = Memory() if kept is None or kept[0] != target_key else kept[1]
        last = self._targets.get(target_key)
        if memory.last_scaled_at is last:
            return memory  # immutable, and already what the copy below would be
        return Memory(
            last_scaled_at=last,
            recommendations=memory.recommendations,
            missing_data_streak=memory.missing_data_streak,
            missing_data_since=memory.missing_data_since,
        )

    def save(self, policy: str, target_key: str, memory: Memory) -> None:
        self._memory[policy] = (target_key, memory)
        if memory.last_scaled_at is not None:
            previous = self._targets.get(target_key)
            if previous is None or memory.last_scaled_at > previous:
                self._targets[target_key] = memory.last_scaled_at

    def remember(self, policy: str, target_key: str, memory: Memory) -> None:
        self.save(policy, target_key, memory)

    def withdraw(self, target_key: str, *, at: datetime, previous: datetime | None) -> None:
        if self._targets.get(target_key) != at:
            return
        if previous is None:
            del self._targets[target_key]
        else:
            self._targets[target_key] = previous

    def durability_problem(self) -> str | None:
        return None

    def known(self) -> list[tuple[str, str, Memory]]:
        """Every policy's (name, target key, memory with its target's last action)."""
        return [(policy, key, self.load(policy, key)) for policy, (key, _) in self._memory.items()]

    def retain(self, policies: Collection[str], targets: Collection[str]) -> None:
        """Keep only the memory of `policies`, and the last actions of `targets` and of
        the targets that memory is about (the rest belongs to removed policies)."""
        self._memory = {p: kept for p, kept in self._memory.items() if p in policies}
        about = {key for key, _ in self._memory.values()}
        self._targets = {
            key: at for key, at in self._targets.items() if key in targets or key in about
        }

    def targets_kept(self) -> int:
        """How many targets' last actions are kept."""
        return len(self._targets)

    def record(self, decision: Decision) -> None:
        self._decisions.append(decision)

    def history(self, *, policy: str | None = None, limit: int = 100) -> list[Decision]:
        found = [d for d in reversed(self._decisions) if policy in (None, d.policy)]
        return found[: max(0, limit)]

    def close(self) -> None:
        return None
