"""The owner's min/max overrides are hard limits: a template's schedules stay inside them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from autoscaler.core.bounds import Bounds, effective_bounds
from autoscaler.core.discovered import AsgGroup, NomadGroup
from autoscaler.core.model import Schedule
from autoscaler.errors import PolicyWarning
from autoscaler.policy.conflicts import Located
from autoscaler.policy.expansion import expand
from autoscaler.policy.loader import load_file
from autoscaler.policy.override_bounds import Clamp, clamp_schedules
from autoscaler.policy.templates import Template

TEMPLATE = """\
name: "web-{job}-{group}"
for_each:
  nomad: {meta: {autoscaler.enabled: "true"}}
min: 1
max: 20
schedules:
  - name: office
    start: 2026-01-01T00:00:00Z
    end: 2027-12-31T00:00:00Z
    min: 4
    max: 30
checks:
  - name: rps
    query: 'sum by (job, group) (rate(http_requests_total[2m]))'
    group_by: {job: "{job}", group: "{group}"}
    strategy: per-instance
    target: 10
"""
IN_WINDOW = datetime(2026, 6, 1, tzinfo=UTC)
OFFICE = Schedule(name="office", min=4, max=30)


def _template(tmp_path: Path, text: str = TEMPLATE) -> Template:
    path = tmp_path / "web.yaml"
    path.write_text(text)
    found = load_file(path)
    assert not found.problems, found.problems
    (template,) = found.templates
    return template


def _group(**meta: str) -> NomadGroup:
    return NomadGroup(
        namespace="default",
        job="shop",
        group="web",
        meta={"autoscaler.enabled": "true", **{f"autoscaler.{k}": v for k, v in meta.items()}},
    )


@pytest.mark.parametrize(
    ("low", "high", "schedules", "expected", "clamps"),
    [
        pytest.param(
            None, 3, [OFFICE], [Schedule(name="office", min=3, max=3)],
            [Clamp(0, "office", "min", 4, 3), Clamp(0, "office", "max", 30, 3)],
            id="override-max-below-a-schedules-min",
        ),
        pytest.param(
            40, None, [OFFICE], [Schedule(name="office", min=40, max=40)],
            [Clamp(0, "office", "min", 4, 40), Clamp(0, "office", "max", 30, 40)],
            id="override-min-above-a-schedules-max",
        ),
        pytest.param(
            10, None, [OFFICE], [Schedule(name="office", min=10, max=30)],
            [Clamp(0, "office", "min", 4, 10)],
            id="only-min-overridden-leaves-the-max",
        ),
        pytest.param(
            None, 5, [OFFICE], [Schedule(name="office", min=4, max=5)],
            [Clamp(0, "office", "max", 30, 5)],
            id="only-max-overridden-leaves-the-min",
        ),
        pytest.param(
            2, 8, [Schedule(name="peak", max=30), Schedule(name="night", min=0)],
            [Schedule(name="peak", max=8), Schedule(name="night", min=2)],
            [Clamp(0, "peak", "max", 30, 8), Clamp(1, "night", "min", 0, 2)],
            id="a-side-the-schedule-leaves-unset-stays-unset",
        ),
        pytest.param(2, 40, [OFFICE], [OFFICE], [], id="inside-the-overrides-unchanged"),
        pytest.param(2, 8, [], [], [], id="no-schedule"),
    ],
)  # fmt: skip
def test_schedules_are_clamped_into_the_overridden_sides(
    low: int | None,
    high: int | None,
    schedules: list[Schedule],
    expected: list[Schedule],
    clamps: list[Clamp],
) -> None:
    assert clamp_schedules(schedules, low=low, high=high) == (tuple(expected), tuple(clamps))


def test_an_unchanged_schedule_stays_the_templates_object() -> None:
    (schedule,), _ = clamp_schedules([OFFICE], low=None, high=None)
    assert schedule is OFFICE


@pytest.mark.parametrize(
    ("meta", "bounds"),
    [
        pytest.param({"max": "5"}, (4, 5), id="max-override-caps-the-schedules-max"),
        pytest.param({"min": "10"}, (10, 30), id="min-override-lifts-the-schedules-min"),
        pytest.param({"min": "2", "max": "3"}, (3, 3), id="max-override-below-schedules-min"),
        pytest.param({"target": "20"}, (4, 30), id="no-bound-overridden-the-template-rules"),
    ],
)
def test_an_active_schedule_stays_inside_the_owners_overrides(
    tmp_path: Path, meta: dict[str, str], bounds: tuple[int, int]
) -> None:
    located = expand(_template(tmp_path), _group(**meta))
    assert isinstance(located, Located), located
    now = effective_bounds(located.policy, IN_WINDOW)
    assert (now.min, now.max) == bounds


def test_a_clamped_schedule_is_a_warning_naming_the_override(tmp_path: Path) -> None:
    warnings: list[PolicyWarning] = []
    located = expand(_template(tmp_path), _group(max="5"), warnings=warnings)
    assert isinstance(located, Located)
    (warning,) = warnings
    assert warning.field == "web-shop-web: schedules[0].max"
    assert "schedule office max 30 is above meta autoscaler.max 5" in warning.message
    assert str(warning).startswith(f"{tmp_path / 'web.yaml'}:1: ")


def test_an_asg_tag_override_clamps_too_and_is_named_as_a_tag(tmp_path: Path) -> None:
    text = (
        TEMPLATE.replace(
            'nomad: {meta: {autoscaler.enabled: "true"}}',
            'aws_asg: {tags: {"autoscaler:enabled": "true"}, region: eu-west-3}',
        )
        .replace("web-{job}-{group}", "asg-{asg}")
        .replace('group_by: {job: "{job}", group: "{group}"}', 'group_by: {asg: "{asg}"}')
    )
    warnings: list[PolicyWarning] = []
    found = AsgGroup(
        name="shop", region="eu-west-3", tags={"autoscaler:enabled": "true", "autoscaler:min": "12"}
    )
    located = expand(_template(tmp_path, text), found, warnings=warnings)
    assert isinstance(located, Located), located
    assert effective_bounds(located.policy, IN_WINDOW) == Bounds(
        12, 30, "schedule office min", "schedule office max"
    )
    assert "below tag autoscaler:min 12" in warnings[0].message


def test_a_one_sided_schedule_beyond_an_override_is_clamped_not_refused(tmp_path: Path) -> None:
    # Before, a schedule setting min alone (25) above the override max (5) failed the
    # target, while one setting both sides was taken out to its max: now both are clamped.
    text = TEMPLATE.replace("max: 20\n", "max: 40\n").replace(
        "    min: 4\n    max: 30\n", "    min: 25\n"
    )
    located = expand(_template(tmp_path, text), _group(max="5"))
    assert isinstance(located, Located), located
    now = effective_bounds(located.policy, IN_WINDOW)
    assert (now.min, now.max) == (5, 5)
