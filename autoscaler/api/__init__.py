"""The HTTP API: FastAPI routes, their request and response models, and the server thread.

The routes talk to a `Backend` Protocol (implemented by `service.controller`), which raises
domain errors; only this layer maps them to HTTP status codes. May import:
`autoscaler.core`, `autoscaler.engine` (the `Evaluation` it reports), `autoscaler.errors`.
May not import: the service, the CLI, or any adapter.
"""
