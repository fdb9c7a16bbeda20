"""The policy language: YAML text -> validated `Policy` values, or located problems.

May import: `autoscaler.core` (the values it builds), `autoscaler.errors`, and the parsing
libraries (PyYAML, pydantic, promql-parser, croniter). May not import: adapters, the
engine, the service, the API or the CLI; it never talks to a server.
"""

from autoscaler.policy.loader import LoadResult, json_schema, load_paths, load_text

__all__ = ["LoadResult", "json_schema", "load_paths", "load_text"]
