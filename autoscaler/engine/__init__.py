"""Where the pure core meets the adapters: one evaluation of one policy.

`reconciler` reads a target, runs the checks' queries, calls `core.decide`, applies and
remembers; `outcomes` says how a step that fails changes the decision; what it returns is
an `evaluation`, in which `scrubbing` masks secrets and which `decision_log` logs. May
import: `autoscaler.core`, `autoscaler.errors` and `autoscaler.redact`; of the adapters,
only `adapters.deadline.monotonic` (the clock the leader lease's fence is compared on,
which must be the one the adapters' deadlines use) and otherwise their Protocols in
`autoscaler.core.ports`. May not import: the service, the API or the CLI (the
import-linter contracts in pyproject.toml hold the layers).
"""
