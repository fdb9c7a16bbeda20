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
target and template, so a change to one job re-expands one policy, not 10,000.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autoscaler.adapters.discovery.nomad import NomadDiscovery
from autoscaler.adapters.targets.nomad_settings import NomadSettings
from autoscaler.config.connections import Settings
from autoscaler.core.discovered import AsgGroup, NomadGroup, NomadScalingPolicy
from autoscaler.core.model import NomadTarget, Policy
from autoscaler.errors import AutoscalerError, Problem
from autoscaler.policy.conflicts import Located, files_first
from autoscaler.policy.expansion import expand
from autoscaler.policy.loader import FileLoad, LoadResult, load_data
from autoscaler.policy.nomad_autoscaler import blocks, policy_from_nomad, policy_name
from autoscaler.policy.templates import Template
from autoscaler.service.registry import DISCOVERED
from autoscaler.service.yielding import Yielding, stand_ins

if TYPE_CHECKING:
    from autoscaler.adapters.discovery.aws import AsgDiscovery

log = logging.getLogger("autoscaler.discovery")

NOMAD_JOBS = "Nomad jobs"
NOMAD_POLICIES = "Nomad scaling policies"


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


@dataclass
class _Source:
    """One watched source: how to read it, its last good result and its last failure."""

    key: str
    read: Callable[[int, float], tuple[Any, int]]  # (index, wait) -> (result, new index)
    blocking: bool
    value: Any = None  # the last good result; None until the first success
    error: str | None = None
    failing_since: datetime | None = None
    reads: int = 0  # reads that succeeded
    failures: int = 0  # reads that failed
    last_success: float | None = None  # epoch seconds of the last good read
    stop: threading.Event = field(default_factory=threading.Event)
    answered: threading.Event = field(default_factory=threading.Event)  # read once, or failed
    thread: threading.Thread | None = None


@dataclass(frozen=True)
class SourceHealth:
    """One watched source, for `/metrics`: how it reads and what it found last."""

    source: str  # "Nomad jobs", "Nomad scaling policies", "AWS Auto Scaling Groups (...)"
    up: bool  # its last read succeeded
    targets: int  # policies its last good result gave (opted-in targets), 0 before any
    reads: int
    failures: int
    last_success: float | None  # epoch seconds


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
        self._sources: dict[str, _Source] = {}
        self._cache: dict[str, _Expanded] = {}
        self._targets: dict[str, int] = {}  # source key -> policies its result gave
        # template key -> the cache keys of its expansions last given (`_carried`)
        self._given: dict[str, list[str]] = {}
        # sources stopped by the last call, and when (`_want`: asked again at once, they
        # start again with their last result)
        self._dropped: dict[str, tuple[_Source, float]] = {}
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

        for template, known_as in zip(templates, _template_keys(templates), strict=True):
            key = _source_key(template)
            made = given[known_as] = []
            if values.get(key) is None and known_as in self._given:
                for cached in self._carried(known_as, made, seen):
                    add(key, cached.origin, cached.found, cached.load)
                continue
            for target in values.get(key) or ():
                if template.matches(target):
                    expansion = _expansion_key(target, known_as)
                    made.append(expansion)
                    add(key, template, target, self._expansion(template, expansion, target, seen))
        for policy in values.get(NOMAD_POLICIES) or ():
            group = _group_of(policy)
            if group is None:
                continue
            imported = self._imported(policy, group, seen)
            if group in scaled:
                loads.append(_yielding(policy, group, *scaled[group], imported))
                continue
            loads.append(imported)
            targets[NOMAD_POLICIES] += 1
        with self._lock:
            for key in [k for k in self._cache if k not in seen]:
                del self._cache[key]
            self._targets = targets
            self._given = given
            problems = [_problem(s, targets.get(s.key, 0)) for s in failing]
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
        """Stop every watcher (they end within their current request)."""
        with self._lock:
            self._closed = True
            sources, self._sources = list(self._sources.values()), {}
        for source in sources:
            source.stop.set()

    # --- sources ---------------------------------------------------------------------------

    def _want(self, templates: Sequence[Template]) -> None:
        """Start the sources `templates` need, stop the others."""
        wanted: dict[str, tuple[Callable[[int, float], tuple[Any, int]], bool]] = {}
        for template in templates:
            key = _source_key(template)
            if template.kind == "nomad":
                wanted[key] = (self._read_groups, True)
            else:
                wanted[key] = (self._asg_reader(template), False)
        if self._config.nomad_scaling_policies:
            wanted[NOMAD_POLICIES] = (self._read_policies, True)
        started: list[_Source] = []
        now = time.monotonic()
        with self._lock:
            if self._closed:
                return
            dropped, self._dropped = self._dropped, {}
            for key in [k for k in self._sources if k not in wanted]:
                self._dropped[key] = (self._sources.pop(key), now)
                self._dropped[key][0].stop.set()
            for key, (read, blocking) in wanted.items():
                if key not in self._sources:
                    source = self._sources[key] = _Source(key=key, read=read, blocking=blocking)
                    _revive(source, dropped.get(key), now)
                    started.append(source)
        if self._watch:
            for source in started:
                source.thread = threading.Thread(
                    target=self._run, args=(source,), name=f"discover {source.key}", daemon=True
                )
                source.thread.start()

    def _read_groups(self, index: int, wait: float) -> tuple[Any, int]:
        listing = self._nomad_reader().groups(index=index, wait=wait)
        return listing.items, listing.index

    def _read_policies(self, index: int, wait: float) -> tuple[Any, int]:
        listing = self._nomad_reader().scaling_policies(index=index, wait=wait)
        return listing.items, listing.index

    def _nomad_reader(self) -> NomadDiscovery:
        with self._lock:
            if self._nomad is None:
                self._nomad = self._nomad_factory()
            return self._nomad

    def _asg_reader(self, template: Template) -> Callable[[int, float], tuple[Any, int]]:
        region, tags = template.region, dict(template.match)

        def read(_index: int, _wait: float) -> tuple[Any, int]:
            with self._lock:
                reader = self._aws.get(region)
                if reader is None:
                    reader = self._aws[region] = self._aws_factory(region)
            return tuple(reader.groups(tags)), 0

        return read

    def _run(self, source: _Source) -> None:
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
                index = new_index if new_index >= index else 0  # Nomad's index went back
                pause = config.min_gap if source.blocking else config.poll
                if source.blocking and index <= 0:
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

    def _read(self, source: _Source, *, index: int) -> tuple[bool, int]:
        """Read `source` once; record the result or the failure. (succeeded, new index)"""
        wait = self._config.wait if source.blocking and index > 0 and self._watch else 0.0
        try:
            value, new_index = source.read(index, wait)
        except AutoscalerError as exc:
            self._failed(source, str(exc))
            return False, index
        except Exception as exc:  # a bug must not end the watcher: fail and retry
            log.exception("discovery from %s failed unexpectedly", source.key)
            self._failed(source, f"{type(exc).__name__}: {exc}")
            return False, index
        with self._lock:
            changed = source.error is not None or value != source.value
            if source.error is not None:
                log.info("discovery from %s works again", source.key)
            source.value, source.error, source.failing_since = value, None, None
            source.reads += 1
            source.last_success = time.time()
        source.answered.set()
        if changed and not source.stop.is_set():
            self._changed()
        return True, new_index

    def _failed(self, source: _Source, error: str) -> None:
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
        """The pseudo-file of `found` expanded by `template` (`key`: `_expansion_key`)."""
        seen.add(key)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and cached.found == found and cached.origin.same_as(template):
            return cached.load
        result = expand(template, found)
        if isinstance(result, Located):
            load = FileLoad(_pseudo_file(key), [result], [])
        else:
            load = FileLoad(_pseudo_file(key), [], result)
        with self._lock:
            self._cache[key] = _Expanded(template, found, load)
        return load

    def _imported(
        self, found: NomadScalingPolicy, group: tuple[str, str, str], seen: set[str]
    ) -> FileLoad:
        """Nomad's scaling policy `found` of `group`, translated."""
        namespace, job, group_name = group
        key = _imported_key(group)
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
        load = FileLoad(_pseudo_file(key), located, problems)
        with self._lock:
            self._cache[key] = _Expanded(found, None, load)
        return load


REVIVE_WITHIN = 5.0  # seconds: a source stopped this recently starts again with its result


def _revive(source: _Source, dropped: tuple[_Source, float] | None, now: float) -> None:
    """Start `source` with the last result of the one of its key stopped by the last call,
    if that was less than `REVIVE_WITHIN` ago. The registry asks again at once, with a
    file's last good templates, when it holds that file back after asking with its new
    ones: the source the new templates stopped must not come back empty, dropping its
    targets until it answers (or for as long as it fails)."""
    if dropped is None or dropped[0].value is None or now - dropped[1] >= REVIVE_WITHIN:
        return
    old = dropped[0]
    source.value, source.reads, source.last_success = old.value, old.reads, old.last_success
    source.answered.set()


def _problem(source: _Source, targets: int) -> Problem:
    """The problem of a failing `source` whose last good result gave `targets` policies
    (the opted-in targets, not every group or ASG it listed)."""
    since = source.failing_since.isoformat(timespec="seconds") if source.failing_since else "?"
    if source.value is None and targets:
        them = "target its templates found before they changed stays"
        if targets != 1:
            them = "targets its templates found before they changed stay"
        kept = f"nothing discovered yet from it; the {targets} {them} in force"
    elif source.value is None:
        kept = "nothing discovered yet from it"
    else:
        them = "target found last stays" if targets == 1 else "targets found last stay"
        kept = f"the {targets} {them} in force"
    message = f"failing since {since}: {source.error}; {kept}"
    return Problem(f"<discovery: {source.key}>", 1, SOURCE_FIELD, message)


def _group_of(found: NomadScalingPolicy) -> tuple[str, str, str] | None:
    """(namespace, job, group) of a Nomad scaling policy with checks; None for a
    bounds-only block (for `nomad job scale`, no policy) or one without a group."""
    job, group = found.target.get("Job"), found.target.get("Group")
    if not job or not group or not blocks(found.policy.get("check")):
        return None
    return found.target.get("Namespace") or "default", job, group


def _imported_key(group: tuple[str, str, str]) -> str:
    namespace, job, name = group
    return f"{DISCOVERED}nomad/-/{namespace}/{job}/{name}@nomad-scaling-policy"


def _yielding(
    found: NomadScalingPolicy,
    group: tuple[str, str, str],
    template: Template,
    name: str | None,
    imported: FileLoad,
) -> Yielding:
    """Nomad's scaling policy `found` standing aside, as `template` scales its group: a
    pseudo-file of its own with the problem saying so (the policy's own one is gone, so a
    version of it running is stopped, not kept as a rejected file's would be). Should the
    template's policy for the group (`name`, None when its expansion is invalid) be
    refused, `imported` is put back, with a note."""
    namespace, job, group_name = group
    where = f"template {template.pattern!r} ({template.source.file}:{template.name_line})"
    problem = Problem(
        f"<{found}>",
        1,
        "target",
        f"the group is opted in to {where}, which scales it (templates come before Nomad's "
        "scaling policies): this scaling block is not run; remove the group's opt-in meta "
        "or its scaling block",
    )
    note = Problem(
        f"<{found}>",
        1,
        "target",
        f"the group is opted in to {where}, but its policy for the group"
        f"{f' ({name!r})' if name else ''} is refused (see that template's problems for "
        f"job {job!r} group {group_name!r}): this scaling block runs instead; fix those, or "
        "remove the group's opt-in meta",
    )
    return Yielding(
        f"{_imported_key(group)}, yielding",
        [],
        [problem],
        target=NomadTarget(job=job, group=group_name, namespace=namespace),
        instead=imported,
        note=note,
        by=name,
    )


def from_settings(
    settings: Settings,
    *,
    poll: float = 30.0,
    on_change: Callable[[], None] | None = None,
    watch: bool = True,
) -> Discovery:
    """Discovery reading the Nomad of `settings` and AWS from its environment."""
    config = DiscoveryConfig(nomad_scaling_policies=settings.nomad_scaling_policies, poll=poll)
    return Discovery(
        config,
        nomad=lambda: NomadDiscovery(settings.nomad),
        aws=_asg_discovery,
        on_change=on_change,
        watch=watch,
    )


def discovery_for(
    *, nomad: NomadSettings | None = None, nomad_scaling_policies: bool = False
) -> Discovery:
    """Discovery of `nomad` (default: the standard NOMAD_* environment) and AWS from its
    environment, read once."""
    nomad = NomadSettings.from_env() if nomad is None else nomad
    config = DiscoveryConfig(nomad_scaling_policies=nomad_scaling_policies)
    return Discovery(
        config,
        nomad=lambda: NomadDiscovery(nomad),
        aws=_asg_discovery,
        watch=False,
    )


def _asg_discovery(region: str | None) -> AsgDiscovery:
    # boto3 costs ~0.3 s to import: only templates of Auto Scaling Groups pay for it.
    from autoscaler.adapters.discovery.aws import AsgDiscovery  # noqa: PLC0415

    return AsgDiscovery(region)


def _expansion_key(found: NomadGroup | AsgGroup, known_as: str) -> str:
    """The key of `found` expanded by the template known as `known_as`."""
    return f"{DISCOVERED}{found.key}@{known_as}"


def _pseudo_file(key: str) -> str:
    """The file name of a discovered target's pseudo-file: its key, spelt as a `Path` of it
    would be (the registry's key for it), kept as a string (a `Path` holds its parts too):
    the key itself when it is spelt so (the cache holds it already)."""
    spelt = str(Path(key))
    return key if spelt == key else spelt


def _template_keys(templates: Sequence[Template]) -> list[str]:
    """Each template's key in its targets' pseudo-files: its file and name pattern, and its
    rank among the file's templates of that pattern when there are several.

    Not its line: a comment added above it would make each of its targets a new one, and a
    target whose new policy is rejected would lose its last good one instead of keeping it.
    (A changed pattern gives other policy names: those are new policies anyway.)"""
    keys: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    for template in templates:
        file, pattern = template.source.file, template.pattern
        rank = seen[file, pattern] = seen.get((file, pattern), -1) + 1
        keys.append(f"{file}#{pattern}" + (f"#{rank}" if rank else ""))
    return keys


def _source_key(template: Template) -> str:
    if template.kind == "nomad":
        return NOMAD_JOBS
    tags = ", ".join(f"{k}={v}" for k, v in sorted(template.match.items()))
    return f"AWS Auto Scaling Groups ({template.region or 'default region'}; {tags})"


SOURCE_FIELD = "(source)"  # the field of a failing source's problem (`_problem`)


def is_source_failure(problem: Problem) -> bool:
    """Whether `problem` says a discovery source could not be read (Nomad or AWS down, no
    credentials), rather than that a policy is invalid: `plan` and `run --once` then say
    their targets could not be evaluated (exit 3), not that a file is invalid (exit 1)."""
    return problem.field == SOURCE_FIELD and problem.file.startswith("<discovery: ")


def split_source_failures(found: Sequence[Problem]) -> tuple[list[Problem], list[Problem]]:
    """`found` as (policy problems, failing sources' problems): see `is_source_failure`."""
    policy_problems: list[Problem] = []
    failures: list[Problem] = []
    for problem in found:
        (failures if is_source_failure(problem) else policy_problems).append(problem)
    return policy_problems, failures


def with_discovered(result: LoadResult, discovery: Discovery) -> tuple[list[Policy], list[Problem]]:
    """The policies of `result` and those discovery gives its templates (read once now),
    with one policy per name and per target: files first, then discovered in order (a
    policy that stood aside for a template's that is refused put back: `service.yielding`)."""
    discovery.read_once(result.templates)
    loads, failing = discovery(result.templates)

    def newcomers(loads: list[FileLoad], problems: list[Problem]) -> Iterator[Located]:
        for load in loads:
            problems.extend(load.problems)
            yield from load.policies

    notes: list[Problem] = []
    while True:
        problems = list(failing)
        policies = files_first(result.policies, newcomers(loads, problems), problems)
        back = stand_ins(loads, policies)
        if back is None:
            return policies, problems + notes
        loads = back[0]
        notes += [note for _, note in back[1]]
