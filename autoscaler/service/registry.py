"""The live set of policies: what is loaded now, what failed to load, and safe reloads.

A reload must never make the controller forget a policy because someone saved a typo:
a file that fails validation keeps its last good version running (its problems are
reported), while valid files replace their policies. A file that is gone takes its
policies with it. Changes on disk are noticed by polling a cheap fingerprint (path,
inode, size, mtime) of every policy file, so no inotify dependency is needed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from autoscaler.core.model import Policy
from autoscaler.errors import Problem
from autoscaler.policy.loader import LoadResult, load_paths

log = logging.getLogger("autoscaler.registry")

Fingerprint = tuple[tuple[str, int, int, int], ...]


@dataclass(frozen=True, kw_only=True)
class ReloadOutcome:
    """What a reload changed. `kept` lists files whose last good version stays in force."""

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)


def _key(file: str) -> str:
    """One spelling per file, so a problem's file and a policy's source compare equal."""
    return os.path.realpath(file)


class PolicyRegistry:
    """Loads policy files, keeps the last good version of broken ones, detects changes."""

    def __init__(
        self,
        paths: Sequence[str],
        *,
        loader: Callable[[Sequence[str]], LoadResult] = load_paths,
    ) -> None:
        self._paths = tuple(paths)
        self._loader = loader
        self._lock = threading.Lock()
        self._policies: dict[str, Policy] = {}
        self._problems: tuple[Problem, ...] = ()
        self._fingerprint: Fingerprint = ()
        self.loaded_at: datetime | None = None

    @property
    def paths(self) -> tuple[str, ...]:
        return self._paths

    def policies(self) -> list[Policy]:
        """Every loaded policy (enabled or not), in load order."""
        with self._lock:
            return list(self._policies.values())

    def get(self, name: str) -> Policy | None:
        with self._lock:
            return self._policies.get(name)

    def problems(self) -> list[Problem]:
        """Problems found by the last load, in every file."""
        with self._lock:
            return list(self._problems)

    def problems_of(self, policy: Policy) -> list[Problem]:
        """Problems of the file `policy` comes from (its last good version is running)."""
        wanted = _key(policy.source.file)
        return [p for p in self.problems() if _key(p.file) == wanted]

    def reload(self) -> ReloadOutcome:
        """Read every file again and swap in what is valid; see the module docstring."""
        with self._lock:
            fingerprint = self._scan()
            result = self._loader(self._paths)
            old = self._policies
            broken = {_key(p.file) for p in result.problems}
            fresh: dict[str, Policy] = {p.name: p for p in result.policies}
            kept_files: set[str] = set()
            for policy in old.values():
                file = _key(policy.source.file)
                if file in broken and os.path.exists(file) and policy.name not in fresh:
                    fresh[policy.name] = policy
                    kept_files.add(policy.source.file)
            outcome = ReloadOutcome(
                added=tuple(n for n in fresh if n not in old),
                updated=tuple(n for n in fresh if n in old and old[n] != fresh[n]),
                removed=tuple(n for n in old if n not in fresh),
                kept=tuple(sorted(kept_files)),
                problems=tuple(result.problems),
            )
            self._policies = fresh
            self._problems = tuple(result.problems)
            self._fingerprint = fingerprint
            self.loaded_at = datetime.now(UTC)
        _log(outcome)
        return outcome

    def changed_on_disk(self) -> bool:
        """True when a policy file was added, removed or modified since the last reload."""
        with self._lock:
            return self._scan() != self._fingerprint

    def _scan(self) -> Fingerprint:
        """(path, inode, size, mtime) of every policy file under the paths."""
        entries: list[tuple[str, int, int, int]] = []
        for root in self._paths:
            path = Path(root)
            candidates = [path]
            if path.is_dir():
                # Like the loader: *.yaml and *.yml directly in the folder (the folder's own
                # mtime would also change for editor swap files).
                candidates = [p for p in path.iterdir() if p.suffix in (".yaml", ".yml")]
            for candidate in candidates:
                try:
                    st = candidate.stat()
                except OSError:
                    entries.append((str(candidate), -1, -1, -1))
                    continue
                entries.append((str(candidate), st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(sorted(entries))


def _log(outcome: ReloadOutcome) -> None:
    for problem in outcome.problems:
        log.error("invalid policy: %s", problem)
    for file in outcome.kept:
        log.error("policy file %s is invalid: its last good version keeps running", file)
    if outcome.changed:
        log.info(
            "policies reloaded: added=%s updated=%s removed=%s",
            ",".join(outcome.added) or "-",
            ",".join(outcome.updated) or "-",
            ",".join(outcome.removed) or "-",
        )
