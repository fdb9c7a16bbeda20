"""A template's targets keep their last good policies while its discovery source changes:
a new source (the template's tags or region edited) that has not answered yet, or one
stopped and started again within one settling (a file held back late), drops nothing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from autoscaler.core.discovered import AsgGroup
from autoscaler.errors import DiscoveryError
from autoscaler.service.discovery import Discovery
from autoscaler.service.registry import PolicyRegistry
from tests.support.discovery import discovering, names

ASG_TEMPLATE = """\
name: "asg-{asg}"
for_each:
  aws_asg: {tags: TAGS, region: eu-west-3}
min: 1
max: 20
checks:
  - {name: c, strategy: fixed, count: 2}
"""
ENABLED = '{"autoscaler:enabled": "true"}'
TEAM_A = '{"autoscaler:enabled": "true", team: a}'


@dataclass
class FakeAws:
    """Stands for `AsgDiscovery`: the groups carrying the tags asked for, or a failure."""

    found: list[AsgGroup] = field(default_factory=list)
    fail: str | None = None
    reads: int = 0

    def groups(self, tags: Mapping[str, str]) -> list[AsgGroup]:
        self.reads += 1
        if self.fail:
            raise DiscoveryError(self.fail)
        return [g for g in self.found if all(g.tags.get(k) == v for k, v in tags.items())]


def _group(name: str, **tags: str) -> AsgGroup:
    return AsgGroup(name=name, region="eu-west-3", tags={"autoscaler:enabled": "true", **tags})


def _setup(tmp_path: Path, aws: FakeAws, tags: str) -> tuple[PolicyRegistry, Discovery]:
    (tmp_path / "asg.yaml").write_text(ASG_TEMPLATE.replace("TAGS", tags))
    registry, discovery = discovering(tmp_path, aws=aws)
    discovery.read_once(registry.templates())
    registry.refresh()
    return registry, discovery


def test_editing_a_templates_tags_while_aws_fails_keeps_its_targets_until_aws_answers(
    tmp_path: Path,
) -> None:
    # The new tags make a new source, with no result yet: every target of the template was
    # dropped until AWS answered, and for as long as it failed.
    aws = FakeAws([_group("g1", team="a"), _group("g2", team="b")])
    registry, discovery = _setup(tmp_path, aws, ENABLED)
    assert names(registry) == ["asg-g1", "asg-g2"]

    aws.fail = "AWS down"
    (tmp_path / "asg.yaml").write_text(ASG_TEMPLATE.replace("TAGS", TEAM_A))
    outcome = registry.reload()
    assert names(registry) == ["asg-g1", "asg-g2"] and not outcome.changed
    discovery.read_once(registry.templates())
    outcome = registry.refresh()
    assert names(registry) == ["asg-g1", "asg-g2"] and not outcome.changed
    (problem,) = outcome.sources_failing
    assert "team=a" in problem.file and "AWS down" in problem.message
    assert "the 2 targets its templates found before they changed stay in force" in (
        problem.message
    )
    (health,) = discovery.health()
    assert not health.up and health.targets == 2

    aws.fail = None  # the new source answers: its result applies as usual
    discovery.read_once(registry.templates())
    outcome = registry.refresh()
    assert names(registry) == ["asg-g1"] and outcome.removed == ("asg-g2",)
    assert outcome.problems == ()


HAND_WRITTEN = """\
name: hand
target: {type: aws-asg, asg: TARGET, region: eu-west-3}
min: 1
max: 3
checks:
  - {name: c, strategy: fixed, count: 2}
"""
# Reads the source of the tags `team: a` too; disabled, it scales nothing.
OTHER_TEMPLATE = ASG_TEMPLATE.replace('"asg-{asg}"', '"other-{asg}"').replace(
    "min: 1", "enabled: false\nmin: 1"
)


def test_a_file_held_back_late_keeps_the_targets_of_its_template_source(tmp_path: Path) -> None:
    # The file's new version is held back once settled with discovery (its hand-written
    # policy moves onto a group its own template scales): the registry asks discovery again
    # with the file's last good template, whose source the first ask had stopped; started
    # again empty, it dropped the template's targets until it answered (or for as long as
    # it failed).
    aws = FakeAws([_group("g1", team="a"), _group("g2")])
    (tmp_path / "other.yaml").write_text(OTHER_TEMPLATE.replace("TAGS", TEAM_A))
    registry, discovery = _setup(tmp_path, aws, ENABLED)
    (tmp_path / "asg.yaml").write_text(
        ASG_TEMPLATE.replace("TAGS", ENABLED) + "---\n" + HAND_WRITTEN.replace("TARGET", "g0")
    )
    registry.reload()
    discovery.read_once(registry.templates())
    registry.refresh()
    assert names(registry) == ["asg-g1", "asg-g2", "hand", "other-g1"]

    aws.fail = "AWS down"
    # The template now reads the other file's source (team: a), which has a result; the
    # hand-written policy moves onto g1, which that template still scales: held back.
    (tmp_path / "asg.yaml").write_text(
        ASG_TEMPLATE.replace("TAGS", TEAM_A) + "---\n" + HAND_WRITTEN.replace("TARGET", "g1")
    )
    outcome = registry.reload()
    assert any(str(tmp_path / "asg.yaml") == kept for kept in outcome.kept)
    assert names(registry) == ["asg-g1", "asg-g2", "hand", "other-g1"]
