"""The pseudo-files discovery gives the registry: one per discovered target and template,
or per Nomad scaling policy, named by a key that stays the same while they do.

A template's key in its targets' pseudo-files is its file and name pattern, not its line
(`template_keys`), so that a comment added above it makes no target a new one. Nomad's
scaling policy of a group an enabled template scales stands aside (`yielding`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from autoscaler.core.discovered import AsgGroup, NomadGroup, NomadScalingPolicy
from autoscaler.core.model import NomadTarget
from autoscaler.errors import Problem
from autoscaler.policy.loader import FileLoad
from autoscaler.policy.nomad_autoscaler import blocks
from autoscaler.policy.templates import Template
from autoscaler.service.registry import DISCOVERED
from autoscaler.service.yielding import Yielding


def group_of(found: NomadScalingPolicy) -> tuple[str, str, str] | None:
    """(namespace, job, group) of a Nomad scaling policy with checks; None for a
    bounds-only block (for `nomad job scale`, no policy) or one without a group."""
    job, group = found.target.get("Job"), found.target.get("Group")
    if not job or not group or not blocks(found.policy.get("check")):
        return None
    return found.target.get("Namespace") or "default", job, group


def imported_key(group: tuple[str, str, str]) -> str:
    namespace, job, name = group
    return f"{DISCOVERED}nomad/-/{namespace}/{job}/{name}@nomad-scaling-policy"


def yielding(
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
        f"{imported_key(group)}, yielding",
        [],
        [problem],
        target=NomadTarget(job=job, group=group_name, namespace=namespace),
        instead=imported,
        note=note,
        by=name,
    )


def expansion_key(found: NomadGroup | AsgGroup, known_as: str) -> str:
    """The key of `found` expanded by the template known as `known_as`."""
    return f"{DISCOVERED}{found.key}@{known_as}"


def pseudo_file(key: str) -> str:
    """The file name of a discovered target's pseudo-file: its key, spelt as a `Path` of it
    would be (the registry's key for it), kept as a string (a `Path` holds its parts too):
    the key itself when it is spelt so (the cache holds it already)."""
    spelt = str(Path(key))
    return key if spelt == key else spelt


def template_keys(templates: Sequence[Template]) -> list[str]:
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
