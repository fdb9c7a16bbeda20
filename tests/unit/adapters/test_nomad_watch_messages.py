"""What a line of Nomad's event stream says changed (`nomad_watch.changed_jobs`)."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.adapters.targets.nomad_watch import changed_jobs


def _event(topic: str = "Job", key: Any = "web", kind: str = "JobRegistered") -> dict[str, Any]:
    return {"Topic": topic, "Type": kind, "Key": key, "Namespace": "default", "Index": 7}


def test_a_heartbeat_changes_nothing() -> None:
    assert changed_jobs({}) == []


def test_job_events_name_their_jobs_and_other_topics_are_ignored() -> None:
    message = {
        "Index": 9,
        "Events": [_event(key="web"), _event("Deployment", "d-1"), _event(key="api")],
    }
    assert changed_jobs(message) == ["web", "api"]


@pytest.mark.parametrize(
    "message",
    [
        [],
        "{}",
        {"Events": "web"},
        {"Events": ["web"]},
        {"Events": [_event(key=None)]},
        {"Events": [_event(key="")]},
        {"Events": [_event(key=["web"])]},
    ],
    ids=["list", "text", "events-text", "event-text", "no-key", "empty-key", "key-list"],
)
def test_a_line_it_cannot_read_voids_everything(message: Any) -> None:
    assert changed_jobs(message) is None
