"""Discovery: watch the sources the templates need, and turn what they find into policies.

    Nomad jobs ──(blocking queries)──┐
    Nomad scaling policies ──────────┼─> last good result per source ─> expand templates,
    AWS ASGs by tags ──(polling)─────┘        (+ why a source fails)     translate Nomad's
                                                                          policies -> registry

Which sources run follows the templates in force (`for_each: nomad` -> Nomad's job list;
`for_each: aws_asg` -> one poll per region and tag set) and `--nomad-scaling-policies`.
Nomad is watched with blocking queries (a change is seen within moments; at most one pass
per `min_gap` seconds, so a burst of job updates costs one pass); AWS has no change feed
and is polled every `poll` seconds. A source that fails keeps its last good result in
force and the failure becomes a problem (API, logs) saying since when and why; the next
try comes after a backoff that doubles up to `max_backoff`.

`Discovery` is the registry's `discover` callback: given the templates in force, it gives
one pseudo-file per discovered target (see `service.registry`). Expansions are cached per
target and template, so a change to one job re-expands one policy, not 10,000. What is
known of each source is `discovery_sources`; the pseudo-files' keys and names,
`discovery_files`; how the service and the commands set discovery up, `discovery_setup`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from autoscaler.adapters.discovery.nomad import NomadDiscovery
from autoscaler.core.discovered import AsgGroup, NomadGroup, NomadScalingPolicy
from autoscaler.errors import AutoscalerError, PolicyWarning, Problem
from autoscaler.policy.conflicts import Located
from autoscaler.policy.expansion import expand
from autoscaler.policy.loader import FileLoad, load_data
from autoscaler.policy.nomad_autoscaler import policy_from_nomad, policy_name
from autoscaler.policy.templates import Template
from autoscaler.service.discovery_files import (
    expansion_key,
    group_of,
    imported_key,
    pseudo_file,
    template_keys,
    yielding,
)
from autoscaler.service.discovery_sources import (
    NOMAD_POLICIES,
    Read,
    Source,
    SourceHealth,
    joined_notes,
    note_problem,
    refused_note,
    revive,
    source_key,
    source_problem,
    unlisted_note,
)

if TYPE_CHECKING:
    from autoscaler.adapters.discovery.aws import AsgDiscovery

log = logging.getLogger("autoscaler.discovery")


@dataclass(frozen=True, kw_only=True)
class DiscoveryConfig:
    """Which sources beyond the templates' to read, and how often."""

    nomad_scaling_policies: bool = False  # run the policies of jobs' `scaling` blocks
    wait: float = 60.0  # longest a Nomad blocking query waits
    poll: float = 30.0  # seconds between two reads of the AWS groups
    min_gap: float = 1.0  # at least this long between two passes of one source
    max_backoff: float = 60.0  # longest pause between two failed reads
    # With several sources, the first settling waits this long at most for each one's
    # first answer: settled on the first to answer, its policies would run (and keep their
    # targets) before those of the others, whatever the documented order says.
    first_wait: float = 10.0


@dataclass(frozen=True, slots=True)
class _Expanded:
    """One cached expansion: for this template (or Nomad policy) and this target."""

    origin: Any  # the Template, or the NomadScalingPolicy
    found: Any  # the NomadGroup / AsgGroup (None for a Nomad policy)
    load: FileLoad


class Discovery:
    """The registry's `discover` callback, backed by watched (or once-read) sources."""

    def __init__(
        self,
        config: DiscoveryConfig,
        *,
        nomad: Callable[[], NomadDiscovery],
        aws: Callable[[str | None], AsgDiscovery],
        on_change: Callable[[], None] | None = None,
        watch: bool = True,
    ) -> None:
        """`nomad()` and `aws(region)` build the readers (on first need); `on_change` is
        called (from a watcher thread) when a source's result or health changed; with
        `watch=False` nothing runs in the background: call `read_once` first."""
        self._config = config
        self._nomad_factory = nomad
        self._aws_factory = aws
        self._nomad: NomadDiscovery | None = None
        self._aws: dict[str | None, AsgDiscovery] = {}
        self._on_change = on_change
        self._watch = watch
        self._lock = threading.Lock()
        self._sources: dict[str, Source] = {}
        self._cache: dict[str, _Expanded] = {}
        self._targets: dict[str, int] = {}  # source key -> policies its result gave
        # template key -> the cache keys of its expansions last given (`_carried`)
        self._given: dict[str, list[str]] = {}
        # sources stopped by the last call, and when (`_want`: asked again at once, they
        # start again with their last result)
        self._dropped: dict[str, tuple[Source, float]] = {}
        self._closed = False
        self._settled = False  # called once already: no more waiting for first answers

    # --- the registry's callback -----------------------------------------------------------

    def __call__(self, templates: Sequence[Template]) -> tuple[list[FileLoad], list[Problem]]:
        """One pseudo-file per discovered target, and the problems of failing sources.

        Nomad's scaling policy for a group that an enabled template scales stands aside (a
        problem says why), whichever source answered first: templates come first. It is
        put back if that template's policy for the group is refused (`service.yielding`)."""
        self._want(templates)
        self._first_answers()
        with self._lock:
            values = {key: source.value for key, source in self._sources.items()}
            failing = [s for s in self._sources.values() if s.error]
            partial = [s for s in self._sources.values() if s.note]
        loads: list[FileLoad] = []
        seen: set[str] = set()
        targets: dict[str, int] = dict.fromkeys(values, 0)
        # Nomad groups enabled templates take: the template, and its policy's name if valid
        scaled: dict[tuple[str, str, str], tuple[Template, str | None]] = {}
        given: dict[str, list[str]] = {}

        def add(
            key: str, template: Template, target: NomadGroup | AsgGroup, load: FileLoad
        ) -> None:
            loads.append(load)
            targets[key] += 1
            if isinstance(target, NomadGroup) and template.prototype.enabled:
                name = load.policies[0].policy.name if load.policies else None
                scaled.setdefault((target.namespace, target.job, target.group), (template, name))

        for template, known_as in zip(templates, template_keys(templates), strict=True):
            key = source_key(template)
            made = given[known_as] = []
            if values.get(key) is None and known_as in self._given:
                for cached in self._carried(known_as, made, seen):
                    add(key, cached.origin, cached.found, cached.load)
            else:
                for target in values.get(key) or ():
                    if template.matches(target):
                        expansion = expansion_key(target, known_as)
                        made.append(expansion)
                        found = self._expansion(template, expansion, target, seen)
                        add(key, template, target, found)
        for policy in values.get(NOMAD_POLICIES) or ():
            group = group_of(policy)
            if group is None:
                continue
            imported = self._imported(policy, group, seen)
            if group in scaled:
                loads.append(yielding(policy, group, *scaled[group], imported))
                continue
            loads.append(imported)
            targets[NOMAD_POLICIES] += 1
        with self._lock:
            for key in [k for k in self._cache if k not in seen]:
                del self._cache[key]
            self._targets = targets
            self._given = given
            problems = [source_problem(s, targets.get(s.key, 0)) for s in failing]
            problems += [note_problem(s) for s in partial]
        return loads, problems

    def _carried(self, known_as: str, made: list[str], seen: set[str]) -> list[_Expanded]:
        """The expansions last given for the template known as `known_as`, whose source has
        not answered yet: its `for_each` tags or region changed, so it reads a source of
        its own, new. Until that source answers, its targets keep their last good policies
        (as a failing source's would), rather than being dropped until AWS answers, for
        as long as AWS fails."""
        with self._lock:
            found = [(k, self._cache[k]) for k in self._given[known_as] if k in self._cache]
        made.extend(k for k, _ in found)
        seen.update(made)
        return [cached for _, cached in found]

    def health(self) -> list[SourceHealth]:
        """Each source in force now: up or failing, reads, and the targets it gave."""
        with self._lock:
            return [
                SourceHealth(
                    source=key,
                    up=source.error is None and source.value is not None,
                    targets=self._targets.get(key, 0),
                    reads=source.reads,
                    failures=source.failures,
                    last_success=source.last_success,
                )
                for key, source in self._sources.items()
            ]

    def _first_answers(self) -> None:
        """On the first call, with several sources watched: wait for each one's first
        answer (or failure), `first_wait` seconds at most, so that the first settling sees
        them all, not the one that answered first."""
        with self._lock:
            first, self._settled = not self._settled, True
            sources = list(self._sources.values())
        if not (first and self._watch and len(sources) > 1):
            return
        deadline = time.monotonic() + self._config.first_wait
        for source in sources:
            if not source.answered.wait(max(0.0, deadline - time.monotonic())):
                log.warning(
                    "discovery from %s has not answered within %g s: starting without "
                    "it; its targets are added when it answers",
                    source.key,
                    self._config.first_wait,
                )

    def read_once(self, templates: Sequence[Template]) -> None:
        """Read every source `templates` need once, now (for `plan`, `validate`, `--once`)."""
        self._want(templates)
        with self._lock:
            sources = list(self._sources.values())
        for source in sources:
            self._read(source, index=0)

    def close(self) -> None:
        """Stop every watcher (they end within their current request), and Nomad's checks
        of the namespaces its lists leave out (`NomadDiscovery.close`)."""
        with self._lock:
            self._closed = True
            sources, self._sources = list(self._sources.values()), {}
            nomad = self._nomad
        for source in sources:
            source.stop.set()
        if nomad is not None:
            nomad.close()

    # --- sources ---------------------------------------------------------------------------

    def _want(self, templates: Sequence[Template]) -> None:
        """Start the sources `templates` need, stop the others.

        Nomad's job list is read in the namespaces the Nomad templates look in (every one
        if one looks in `*`): jobs elsewhere are never read, so a token that may not read
        them fails nothing. When that set changes, the list is read anew at once (a new
        source; the templates' targets stand meanwhile, `_carried`), not when the blocking
        query on the old set ends."""
        nomad = {t.namespace for t in templates if t.kind == "nomad"}
        scope = ("*",) if "*" in nomad else tuple(sorted(nomad))
        wanted: dict[str, tuple[Read, bool, tuple[str, ...]]] = {}
        for template in templates:
            key = source_key(template)
            if template.kind == "nomad":
                wanted[key] = (self._groups_reader(scope), True, scope)
            else:
                wanted[key] = (self._asg_reader(template), False, ())
        if self._config.nomad_scaling_policies:
            wanted[NOMAD_POLICIES] = (self._read_policies, True, ())
        started: list[Source] = []
        now = time.monotonic()
        with self._lock:
            if self._closed:
                return
            dropped, self._dropped = self._dropped, {}
            for key, source in list(self._sources.items()):
                if key not in wanted or source.scope != wanted[key][2]:
                    self._dropped[key] = (self._sources.pop(key), now)
                    source.stop.set()
            for key, (read, blocking, in_scope) in wanted.items():
                if key not in self._sources:
                    source = Source(key=key, read=read, blocking=blocking, scope=in_scope)
                    self._sources[key] = source
                    revive(source, dropped.get(key), now)
                    started.append(source)
        if self._watch:
            for source in started:
                source.thread = threading.Thread(
                    target=self._run, args=(source,), name=f"discover {source.key}", daemon=True
                )
                source.thread.start()

    def _groups_reader(self, namespaces: tuple[str, ...]) -> Read:
        def read(index: int, wait: float) -> tuple[Any, int, str | None]:
            listing = self._nomad_reader().groups(index=index, wait=wait, namespaces=namespaces)
            note = joined_notes(refused_note(listing.refused), unlisted_note(listing.unlisted))
            return listing.items, listing.index, note

        return read

    def _read_policies(self, index: int, wait: float) -> tuple[Any, int, str | None]:
        listing = self._nomad_reader().scaling_policies(index=index, wait=wait)
        unlisted = unlisted_note(listing.unlisted, policies=True)
        return listing.items, listing.index, joined_notes(refused_note(listing.refused), unlisted)

    def _nomad_reader(self) -> NomadDiscovery:
        with self._lock:
            if self._nomad is None:
                self._nomad = self._nomad_factory()
            return self._nomad

    def _asg_reader(self, template: Template) -> Read:
        region, tags = template.region, dict(template.match)

        def read(_index: int, _wait: float) -> tuple[Any, int, str | None]:
            with self._lock:
                reader = self._aws.get(region)
                if reader is None:
                    reader = self._aws[region] = self._aws_factory(region)
            return tuple(reader.groups(tags)), 0, None

        return read

    def _run(self, source: Source) -> None:
        """Watch one source until it is no longer wanted.

        A failed read is tried again after a backoff that doubles, from `min_gap` for a
        blocking source and from `poll` for a polled one (AWS: a throttled listing must
        not be sent more often than a healthy one). A blocking source that answers
        without an index (a proxy that drops `X-Nomad-Index`) cannot block: it is polled
        at `poll`, not listed in full every `min_gap`."""
        config = self._config
        first = config.min_gap if source.blocking else config.poll
        longest = max(config.max_backoff, first)
        index, backoff, warned = 0, first, False
        while not source.stop.is_set():
            ok, new_index = self._read(source, index=index)
            if ok:
                backoff = first
                # Nomad's index went back (a cluster restored from a snapshot): read the list
                # again from 0, at once (it is no answer without an index, below).
                index = new_index if new_index >= index else 0
                pause = config.min_gap if source.blocking else config.poll
                if source.blocking and new_index <= 0:
                    pause = config.poll
                    if not warned:
                        warned = True
                        log.warning(
                            "discovery from %s: Nomad answered without an index "
                            "(X-Nomad-Index), so it cannot wait for changes: reading it "
                            "every %g s instead",
                            source.key,
                            config.poll,
                        )
            else:
                pause, backoff = backoff, min(backoff * 2, longest)
            # Bounded by TIMEOUT_MAX: a longer wait raises OverflowError, ending the watcher.
            source.stop.wait(min(pause, threading.TIMEOUT_MAX))

    def _read(self, source: Source, *, index: int) -> tuple[bool, int]:
        """Read `source` once; record the result or the failure. (succeeded, new index)"""
        wait = self._config.wait if source.blocking and index > 0 and self._watch else 0.0
        try:
            value, new_index, note = source.read(index, wait)
        except AutoscalerError as exc:
            self._failed(source, str(exc))
            return False, index
        except Exception as exc:  # a bug must not end the watcher: fail and retry
            log.exception("discovery from %s failed unexpectedly", source.key)
            self._failed(source, f"{type(exc).__name__}: {exc}")
            return False, index
        with self._lock:
            noted = note != source.note
            changed = source.error is not None or value != source.value or noted
            if source.error is not None:
                log.info("discovery from %s works again", source.key)
            source.value, source.error, source.failing_since = value, None, None
            source.note = note
            source.reads += 1
            source.last_success = time.time()
        source.answered.set()
        if noted and note is not None:  # once per change of what is left out
            log.warning("discovery from %s partly read: %s", source.key, note)
        elif noted:
            log.info("discovery from %s leaves nothing out again", source.key)
        if changed and not source.stop.is_set():
            self._changed()
        return True, new_index

    def _failed(self, source: Source, error: str) -> None:
        with self._lock:
            first = source.error is None
            changed = source.error != error
            source.error = error
            source.failures += 1
            if first:
                source.failing_since = datetime.now(UTC)
        source.answered.set()
        if first:
            kept = "nothing found yet" if source.value is None else "its last result stays"
            log.error("discovery from %s failed (%s in force): %s", source.key, kept, error)
        if changed and not source.stop.is_set():
            self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            try:
                self._on_change()
            except Exception:
                log.exception("applying a discovery change failed; the next one retries")

    # --- expansion -------------------------------------------------------------------------

    def _expansion(
        self, template: Template, key: str, found: NomadGroup | AsgGroup, seen: set[str]
    ) -> FileLoad:
        """The pseudo-file of `found` expanded by `template` (`key`: `expansion_key`)."""
        seen.add(key)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached.found == found and cached.origin.same_as(template):
            return cached.load
        warnings: list[PolicyWarning] = []
        result = expand(template, found, warnings=warnings)
        if isinstance(result, Located):
            load = FileLoad(pseudo_file(key), [result], [], warnings=tuple(warnings))
        else:
            load = FileLoad(pseudo_file(key), [], result)
        with self._lock:
            self._cache[key] = _Expanded(template, found, load)
        return load

    def _imported(
        self, found: NomadScalingPolicy, group: tuple[str, str, str], seen: set[str]
    ) -> FileLoad:
        """Nomad's scaling policy `found` of `group`, translated."""
        namespace, job, group_name = group
        key = imported_key(group)
        seen.add(key)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached.origin == found:
            return cached.load
        name = policy_name(
            f"{job}.{group_name}" if namespace == "default" else f"{namespace}.{job}.{group_name}"
        )
        file = f"<{found}>"
        policy, problems = policy_from_nomad(found, name=name, file=file, load=load_data)
        located = [Located(policy, 1)] if policy is not None else []
        load = FileLoad(pseudo_file(key), located, problems)
        with self._lock:
            self._cache[key] = _Expanded(found, None, load)
        return load
