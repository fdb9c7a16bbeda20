"""The long-lived service behind `autoscaler run`.

`run` wires the process (signals, reload, HTTP); `registry` holds the live policies,
`scheduler` decides when each runs, `controller` ties them to the engine, telemetry and
notifications and backs the HTTP API. May import: every lower layer (`api`, `config`,
`engine`, `adapters`, `policy`, `core`). May not import: the CLI.
"""
