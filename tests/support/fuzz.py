"""pytest plugin and hypothesis settings for the fuzz and property tests: a small
fixed-seed slice in CI, thousands of cases at night.

By default every test using `fuzz_settings` runs `ci` examples with `derandomize=True`, so
CI is fast and its outcome does not depend on luck or on the example database.
`AUTOSCALER_FUZZ=nightly` runs `NIGHTLY_EXAMPLES` examples per test with a fresh seed each
run (`AUTOSCALER_FUZZ_EXAMPLES` overrides the count), and lifts the suite's per-test timeout
for hypothesis tests and those marked `fuzz`, which then run for minutes:

    AUTOSCALER_FUZZ=nightly .venv/bin/pytest -q tests/unit -k "fuzz or properties"
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

NIGHTLY_EXAMPLES = 5_000


def nightly() -> bool:
    """True when the nightly-sized run is asked for."""
    return os.environ.get("AUTOSCALER_FUZZ", "").lower() == "nightly"


def fuzz_settings(ci: int) -> settings:
    """`ci` derandomized examples, or the nightly count with a random seed."""
    if nightly():
        examples = int(os.environ.get("AUTOSCALER_FUZZ_EXAMPLES", NIGHTLY_EXAMPLES))
        return settings(
            max_examples=examples,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
    return settings(
        max_examples=ci,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


# Every other property test (a plain `@given`) gets the same CI rules: no per-example
# deadline (a loaded 2-core machine made a 3 ms example take 1.1 s, and hypothesis calls
# that a failure), a fixed seed and no example database, so the outcome is the code's.
settings.register_profile("autoscaler-ci", deadline=None, derandomize=True, database=None)
settings.register_profile("autoscaler-nightly", deadline=None)
settings.load_profile("autoscaler-nightly" if nightly() else "autoscaler-ci")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """At nightly size, no per-test timeout for hypothesis tests and tests marked `fuzz`."""
    if not nightly():
        return
    for item in items:
        function = getattr(item, "obj", None)
        if item.get_closest_marker("fuzz") or getattr(function, "is_hypothesis_test", False):
            # First, so it is the closest: a test's own timeout mark (a CI bound) would win.
            item.add_marker(pytest.mark.timeout(0), append=False)
