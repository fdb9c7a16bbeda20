"""Adapters that discover targets: Nomad task groups and scaling policies, AWS Auto Scaling Groups.

Each reads one source and returns plain values (`core.discovered`); watching (Nomad's
blocking queries, AWS polling with backoff) and what to do with the result belong to the
service (`service.discovery`). Failures raise `DiscoveryError` with a message that says
what to fix; secrets never appear in it.
"""
