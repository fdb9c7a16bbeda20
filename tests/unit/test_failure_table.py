"""README's "Failure behaviour" table: every fault class of issue 8 has a row, and every test
it names exists.

The table maps a fault to the test that proves what the controller does about it; a test
renamed or moved without the table would leave a row pointing at nothing, and a row
dropped would leave a fault with no proof anyone can find.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAULTS = "tests/integration/faults/"

# The fault classes issue 8 asks the matrix for, as the table's first column names them.
FAULT_CLASSES = [
    "Prometheus down",
    "Prometheus slow",
    "Prometheus answers 5xx",
    "Prometheus answers garbage",
    "Prometheus answer truncated",
    "a string",
    "NaN",
    "several series",
    "AWS throttling",
    "AWS 5xx",
    "Nomad 5xx",
    "Nomad 403",
    "Nomad deployment in progress",
    "SIGKILL inside a cooldown",
    "unwritable",
    "locked by another process",
    "disk full",
    "deleted while running",
    "onto a target another policy scales",
    "renames it to a name in use",
    "1,000 policies, one bad",
]


def table_rows() -> list[list[str]]:
    """The cells of each row of the table under `## Failure behaviour`."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Failure behaviour\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[1:]]


def node_ids() -> list[str]:
    """Every test the table names, as a pytest node id."""
    found = []
    for row in table_rows():
        for name in re.findall(r"`([^`]+)`", row[-1]):
            found.append(
                FAULTS + name.removeprefix("faults/") if name.startswith("faults/") else name
            )
    return found


def test_every_fault_class_of_the_issue_has_a_row() -> None:
    faults = [row[0] for row in table_rows()]
    missing = [f for f in FAULT_CLASSES if not any(f in fault for fault in faults)]
    assert missing == [], faults


@pytest.mark.parametrize("node_id", node_ids())
def test_every_test_the_table_names_exists(node_id: str) -> None:
    path, _, rest = node_id.partition("::")
    name, _, param = rest.partition("[")
    source = ROOT / path
    assert source.is_file(), node_id
    text = source.read_text()
    assert re.search(rf"^\s*(async )?def {re.escape(name)}\(", text, re.MULTILINE), node_id
    if param:
        assert f'"{param.removesuffix("]")}"' in text, f"no parameter id {param} in {path}"
