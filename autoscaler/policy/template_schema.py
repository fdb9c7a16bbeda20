"""The JSON Schema of policy templates, derived from the policy file's schema.

Editors validate templates with the same schema file as policies (`autoscaler schema`):
a template is a policy with `for_each`, `group_by` on its checks and an optional target,
so its schema is the policy's, extended, never maintained by hand.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from autoscaler.policy.schema import PolicyModel
from autoscaler.policy.templates import ForEachModel

__all__ = ["template_schema"]


def template_schema(policy_schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a policy file with templates, from the policy file's schema.

    A template is a policy with `for_each` (required), `group_by` on its checks, and an
    optional `target`. The policy's `$defs` are reused; the template's are added beside.
    """
    schema = copy.deepcopy(policy_schema)
    defs = schema["$defs"]
    policy_name = _policy_def(defs)
    for_each = ForEachModel.model_json_schema(ref_template="#/$defs/{model}")
    defs.update(for_each.pop("$defs", {}))
    defs["ForEachModel"] = {
        **for_each,
        "oneOf": [{"required": ["nomad"]}, {"required": ["aws_asg"]}],
    }
    group_by = {
        "type": "object",
        "title": "group_by",
        "description": "Label -> placeholder: this target reads the series of the query whose "
        'labels equal the expanded values, e.g. {job: "{job}"}.',
        "additionalProperties": {"type": "string"},
        "minProperties": 1,
    }
    template = copy.deepcopy(defs[policy_name])
    items = template["properties"]["checks"]["items"]
    renamed: dict[str, str] = {}
    for ref in items.get("oneOf", []):
        name = ref["$ref"].rsplit("/", 1)[-1]
        if "query" in defs[name].get("properties", {}):
            variant = copy.deepcopy(defs[name])
            variant["properties"]["group_by"] = group_by
            variant["title"] = f"{variant.get('title', name)} in a template"
            defs[f"Template{name}"] = variant
            renamed[ref["$ref"]] = f"#/$defs/Template{name}"
    items["oneOf"] = [{"$ref": renamed.get(r["$ref"], r["$ref"])} for r in items.get("oneOf", [])]
    mapping = items.get("discriminator", {}).get("mapping", {})
    for tag, ref in mapping.items():
        mapping[tag] = renamed.get(ref, ref)
    template["title"] = "Scaling policy template"
    template["description"] = (
        "A policy per discovered target (for_each), with placeholders in name, description, "
        "target, group_by and triggers.alerts."
    )
    template["properties"]["name"] = {
        "type": "string",
        "description": "Name of each expanded policy, with placeholders, e.g. web-{job}-{group}.",
        "title": "Name",
    }
    template["properties"]["for_each"] = {
        "$ref": "#/$defs/ForEachModel",
        "description": "Where the targets come from: Nomad task groups or Auto Scaling Groups.",
    }
    template["properties"]["target"] = {
        **template["properties"]["target"],
        "description": "What to scale; default: the discovered object.",
    }
    template["required"] = sorted({*template.get("required", []), "for_each"} - {"target"})
    defs["TemplateModel"] = template
    one = [{"$ref": f"#/$defs/{policy_name}"}, {"$ref": "#/$defs/TemplateModel"}]
    schema["anyOf"] = [*one, {"type": "array", "items": {"anyOf": one}}]
    schema["description"] = (
        "One scaling policy or policy template, or a list of them. See POLICY_SPEC / README."
    )
    return schema


def _policy_def(defs: Mapping[str, Any]) -> str:
    """The name of the policy's definition in `$defs`."""
    title = PolicyModel.model_config.get("title")
    for name, definition in defs.items():
        if definition.get("title") == title:
            return name
    raise KeyError("no policy definition in the schema")
