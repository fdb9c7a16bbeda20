"""Root conftest: registers the fixture plugins that start real servers for the tests.

Each plugin module under `tests/support/` owns one kind of server (Prometheus,
Alertmanager, moto, the Nomad API stand-in, PostgreSQL) and the fixtures that hand it to
tests; `fuzz` sizes the fuzz tests (a CI slice, or the nightly run); `xdist_groups` keeps
the tests of an `xdist_group` module on one worker under `--dist loadgroup`; `bytecode`
compiles the package once for the hundreds of `autoscaler` processes the tests start.
"""

pytest_plugins = [
    "tests.support.prometheus",
    "tests.support.aws",
    "tests.support.nomad_api",
    "tests.support.alertmanager",
    "tests.support.postgres",
    "tests.support.service",
    "tests.support.query_count",
    "tests.support.fuzz",
    "tests.support.xdist_groups",
    "tests.support.bytecode",
]
