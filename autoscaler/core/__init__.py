"""The pure decision core: plain values in, a `Decision` with its reasons out.

May import: the standard library's pure parts, `croniter` and `zoneinfo` (schedules), and
`autoscaler.errors`. May not import: any I/O library (HTTP, AWS, Nomad, SQL), `time`,
`threading` or `logging`, nor any other layer of `autoscaler`. The clock (`now`) and the
policy's memory are arguments, so every behaviour here is a function call in a test.
"""
