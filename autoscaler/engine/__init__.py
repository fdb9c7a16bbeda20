"""Where the pure core meets the adapters: one evaluation of one policy.

`reconciler` reads a target, runs the checks' queries, calls `core.decide`, applies and
remembers; `scrubbing` masks secrets in what it returns, `decision_log` logs it. May
import: `autoscaler.core` and `autoscaler.errors`, and the adapters only through the
Protocols of `autoscaler.core.ports`. May not import: the service, the API or the CLI.
"""
