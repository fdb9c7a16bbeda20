"""Nomad Autoscaler's HCL -> the translations of `nomad_autoscaler`, for `autoscaler convert`.

Two kinds of files hold policies: Nomad Autoscaler policy files (`scaling "name" {
policy { ... } }`, targets in the policy) and Nomad job files (a group's `scaling` block,
whose target is that group). python-hcl2 parses both (strings unquoted, heredocs joined);
its blocks have the shapes `nomad_autoscaler.blocks` reads.

Strings are HCL templates: python-hcl2 keeps them as written. Nomad evaluates them when the
job is submitted (`${var.job}`, `%{ if ... }`), which convert cannot do: a string with an
interpolation or directive is refused, naming where it is, rather than carried literally
(a query with `${var.job}` in it matches nothing). Their escapes, `$${` and `%%{`, are
undone as HCL does (a literal `${` and `%{`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autoscaler.policy.nomad_autoscaler import Translation, blocks, policy_name, translate

__all__ = ["Converted", "convert_hcl"]

# HCL's template sequences, leftmost first: an escape (`$${`, `%%{`) or an interpolation or
# directive (`${`, `%{`). `$$${x}` is a `$`, then the escape: a literal `$${x}`, as in HCL.
_TEMPLATE = re.compile(r"\$\$\{|%%\{|\$\{|%\{")
# A number python-hcl2 could not keep as one: it writes `1e3` and `-1e3` as `${1e3}`.
_NUMBER = re.compile(r"\$\{\s*(-?\s*[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)\s*\}")


@dataclass
class Converted:
    """One policy converted from HCL: our data, and where it came from."""

    where: str  # e.g. scaling "web"  or  job "api" group "web"
    translation: Translation
    # A job's group: the name discovery gives its policy (`JOB.GROUP`), taken when its
    # own (`JOB-GROUP`) is that of another policy of the file.
    alias: str | None = None


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


def _literal(value: Any, path: str, problems: list[str]) -> Any:
    """`value` (python-hcl2's) with each string's template escapes undone, and numbers
    python-hcl2 wrote as templates (`${1e3}`) as numbers; a string holding another
    interpolation or a directive is kept as it is, with a line in `problems` naming its
    place (`path`: where `value` is, in HCL terms, e.g. `policy check "rps" query`)."""
    if isinstance(value, str):
        number = _NUMBER.fullmatch(value)
        if number is not None:  # HCL's number literal (a template of it alone is that number)
            return float(number.group(1).replace(" ", ""))
        return _text(value, path, problems)
    if isinstance(value, list):
        return [_literal(item, path, problems) for item in value]
    if not isinstance(value, dict):
        return value
    # In a list, `{label: {body}}` is a labelled block: the label is shown quoted.
    labelled = not value.get("__is_block__") and len(value) == 1
    out: dict[str, Any] = {}
    for key, item in value.items():
        if labelled and isinstance(item, dict) and item.get("__is_block__"):
            where = f'{path} "{key}"'
        else:
            where = f"{path} {key}".strip()
        out[key] = _literal(item, where, problems)
    return out


def _text(text: str, path: str, problems: list[str]) -> str:
    """`text` with `$${` and `%%{` as `${` and `%{`, or as it is (with a problem) when it
    holds an HCL interpolation or directive."""
    parts: list[str] = []
    at = 0
    for found in _TEMPLATE.finditer(text):
        sequence = found.group()
        if sequence not in ("$${", "%%{"):
            end = text.find("}", found.end())
            shown = text[found.start() : end + 1] if end >= 0 else sequence
            kind = "interpolation" if sequence == "${" else "directive"
            problems.append(
                f"{path or 'a value'} {text!r} holds the HCL {kind} {shown}: convert does not "
                "evaluate HCL expressions (Nomad does, when the job is submitted): write the "
                f"value it stands for, or {sequence[0]}{sequence} for a literal {sequence}"
            )
            return text
        parts.append(text[at : found.start()] + sequence[1:])
        at = found.end()
    return "".join(parts) + text[at:]


def _file_policy(label: str | None, raw: Mapping[str, Any]) -> Converted:
    name = label or "policy"
    problems: list[str] = []
    body = _literal(raw, "", problems)
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
    translation.errors.extend(problems)
    # Both are run alike there, on a count: the target decides what is scaled.
    if kind not in ("horizontal", "cluster"):
        translation.errors.append(
            f"type {kind!r} is not carried: only policies that scale a count (horizontal, "
            "cluster); vertical scaling of task resources is not done here"
        )
    return Converted(f'scaling "{name}"', translation)


def _job_policies(job: str, body: Mapping[str, Any]) -> list[Converted]:
    settings: list[str] = []  # the job's settings used here that cannot be read
    namespace = str(_literal(body.get("namespace", "default"), "namespace", settings))
    group_target = {"Job": job, "Namespace": namespace}
    if body.get("region") is not None:  # the job runs there: a same-named job elsewhere is not it
        group_target["Region"] = str(_literal(body["region"], "region", settings))
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
            if not blocks(_policy_body(scaling).get("check")):
                continue  # bounds for `nomad job scale` only: no autoscaling
            problems = list(settings)
            block = _literal(scaling, "scaling", problems)
            count = _literal(group.get("count", 1), "count", problems)
            enabled, problem = _enabled(block)
            translation = translate(
                f"{prefix}{job}-{group_name}",
                enabled=enabled,
                min_count=block.get("min", count),
                max_count=block.get("max"),
                policy=_policy_body(block),
                target={**group_target, "Group": group_name},
            )
            if problem is not None:
                translation.errors.append(problem)
            translation.errors.extend(problems)
            alias = (
                f"{job}.{group_name}"
                if namespace == "default"
                else f"{namespace}.{job}.{group_name}"
            )
            converted.append(Converted(where, translation, policy_name(alias)))
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
