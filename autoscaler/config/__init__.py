"""How the controller is configured: connection settings and service options.

Turns flags, environment variables (and files holding secrets) into the settings that build
the adapters. May import: the adapters (to build them), `autoscaler.core`,
`autoscaler.errors`. May not import: the engine, the service, the API or the CLI.
"""
