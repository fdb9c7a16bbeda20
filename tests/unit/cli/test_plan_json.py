"""`plan -o json` and `-o yaml`: the keys of each policy's object, as the README documents
them and the spec's decisions carry them."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import yaml

from autoscaler.cli import report
from tests.unit.cli.rows import up_row


def test_plan_json_gives_each_decisions_time_in_utc_beside_the_documented_keys() -> None:
    # The spec's decision carries its time; `plan -o json` left it out.
    row = up_row("aws-asg:web")
    paris = timezone(timedelta(hours=1))
    row = replace(
        row, decision=replace(row.decision, time=datetime(2026, 12, 3, 20, 30, tzinfo=paris))
    )
    (entry,) = json.loads(report.render_plan_json([row]))
    assert list(entry) == [*report.PLAN_KEYS, "time", "error"]
    assert entry["time"] == "2026-12-03T19:30:00+00:00"
    assert datetime.fromisoformat(entry["time"]) == row.decision.time.astimezone(UTC)


def test_plan_yaml_gives_the_time_as_the_same_text_as_json() -> None:
    # A plain `2026-12-03 ...` scalar would read back as a datetime, not the JSON's string.
    rows = [up_row("aws-asg:web")]
    as_yaml = yaml.safe_load(report.render_plan_yaml(rows))
    assert as_yaml == json.loads(report.render_plan_json(rows))
    assert as_yaml[0]["time"] == "2026-12-03T00:00:00+00:00"
