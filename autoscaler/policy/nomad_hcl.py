"""Nomad Autoscaler's HCL -> the translations of `nomad_autoscaler`, for `autoscaler convert`.

Two kinds of files hold policies: Nomad Autoscaler policy files (`scaling "name" {
policy { ... } }`, targets in the policy) and Nomad job files (a group's `scaling` block,
whose target is that group). python-hcl2 parses both (strings unquoted, heredocs joined);
its blocks have the shapes `nomad_autoscaler.blocks` reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autoscaler.policy.nomad_autoscaler import Translation, blocks, translate

__all__ = ["Converted", "convert_hcl"]


@dataclass
class Converted:
    """One policy converted from HCL: our data, and where it came from."""

    where: str  # e.g. scaling "web"  or  job "api" group "web"
    translation: Translation


def convert_hcl(text: str) -> list[Converted]:
    """Every scaling policy of a Nomad Autoscaler policy file or a Nomad job file.

    Raises ValueError when the text is not HCL, or holds no scaling policy.
    """
    import hcl2  # noqa: PLC0415  # lark grammar: only `convert` pays for it
    from hcl2.utils import SerializationOptions  # noqa: PLC0415

    options = SerializationOptions(
        with_comments=False, strip_string_quotes=True, preserve_heredocs=False
    )
    try:
        document = hcl2.loads(text, serialization_options=options)
    except Exception as exc:  # lark's errors, and anything the transformer raises
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"not valid HCL: {first}") from None
    converted: list[Converted] = []
    for label, body in blocks(document.get("scaling")):
        converted.append(_file_policy(label, body))
    for job_label, job in blocks(document.get("job")):
        converted.extend(_job_policies(job_label or "job", job))
    if not converted:
        raise ValueError(
            'no scaling policy found: expected `scaling "name" {...}` blocks '
            "(a policy file) or a job with group `scaling` blocks"
        )
    return converted


def _policy_body(body: Mapping[str, Any]) -> dict[str, Any]:
    found = blocks(body.get("policy"))
    return dict(found[0][1]) if found else {}


def _enabled(block: Mapping[str, Any]) -> tuple[bool, str | None]:
    """A block's `enabled` as HCL reads it, or False and why it cannot be read.

    HCL converts the strings "true" and "false" to booleans, and python-hcl2 keeps them as
    strings: `bool("false")` would switch on a policy its author switched off.
    """
    value = block.get("enabled", True)
    if isinstance(value, bool):
        return value, None
    if value in ("true", "false"):
        return value == "true", None
    return False, f"enabled = {value!r} is not a boolean: write true or false"


def _file_policy(label: str | None, body: Mapping[str, Any]) -> Converted:
    name = label or "policy"
    kind = str(body.get("type", "cluster"))  # the Nomad Autoscaler's default for file policies
    enabled, problem = _enabled(body)
    translation = translate(
        name,
        enabled=enabled,
        min_count=body.get("min"),
        max_count=body.get("max"),
        policy=_policy_body(body),
    )
    if problem is not None:
        translation.errors.append(problem)
    # Both are run alike there, on a count: the target decides what is scaled.
    if kind not in ("horizontal", "cluster"):
        translation.errors.append(
            f"type {kind!r} is not carried: only policies that scale a count (horizontal, "
            "cluster); vertical scaling of task resources is not done here"
        )
    return Converted(f'scaling "{name}"', translation)


def _job_policies(job: str, body: Mapping[str, Any]) -> list[Converted]:
    namespace = str(body.get("namespace", "default"))
    group_target = {"Job": job, "Namespace": namespace}
    if body.get("region") is not None:  # the job runs there: a same-named job elsewhere is not it
        group_target["Region"] = str(body["region"])
    # As discovery names them (NAMESPACE.JOB.GROUP outside default), so that one job in
    # two namespaces makes two policies, not one name twice.
    prefix = "" if namespace == "default" else f"{namespace}-"
    converted: list[Converted] = []
    for group_label, group in blocks(body.get("group")):
        group_name = group_label or "group"
        for scaling_label, scaling in blocks(group.get("scaling")):
            where = f'job "{job}" group "{group_name}"'
            if scaling_label is not None:  # task-level `scaling "cpu"` is vertical
                continue
            policy = _policy_body(scaling)
            if not blocks(policy.get("check")):
                continue  # bounds for `nomad job scale` only: no autoscaling
            enabled, problem = _enabled(scaling)
            translation = translate(
                f"{prefix}{job}-{group_name}",
                enabled=enabled,
                min_count=scaling.get("min", group.get("count", 1)),
                max_count=scaling.get("max"),
                policy=policy,
                target={**group_target, "Group": group_name},
            )
            if problem is not None:
                translation.errors.append(problem)
            converted.append(Converted(where, translation))
        for task_label, task in blocks(group.get("task")):
            for scaling_label, _ in blocks(task.get("scaling")):
                converted.append(
                    Converted(
                        f'job "{job}" group "{group_name}" task "{task_label}"',
                        Translation(
                            data={},
                            errors=[
                                f'scaling "{scaling_label}" (vertical, Nomad Enterprise) is '
                                "not carried: only horizontal scaling of task groups"
                            ],
                        ),
                    )
                )
    return converted
