"""Replays: the production decision code run on injected time and recorded or simulated data.

`harness` drives the real `engine.Reconciler` (and through it `core.decide`) with a clock,
a metric source and a target that the caller sets before each evaluation, so `simulate`
(closed loop on a load trace), `backtest` (open loop on Prometheus history) and `test`
(policy unit tests) all decide exactly as `run` would. May import: `autoscaler.core`,
`autoscaler.engine`, `autoscaler.adapters` (state in memory, Prometheus for history),
`autoscaler.policy`, `autoscaler.errors`. May not import: the service, the API or the CLI.
"""
