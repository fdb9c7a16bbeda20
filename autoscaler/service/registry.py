"""The live set of policies: what is loaded now, what failed to load, and safe reloads.

A reload must never make the controller forget a policy because someone saved a typo,
and never leave two policies on one target. The unit is the file: a file whose new text is
rejected (invalid, or a policy in it takes a name or an enabled target that a policy of
another file holds) keeps its last good version running, all of it, with its problems
reported; a file seen for the first time has no such version, so only its policies that
collide with nothing are loaded (as `validate` would). In a collision, the policy already
running wins over the newcomer, whatever the file order; between two newcomers, the first
in path order wins. A file that is gone takes its policies with it. Changes on disk are
noticed by polling a cheap fingerprint (path, inode, size, mtime, ctime) of every policy
file, so no inotify dependency is needed.

Policies found by discovery (expanded templates, Nomad's scaling policies) follow the same
rules, each discovered target standing for a file of its own that comes after the real
files: a target whose new policy is invalid (a bad override) or collides keeps its last
good policy; a new one that collides is not loaded; a target no longer discovered takes
its policy with it. The templates of a file are part of its version: a file that is
rejected (invalid, or colliding) keeps its last good templates with its last good policies.
A grouped check whose series another discovered target reads too fails for each, the
policies kept for their targets included (`shared_series`).
`refresh` applies a new discovery result without reading the files again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from autoscaler.core.model import Policy
from autoscaler.errors import PolicyWarning, Problem
from autoscaler.policy.conflicts import Claims, Located
from autoscaler.policy.files import expand_paths
from autoscaler.policy.loader import FileLoad, load_file
from autoscaler.policy.templates import Template
from autoscaler.service.discovery_sources import is_partly_read
from autoscaler.service.shared_series import each_its_own_series
from autoscaler.service.yielding import stand_ins

log = logging.getLogger("autoscaler.registry")

# A digest of (path, inode, size, mtime, ctime) of every policy file: only ever compared, and
# the tuples themselves held 210 bytes per file (2 MB at 10,000 files) between reloads.
Fingerprint = bytes
# The discovered policies for the templates in force: one pseudo-file per target (its path
# starts with DISCOVERED), and the problems of the discovery sources themselves.
Discover = Callable[[Sequence[Template]], tuple[list[FileLoad], list[Problem]]]
DISCOVERED = "discovered:"


@dataclass(frozen=True, kw_only=True)
class ReloadOutcome:
    """What a reload changed. `kept` lists files whose last good version stays in force;
    `problems` are every problem in force, `sources_failing` those of them that are failing
    discovery sources rather than policies; `warnings` those of the files as read."""

    added: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()
    sources_failing: tuple[Problem, ...] = ()
    warnings: tuple[PolicyWarning, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    @property
    def policy_problems(self) -> tuple[Problem, ...]:
        """The problems of the policies (files, discovered targets), without the failing
        discovery sources: an outage of Nomad or AWS is no invalid policy."""
        failing = set(self.sources_failing)
        return tuple(p for p in self.problems if p not in failing)


def _key(file: str) -> str:
    """One spelling per file, so a problem's file and a policy's source compare equal.

    The path as the folder names it, made absolute, not where its links lead: policies
    updated by repointing a link (a Kubernetes ConfigMap's `..data`, a `current` release
    link) are the same files after the update, and a broken update keeps their last good
    versions. (Two names for one file are read once: `expand_paths`.)"""
    return file if file.startswith(DISCOVERED) else os.path.abspath(file)


class PolicyRegistry:
    """Loads policy files, keeps the last good version of rejected ones, detects changes."""

    def __init__(self, paths: Sequence[str], *, discover: Discover | None = None) -> None:
        self._paths = tuple(paths)
        self._discover = discover
        self._lock = threading.Lock()
        self._files: dict[str, list[Located]] = {}  # file key -> its policies in force
        # file key -> its templates in force; files without any are left out
        self._templates: dict[str, Sequence[Template]] = {}
        self._loads: list[FileLoad] = []  # the files as last read
        self._file_problems: list[Problem] = []  # paths that do not exist
        self._policies: dict[str, Policy] = {}
        self._problems: tuple[Problem, ...] = ()
        self._warnings: tuple[PolicyWarning, ...] = ()
        # policy name -> the problems it shows (`problems_of`); policies without any left out
        self._problems_by_name: dict[str, tuple[Problem, ...]] = {}
        # `warnings_of`: the files' warnings, and each discovered policy's own target's
        self._file_warnings: tuple[PolicyWarning, ...] = ()
        self._own_warnings: dict[str, tuple[PolicyWarning, ...]] = {}
        self._fingerprint: Fingerprint = b""
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

    def warnings(self) -> list[PolicyWarning]:
        """Warnings of the files as last read (their policies are loaded all the same)."""
        with self._lock:
            return list(self._warnings)

    def warnings_of(self, policy: Policy) -> list[PolicyWarning]:
        """The warnings of the file `policy` was loaded from (a discovered policy: its
        template's file's, and its own target's, not those of the template's other
        targets, as for `problems_of`)."""
        with self._lock:
            in_file = [w for w in self._file_warnings if w.file == policy.source.file]
            return in_file + list(self._own_warnings.get(policy.name, ()))

    def problems_of(self, policy: Policy) -> list[Problem]:
        """The problems that keep `policy`'s last good version running: its file's, and for
        a discovered policy its own target's (a bad override, a collision) and its
        template file's. Not those of the template's other targets, which share the
        template's file name: 10,000 targets would each list 10,000 problems."""
        with self._lock:
            return list(self._problems_by_name.get(policy.name, ()))

    def templates(self) -> list[Template]:
        """The policy templates in force, in load order."""
        with self._lock:
            return [t for templates in self._templates.values() for t in templates]

    def reload(self) -> ReloadOutcome:
        """Read every file again and swap in what is accepted; see the module docstring.

        Every problem is logged again; a warning only when it is new (a reload of files
        that did not change repeats none).
        """
        with self._lock:
            self._fingerprint = self._scan()
            missing: list[Problem] = []
            loads = [load_file(path) for path in expand_paths(self._paths, missing)]
            self._loads, self._file_problems = self._as_last_read(loads, missing)
            warned = set(self._warnings)
            outcome = self._settle_locked()
        _log(outcome, warned=warned)
        return outcome

    def _as_last_read(
        self, loads: list[FileLoad], missing: Sequence[Problem]
    ) -> tuple[list[FileLoad], list[Problem]]:
        """`loads` with, for each path given that is gone or cannot be reached (`missing`),
        the files last read under it, as they were read; and the paths' problems.

        Such a path is no intent to run without its policies (`run` refuses to start
        without it): a folder replaced by `rm -rf` and a copy, a volume unmounted, a file
        given on its own that vim's save renames away for a moment. Its policies keep
        running, as those of a folder that cannot be listed do."""
        read = {_key(load.path) for load in loads}
        problems: list[Problem] = []
        for problem in missing:
            root = problem.file
            kept = [
                load
                for load in self._loads
                if (load.path == root or load.path.startswith(root.rstrip(os.sep) + os.sep))
                and _key(load.path) not in read
            ]
            if not kept:
                problems.append(problem)
                continue
            read.update(_key(load.path) for load in kept)
            loads = [*loads, *kept]
            note = f"{problem.message}: the {len(kept)} file(s) last read from it keep running"
            problems.append(Problem(problem.file, problem.line, problem.field, note))
        return loads, problems

    def refresh(self) -> ReloadOutcome:
        """Apply what discovery finds now, with the files as last read.

        Only problems (and warnings) that were not there before are logged: discovery
        refreshes often.
        """
        with self._lock:
            before, warned = set(self._problems), set(self._warnings)
            outcome = self._settle_locked()
        _log(outcome, known=before, warned=warned)
        return outcome

    def _settle_locked(self) -> ReloadOutcome:
        """Put in force what the files as read and discovery give (under the lock).

        A file's templates go in force with its policies or not at all: a file held back
        keeps its last good templates too. Which files are held back is known once they are
        settled, but discovery needs the templates before: the files whose templates it
        decides (`pending`) are settled first against what runs now, so discovery is asked
        once, for the templates that go in force (a source it is no longer asked for stops,
        and started again it has lost its targets until read). Should the settling with
        discovery hold back one more of them, it is settled again with that file held.
        """
        pending = {
            _key(load.path)
            for load in self._loads
            if not load.problems
            and not _same_templates(load.templates, self._templates.get(_key(load.path), ()))
        }
        held = self._held_back(pending) if pending and self._discover is not None else {}
        while True:
            templates = self._templates_with(held)
            problems = list(self._file_problems)
            loads = list(self._loads)
            failing: list[Problem] = []
            current = self._files
            if self._discover is not None:
                found = [t for in_file in templates.values() for t in in_file]
                discovered, failing = self._discover(found)
                # a grouped check shared with a target in any state (its last good policy
                # kept) fails for each reader: the policies in force too, hence `current`
                discovered, current = each_its_own_series(discovered, self._files)
                loads += discovered
                problems += failing
            plan = _settle(loads, current, held=held)
            notes: list[tuple[str, Problem]] = []
            while (back := stand_ins(loads, _in_force(plan))) is not None:
                loads, put_back = back  # a policy stood aside for one that was refused
                notes += put_back
                plan = _settle(loads, current, held=held)
            for path, note in notes:
                plan.collided(_key(path), [note])
            late = ({_key(f) for f in plan.kept} & pending) - held.keys()
            if not late:
                break
            held.update({key: plan.problems.get(key, []) for key in late})
        old = self._policies
        fresh = {item.policy.name: item.policy for items in plan.files.values() for item in items}
        own: dict[str, list[Problem]] = {}
        for load in loads:
            if load.problems:
                own.setdefault(_key(load.path), []).extend(load.problems)
        for key, collisions in plan.problems.items():
            own.setdefault(key, []).extend(collisions)
        problems += [p for load in loads for p in load.problems]
        problems += [p for collisions in plan.problems.values() for p in collisions]
        order = {_key(str(load.path)): i for i, load in enumerate(loads)}
        problems.sort(key=lambda p: (order.get(_key(p.file), -1), p.line))
        outcome = ReloadOutcome(
            added=tuple(n for n in fresh if n not in old),
            updated=tuple(n for n in fresh if n in old and old[n] != fresh[n]),
            removed=tuple(n for n in old if n not in fresh),
            kept=tuple(sorted(plan.kept)),
            problems=tuple(problems),
            sources_failing=tuple(failing),
            warnings=tuple(w for load in loads for w in load.warnings),
        )
        self._files = plan.files
        self._templates = templates
        self._policies = fresh
        self._problems = outcome.problems
        self._warnings = outcome.warnings
        self._problems_by_name = _problems_by_name(plan.files, own)
        self._file_warnings = tuple(w for load in self._loads for w in load.warnings)
        self._own_warnings = {  # a target kept on its last good policy: that one's
            item.policy.name: tuple(load.warnings)
            for load in loads
            if load.warnings and load.path.startswith(DISCOVERED)
            for item in (load.policies or plan.files.get(_key(load.path), ()))
        }
        self.loaded_at = datetime.now(UTC)
        return outcome

    def _held_back(self, keys: set[str]) -> dict[str, list[Problem]]:
        """Which files of `keys` are held back against the policies running now (discovered
        ones as they are), and why."""
        running = [  # not those of the files' own templates, which their new version replaces
            FileLoad(key, items, [])
            for key, items in self._files.items()
            if key.startswith(DISCOVERED)
            and not any(_key(item.policy.source.file) in keys for item in items)
        ]
        plan = _settle([*self._loads, *running], self._files, held={})
        kept = {_key(file) for file in plan.kept} & keys
        return {key: plan.problems.get(key, []) for key in kept}

    def _templates_with(self, held: Mapping[str, object]) -> dict[str, Sequence[Template]]:
        """Each file's templates in force (files without any left out): its new ones, or,
        for a file that is invalid or `held` back, those of its last good version."""
        templates: dict[str, Sequence[Template]] = {}
        for load in self._loads:
            key = _key(load.path)
            last_good = load.problems or key in held
            kept = self._templates.get(key, ()) if last_good else load.templates
            if kept:
                templates[key] = kept
        return templates

    def changed_on_disk(self) -> bool:
        """True when a policy file was added, removed or modified since the last reload."""
        with self._lock:
            return self._scan() != self._fingerprint

    def fingerprint(self) -> Fingerprint:
        """The policy files as they are now (`_scan`), to tell whether they still change."""
        return self._scan()

    def _scan(self) -> Fingerprint:
        """A digest of (path, inode, size, mtime, ctime) of every policy file under the paths.

        The ctime changes with the owner and mode, which the mtime does not: a file that
        could not be read (`Permission denied`) is read again once `chmod` or `chown`
        fixes it, not only at the next edit."""
        entries: list[tuple[str, int, int, int, int]] = []
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
                    entries.append((str(candidate), -1, -1, -1, -1))
                    continue
                stamp = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                entries.append((str(candidate), *stamp))
        entries.sort()
        # Five fields per file, all separated by NUL, which no path can hold: unambiguous.
        text = "\0".join("\0".join(map(str, entry)) for entry in entries)
        return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=16).digest()


@dataclass
class _Plan:
    """What a reload puts in force: each file's policies, and why some files were held back."""

    files: dict[str, list[Located]]
    kept: set[str]  # files whose last good version stays in force
    problems: dict[str, list[Problem]]  # file key -> its policies' collisions with others

    def collided(self, key: str, problems: Sequence[Problem]) -> None:
        if problems:
            self.problems.setdefault(key, []).extend(problems)


def _settle(
    loads: Sequence[FileLoad],
    current: Mapping[str, list[Located]],
    *,
    held: Mapping[str, Sequence[Problem]],
) -> _Plan:
    """Which version of each file is in force after a reload (see the module docstring).

    Files that are unchanged, or invalid with a last good version, keep what is in force:
    those versions were consistent with each other already. Changed and new files then join
    in path order, each checked against everything claimed so far. A changed file that
    collides is rejected and its last good version comes back; since that version may hold
    a target that an earlier file just moved onto, the round starts again with that file
    rejected. Each round rejects one more file, so this ends with a consistent set. A last
    pass gives each rejected file a second chance against that final set, so a file is
    only held back for a collision that is really there, and its problem names the rival.
    The files `held` (keys, with the problems saying why) are rejected from the start and
    get no second chance: their last good templates are in force already.
    """
    rejected: list[str] = list(held)
    while True:
        plan, collided = _round(loads, current, rejected)
        if collided is None:
            break
        rejected.append(collided)
    by_key = {_key(str(load.path)): load for load in loads}
    position = {key: i for i, key in enumerate(by_key)}
    for key in sorted(set(rejected) - held.keys(), key=position.__getitem__):
        claims = Claims()
        for other, items in plan.files.items():
            if other != key:
                for item in items:
                    claims.claim(item)
        joined, problems = _join(by_key[key].policies, claims)
        if problems:
            plan.collided(key, problems)
        else:
            plan.files[key] = joined
            plan.kept.discard(str(by_key[key].path))
    for key, why in held.items():
        plan.collided(key, why)
    order = list(by_key)
    plan.files = {key: plan.files[key] for key in order if key in plan.files}
    return plan


def _round(
    loads: Sequence[FileLoad], current: Mapping[str, list[Located]], rejected: Sequence[str]
) -> tuple[_Plan, str | None]:
    """One try at a consistent set; the key of the first changed file that collides, if any."""
    plan = _Plan(files={}, kept=set(), problems={})
    joining: list[tuple[str, FileLoad]] = []
    for load in loads:
        key = _key(str(load.path))
        last_good = current.get(key)
        if last_good is not None and (load.problems or key in rejected):
            plan.files[key] = last_good
            plan.kept.add(str(load.path))
        elif last_good is not None and _same(load.policies, last_good):
            plan.files[key] = last_good
        elif not load.problems:
            joining.append((key, load))
    claims = Claims()
    for items in plan.files.values():
        for item in items:
            claims.claim(item)
    for key, load in joining:
        joined, problems = _join(load.policies, claims)
        if problems and key in current:
            return plan, key
        if joined or not load.policies:  # a new file all refused has no version to keep:
            plan.files[key] = joined  # kept as one, later reloads said it "keeps running"
        plan.collided(key, problems)
    return plan, None


def _join(items: Sequence[Located], claims: Claims) -> tuple[list[Located], list[Problem]]:
    """The items that collide with nothing claimed (claiming them), and the others' problems."""
    joined: list[Located] = []
    problems: list[Problem] = []
    for item in items:
        conflict = claims.conflict(item)
        if conflict is None:
            claims.claim(item)
            joined.append(item)
        else:
            problems.append(conflict)
    return joined, problems


def _in_force(plan: _Plan) -> Iterator[Policy]:
    return (item.policy for items in plan.files.values() for item in items)


def _same(new: Sequence[Located], old: Sequence[Located]) -> bool:
    return [item.policy for item in new] == [item.policy for item in old]


def _same_templates(new: Sequence[Template], old: Sequence[Template]) -> bool:
    return len(new) == len(old) and all(a.same_as(b) for a, b in zip(new, old, strict=True))


def _problems_by_name(
    files: Mapping[str, Sequence[Located]], own: Mapping[str, Sequence[Problem]]
) -> dict[str, tuple[Problem, ...]]:
    """What each policy in force shows as its problems (`own`: file key -> its problems):
    its file's; for a discovered target, its template file's first (a template held back
    keeps its targets on their last good policies). Policies without any are left out."""
    if not own:
        return {}
    of = {key: tuple(problems) for key, problems in own.items()}  # shared, not copied
    keys: dict[str, str] = {}  # a policy's source file -> its key (10,000 share a few)
    found: dict[str, tuple[Problem, ...]] = {}
    for key, items in files.items():
        for item in items:
            problems = of.get(key, ())
            if key.startswith(DISCOVERED):
                source = item.policy.source.file
                template = of.get(keys.get(source) or keys.setdefault(source, _key(source)), ())
                problems = template + problems if problems else template
            if problems:
                found[item.policy.name] = problems
    return found


def _log(
    outcome: ReloadOutcome, *, warned: set[PolicyWarning], known: set[Problem] | None = None
) -> None:
    """Log a reload's outcome: its problems (those not `known`, if given), its warnings
    not `warned` already, the files held back and what changed. A discovery source read
    but for some jobs or policies is no invalid policy: discovery warns of it itself, once
    per change (`is_partly_read`)."""
    for problem in outcome.problems:
        if (known is None or problem not in known) and not is_partly_read(problem):
            log.error("invalid policy: %s", problem)
    for warning in outcome.warnings:
        if warning not in warned:
            log.warning("policy file %s", warning)
    for file in outcome.kept if known is None else ():
        if file.startswith(DISCOVERED):
            log.error(
                "the new policy of %s was rejected: its last good policy keeps running",
                file[len(DISCOVERED) :],
            )
        else:
            log.error("policy file %s was rejected: its last good version keeps running", file)
    if outcome.changed:
        log.info(
            "policies reloaded: added=%s updated=%s removed=%s",
            ",".join(outcome.added) or "-",
            ",".join(outcome.updated) or "-",
            ",".join(outcome.removed) or "-",
        )
