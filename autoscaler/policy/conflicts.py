"""Rules between policies of different files: unique names, one enabled policy per target.

Two policies with one name cannot both be addressed (API, state, metrics); two enabled
policies on one target would undo each other's changes (8, 5, 8, 5, ...). `Claims` records
the names and targets already taken and says, for a newcomer, which rule it breaks and
where the policy it collides with is defined. Both `load_paths` (first in path order wins)
and the service's registry (the policy already running wins) use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from autoscaler.core import model
from autoscaler.errors import Problem


@dataclass(frozen=True, slots=True)
class Located:
    """A validated policy and the line of its `name` (where conflicts are reported)."""

    policy: model.Policy
    name_line: int

    @property
    def where(self) -> str:
        return f"{self.policy.source.file}:{self.name_line}"


def same_target(a: model.TargetRef, b: model.TargetRef) -> bool:
    """Whether two targets are one object; a target without a region matches any region.

    An empty region (refused in files, but possible in a target built elsewhere) is the
    default region where the target is scaled: it matches any region too."""
    if a.region and b.region and a.region != b.region:
        return False
    return a.identity == b.identity


class Claims:
    """Names and (enabled) targets taken so far; `conflict` checks a newcomer against them."""

    def __init__(self, *, targets: bool = True) -> None:
        """`targets=False` checks names only."""
        self._check_targets = targets
        self._names: dict[str, Located] = {}
        self._targets: dict[tuple[str, ...], list[Located]] = {}

    def conflict(self, item: Located) -> Problem | None:
        """Why `item` cannot join the policies claimed so far, or None when it can."""
        found = self.rival(item)
        if found is None:
            return None
        rule, rival = found
        if rule == "name":
            return Problem(
                item.policy.source.file,
                item.name_line,
                "name",
                f"duplicate policy name '{item.policy.name}': also defined at {rival.where}"
                f"{_for_targets(item, rival)}; rename one (names are unique across all files)",
            )
        return Problem(
            item.policy.source.file,
            item.name_line,
            "target",
            f"{item.policy.target} is already scaled by policy '{rival.policy.name}' "
            f"({rival.where}); two policies on one target would undo each other: "
            "put both checks in one policy (the highest count wins), or disable one",
        )

    def rival(self, item: Located) -> tuple[str, Located] | None:
        """The rule `item` breaks ("name" or "target") and the claimed policy it collides
        with, or None; for callers that word the conflict their own way (`convert`)."""
        first = self._names.get(item.policy.name)
        if first is not None:
            return "name", first
        if not (self._check_targets and item.policy.enabled):
            return None
        rival = self.holder(item.policy.target)
        return None if rival is None else ("target", rival)

    def holder(self, target: model.TargetRef) -> Located | None:
        """The enabled policy claimed that scales `target`, or None."""
        for rival in self._targets.get(target.identity, []):
            if same_target(rival.policy.target, target):
                return rival
        return None

    def admit(self, items: Iterable[Located], problems: list[Problem]) -> list[model.Policy]:
        """The policies of `items` that can join, each claimed in turn; a conflict of the
        others is added to `problems`."""
        admitted: list[model.Policy] = []
        for item in items:
            conflict = self.conflict(item)
            if conflict is not None:
                problems.append(conflict)
                continue
            self.claim(item)
            admitted.append(item.policy)
        return admitted

    def claim(self, item: Located) -> None:
        """Take `item`'s name (and its target, when enabled); check `conflict` first."""
        self._names[item.policy.name] = item
        if self._check_targets and item.policy.enabled:
            self._targets.setdefault(item.policy.target.identity, []).append(item)


def files_first(
    policies: Iterable[model.Policy], newcomers: Iterable[Located], problems: list[Problem]
) -> list[model.Policy]:
    """`policies` (read from files, which win), then each newcomer that can join (a
    discovered target); a newcomer's conflict is added to `problems` instead."""
    claims = Claims()
    kept = list(policies)
    for policy in kept:
        claims.claim(Located(policy, policy.source.line))
    return kept + claims.admit(newcomers, problems)


def _for_targets(item: Located, rival: Located) -> str:
    """For two policies of one name from one place (a template expanded for two targets),
    which targets they are, and the placeholder that tells them apart when it is the
    namespace (the same job in two namespaces): `{namespace}`, in the name and in the
    grouped checks' `group_by` (see `one_series.one_series_each`)."""
    if item.where != rival.where or item.policy.target == rival.policy.target:
        return ""
    shown = f" (for {rival.policy.target}, this one for {item.policy.target}"
    a, b = item.policy.target, rival.policy.target
    same_group = (
        isinstance(a, model.NomadTarget)
        and isinstance(b, model.NomadTarget)
        and (a.job, a.group) == (b.job, b.group)
        and a.namespace != b.namespace
    )
    if same_group:
        # Named apart, both would still read one series of a check grouped by job alone.
        shown += (
            ": add {namespace} to the template's name, and namespace to its grouped checks' "
            'group_by (namespace: "{namespace}") and their queries\' by (...)'
        )
    return shown + ")"
