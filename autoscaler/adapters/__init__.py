"""Adapters to the outside world, each behind a small interface of `autoscaler.core.ports`.

`sources/` read metrics (Prometheus), `targets/` read and set counts (EC2 Auto Scaling
Groups, Nomad task groups), `state/` remember (SQLite, memory). May import: `autoscaler.core`,
`autoscaler.errors`, and their client libraries. May not import: the engine, the service,
the API or the CLI.
"""
