"""pytest plugin: the package's bytecode compiled once, before the tests start processes.

The integration tests start `python -m autoscaler ...` hundreds of times. Where
PYTHONDONTWRITEBYTECODE is set (as in many CI images and on our machines), no process
writes `__pycache__`, so every one of them compiled the whole package from source again:
~0.1 s of CPU each, about a tenth of what the CLI tests cost. `compileall` writes the
bytecode whatever that variable says, and only for files that changed since (the rest is a
`stat` each); every process then loads it, as it would without the variable. The files go
where Python puts them itself (`autoscaler/**/__pycache__/`, ignored by git).

Run in the controlling process only: it configures itself before starting the xdist
workers, so no worker imports the package before its bytecode is written.
"""

from __future__ import annotations

import compileall
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "autoscaler"


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller did it already
        return
    compileall.compile_dir(PACKAGE, quiet=1)
