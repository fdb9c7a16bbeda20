"""A watched discovery source: what is known of it (its last good result and its last
failure), its health for `/metrics`, and its failure as a problem.

`Discovery` keeps one `Source` per source the templates in force need, keyed by
`source_key` (Nomad's job list, Nomad's scaling policies, one AWS listing per region and
tag set). A failing source's problem is told apart from an invalid policy's
(`is_source_failure`): `plan` and `run --once` exit 3 for it, not 1. So is the problem of a
source read but for some jobs (or scaling policies) Nomad refused to let the token read
(`refused_note`, `is_partly_read`): their targets are unknown too; and of a list of every
namespace that left out the namespaces where the token may not list (`unlisted_note`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from autoscaler.adapters.discovery.nomad import Refused
from autoscaler.errors import Problem
from autoscaler.policy.templates import Template

NOMAD_JOBS = "Nomad jobs"
NOMAD_POLICIES = "Nomad scaling policies"
# A read: (index, wait) -> (result, new index, what it left out and why, or None)
Read = Callable[[int, float], tuple[Any, int, str | None]]
SHOWN_REFUSED = 10  # jobs (policies) named in a refusal's problem; the others are counted
PARTLY_READ = "partly read: "  # how a `note_problem` begins


@dataclass
class Source:
    """One watched source: how to read it, its last good result and its last failure."""

    key: str
    read: Read
    blocking: bool
    scope: tuple[str, ...] = ()  # Nomad's job list: the namespaces read ("*": every one)
    value: Any = None  # the last good result; None until the first success
    note: str | None = None  # what the last good result left out, and why
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


REVIVE_WITHIN = 5.0  # seconds: a source stopped this recently starts again with its result


def revive(source: Source, dropped: tuple[Source, float] | None, now: float) -> None:
    """Start `source` with the last result of the one of its key stopped by the last call,
    if that was less than `REVIVE_WITHIN` ago. The registry asks again at once, with a
    file's last good templates, when it holds that file back after asking with its new
    ones: the source the new templates stopped must not come back empty, dropping its
    targets until it answers (or for as long as it fails)."""
    if dropped is None or dropped[0].value is None or now - dropped[1] >= REVIVE_WITHIN:
        return
    old = dropped[0]
    if old.scope != source.scope:
        return
    source.value, source.reads, source.last_success = old.value, old.reads, old.last_success
    source.note = old.note
    source.answered.set()


def source_problem(source: Source, targets: int) -> Problem:
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


def note_problem(source: Source) -> Problem:
    """The problem of a `source` whose last good result left something out (`note`)."""
    return Problem(f"<discovery: {source.key}>", 1, SOURCE_FIELD, PARTLY_READ + str(source.note))


def refused_note(refused: Sequence[Refused]) -> str | None:
    """What a job (or scaling policy) listing left out because Nomad refused to let the
    token read some of its jobs (policies) (403), and what to do: None when it left nothing
    out. A policy is named by its target, NAMESPACE/JOB/GROUP."""
    if not refused:
        return None
    where = sorted({r.namespace for r in refused})
    namespaces = ("namespace " if len(where) == 1 else "namespaces ") + ", ".join(map(repr, where))
    if refused[0].group is None:
        what = "job" if len(refused) == 1 else "jobs"
        capability, kept = "read-job", "its groups read last stay in force"
        instead = ", or set the templates' for_each.nomad.namespace to the namespaces they scale in"
    else:
        what = "scaling policy" if len(refused) == 1 else "scaling policies"
        capability, kept = "read-scaling-policy", "its version read last stays in force"
        instead = ""  # no template says where: policies are read in every namespace
    named = ", ".join(
        "/".join(n for n in (r.namespace, r.job, r.group) if n is not None)
        + (f" ({kept})" if r.kept else "")
        for r in refused[:SHOWN_REFUSED]
    )
    if len(refused) > SHOWN_REFUSED:
        named += f" and {len(refused) - SHOWN_REFUSED} more"
    return (
        f"Nomad refused to let the token read {len(refused)} {what} (the token needs the "
        f"'{capability}' capability in {namespaces}), left out unless read before: "
        f"{named}; give the token '{capability}' there{instead}"
    )


def unlisted_note(namespaces: Sequence[str], *, policies: bool = False) -> str | None:
    """What a list of every namespace left out because the token may not list jobs (or
    scaling policies) in `namespaces`, though it sees them (Nomad says nothing of those):
    None when it left nothing out."""
    if not namespaces:
        return None
    capability = "list-scaling-policies" if policies else "list-jobs"
    what = "scaling policies" if policies else "jobs"
    if len(namespaces) == 1:
        where, whose = f"namespace {namespaces[0]!r}", "its"
    else:
        where, whose = "namespaces " + ", ".join(map(repr, namespaces)), "their"
    instead = (
        ""
        if policies
        else (", or set the templates' for_each.nomad.namespace to the namespaces they scale in")
    )
    return (
        f"token lacks {capability} in {where}: {whose} {what} are not discovered (Nomad "
        f"leaves them out of a list of every namespace); give the token '{capability}' "
        f"there{instead}"
    )


def joined_notes(*notes: str | None) -> str | None:
    """The notes that say something, as one; None when none does."""
    said = [note for note in notes if note]
    return "; ".join(said) if said else None


def source_key(template: Template) -> str:
    if template.kind == "nomad":
        return NOMAD_JOBS
    tags = ", ".join(f"{k}={v}" for k, v in sorted(template.match.items()))
    return f"AWS Auto Scaling Groups ({template.region or 'default region'}; {tags})"


SOURCE_FIELD = "(source)"  # the field of a failing source's problem (`source_problem`)


def is_source_failure(problem: Problem) -> bool:
    """Whether `problem` says a discovery source could not be read (Nomad or AWS down, no
    credentials), rather than that a policy is invalid: `plan` and `run --once` then say
    their targets could not be evaluated (exit 3), not that a file is invalid (exit 1)."""
    return problem.field == SOURCE_FIELD and problem.file.startswith("<discovery: ")


def is_partly_read(problem: Problem) -> bool:
    """Whether `problem` says a discovery source was read but for some jobs or policies
    (`note_problem`): discovery logs it itself, once per change, as a warning."""
    return is_source_failure(problem) and problem.message.startswith(PARTLY_READ)


def split_source_failures(found: Sequence[Problem]) -> tuple[list[Problem], list[Problem]]:
    """`found` as (policy problems, failing sources' problems): see `is_source_failure`."""
    policy_problems: list[Problem] = []
    failures: list[Problem] = []
    for problem in found:
        (failures if is_source_failure(problem) else policy_problems).append(problem)
    return policy_problems, failures
