"""The live policy set: reloads swap in valid files, and a broken file keeps its last good
version (with its problems reported) until it is fixed or removed."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from autoscaler.errors import Problem
from autoscaler.policy.conflicts import Located
from autoscaler.policy.loader import FileLoad, load_text
from autoscaler.policy.templates import Template
from autoscaler.service.registry import DISCOVERED, PolicyRegistry


def _policy(name: str, max_count: int = 5) -> str:
    return (
        f"name: {name}\ntarget: {{type: aws-asg, asg: {name}}}\nmin: 1\nmax: {max_count}\n"
        "checks:\n  - {name: c, strategy: fixed, count: 2}\n"
    )


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    # A later write within the same clock tick must still change the fingerprint.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def test_a_valid_change_replaces_the_policy(tmp_path: Path) -> None:
    _write(tmp_path / "web.yaml", _policy("web"))
    registry = PolicyRegistry([str(tmp_path)])
    assert registry.reload().added == ("web",)
    _write(tmp_path / "web.yaml", _policy("web", max_count=9))
    outcome = registry.reload()
    assert (outcome.updated, outcome.problems) == (("web",), ())
    web = registry.get("web")
    assert web is not None
    assert web.max == 9


def test_a_broken_file_keeps_its_last_good_version(tmp_path: Path) -> None:
    _write(tmp_path / "web.yaml", _policy("web"))
    _write(tmp_path / "api.yaml", _policy("api"))
    registry = PolicyRegistry([str(tmp_path)])
    registry.reload()

    _write(tmp_path / "web.yaml", "name: web\nmin: 1\nmax: nope\n")
    _write(tmp_path / "api.yaml", _policy("api", max_count=7))
    outcome = registry.reload()
    assert outcome.kept == (str(tmp_path / "web.yaml"),)
    assert outcome.updated == ("api",)
    assert not outcome.removed
    web = registry.get("web")
    assert web is not None
    assert web.max == 5
    assert registry.problems_of(web)
    assert all(p.file.endswith("web.yaml") for p in registry.problems())


def test_a_broken_update_through_a_repointed_link_keeps_the_last_good_versions(
    tmp_path: Path,
) -> None:
    # How a Kubernetes ConfigMap volume (`web.yaml -> ..data/web.yaml`, `..data` repointed
    # at each update) or a release link (`current -> releases/N`) updates policies.
    for release, text in (("r1", _policy("web")), ("r2", "name: web\nmin: 1\nmax: nope\n")):
        (tmp_path / release).mkdir()
        _write(tmp_path / release / "web.yaml", text)
        _write(tmp_path / release / "api.yaml", _policy("api"))
    (tmp_path / "policies").mkdir()
    (tmp_path / "..data").symlink_to(tmp_path / "r1")
    for name in ("web.yaml", "api.yaml"):
        (tmp_path / "policies" / name).symlink_to(tmp_path / "..data" / name)
    registry = PolicyRegistry([str(tmp_path / "policies")])
    assert sorted(registry.reload().added) == ["api", "web"]

    swap = tmp_path / "..data.new"
    swap.symlink_to(tmp_path / "r2")
    swap.rename(tmp_path / "..data")  # atomically, as the kubelet does
    outcome = registry.reload()
    assert outcome.removed == ()
    assert outcome.kept == (str(tmp_path / "policies" / "web.yaml"),)
    web = registry.get("web")
    assert web is not None and web.max == 5
    assert registry.problems_of(web)


def test_a_link_left_pointing_to_nothing_keeps_its_last_good_version(tmp_path: Path) -> None:
    # As a file that cannot be read: the link is there, so its policy is meant to run. It
    # was skipped without a word, and its policy removed.
    (tmp_path / "shared").mkdir()
    _write(tmp_path / "shared" / "web.yaml", _policy("web"))
    (tmp_path / "policies").mkdir()
    link = tmp_path / "policies" / "web.yaml"
    link.symlink_to(tmp_path / "shared" / "web.yaml")
    _write(tmp_path / "policies" / "api.yaml", _policy("api"))
    registry = PolicyRegistry([str(tmp_path / "policies")])
    assert sorted(registry.reload().added) == ["api", "web"]

    (tmp_path / "shared" / "web.yaml").unlink()
    assert registry.changed_on_disk()
    outcome = registry.reload()
    assert (outcome.removed, outcome.kept) == ((), (str(link),))
    web = registry.get("web")
    assert web is not None and web.max == 5
    assert [p.message for p in registry.problems_of(web)] == [
        f"cannot read the file: a symbolic link to {tmp_path / 'shared' / 'web.yaml'}, "
        "which does not exist"
    ]
    _write(tmp_path / "shared" / "web.yaml", _policy("web", max_count=7))  # back
    assert registry.changed_on_disk()
    assert registry.reload().updated == ("web",) and not registry.problems()


def test_a_new_broken_file_adds_nothing_and_a_removed_file_removes_its_policies(
    tmp_path: Path,
) -> None:
    _write(tmp_path / "web.yaml", _policy("web"))
    registry = PolicyRegistry([str(tmp_path)])
    registry.reload()
    _write(tmp_path / "new.yaml", "name: new\n")
    outcome = registry.reload()
    assert not outcome.added
    assert outcome.problems

    (tmp_path / "web.yaml").unlink()
    (tmp_path / "new.yaml").unlink()
    outcome = registry.reload()
    assert outcome.removed == ("web",)
    assert registry.policies() == []
    assert registry.problems() == []


@pytest.mark.parametrize("given", ["folder", "file"])
def test_a_path_given_that_is_gone_keeps_the_policies_last_read_from_it(
    tmp_path: Path, given: str
) -> None:
    # `run` refuses to start without its paths; while it ran, a folder replaced by
    # `rm -rf` and a copy (or unmounted), or a file given on its own that vim's save
    # renamed away, removed every policy read from it.
    folder = tmp_path / "policies"
    folder.mkdir()
    _write(folder / "web.yaml", _policy("web"))
    _write(folder / "api.yaml", _policy("api"))
    _write(tmp_path / "db.yaml", _policy("db"))
    path = folder if given == "folder" else folder / "web.yaml"
    registry = PolicyRegistry([str(path), str(tmp_path / "db.yaml")])
    registry.reload()
    before = sorted(p.name for p in registry.policies())

    path.rename(tmp_path / "away")
    assert registry.changed_on_disk()
    outcome = registry.reload()
    assert (outcome.removed, outcome.added, outcome.updated) == ((), (), ())
    assert sorted(p.name for p in registry.policies()) == before
    [problem] = outcome.problems
    assert problem.file == str(path)
    assert problem.message.startswith("no such file or folder: the ")
    assert problem.message.endswith("file(s) last read from it keep running")

    (tmp_path / "away").rename(path)
    target = folder / "web.yaml"
    _write(target, _policy("web", max_count=8))
    outcome = registry.reload()
    assert (outcome.updated, outcome.problems) == (("web",), ())


def test_changes_on_disk_are_detected(tmp_path: Path) -> None:
    _write(tmp_path / "web.yaml", _policy("web"))
    registry = PolicyRegistry([str(tmp_path)])
    registry.reload()
    assert not registry.changed_on_disk()
    _write(tmp_path / "web.yaml", _policy("web", max_count=6))
    assert registry.changed_on_disk()
    registry.reload()
    _write(tmp_path / "other.yml", _policy("other"))
    assert registry.changed_on_disk()
    registry.reload()
    (tmp_path / "notes.txt").write_text("not a policy")
    assert not registry.changed_on_disk()
    (tmp_path / "other.yml").unlink()
    assert registry.changed_on_disk()
    registry.reload()
    os.utime(tmp_path / "web.yaml", ns=(10**18, 10**18))  # the same bytes, another mtime
    assert registry.changed_on_disk()
    registry.reload()
    assert not registry.changed_on_disk()


def test_a_file_made_readable_by_chmod_is_noticed_without_another_edit(tmp_path: Path) -> None:
    # A file the controller could not read (root's 0600, the service a DynamicUser) is
    # fixed with chmod or chown, which leave its mtime as it was: the fingerprint did not
    # change, and the file stayed "Permission denied" until another edit or a SIGHUP.
    _write(tmp_path / "web.yaml", _policy("web"))
    registry = PolicyRegistry([str(tmp_path)])
    registry.reload()
    mtime = (tmp_path / "web.yaml").stat().st_mtime_ns
    (tmp_path / "web.yaml").chmod(0o600)
    assert (tmp_path / "web.yaml").stat().st_mtime_ns == mtime
    assert registry.changed_on_disk()
    registry.reload()
    assert not registry.changed_on_disk()


def _on(name: str, asg: str, count: int = 2) -> str:
    return (
        f"name: {name}\ntarget: {{type: aws-asg, asg: {asg}}}\nmin: 1\nmax: 10\n"
        f"checks:\n  - {{name: c, strategy: fixed, count: {count}}}\n"
    )


def _targets(registry: PolicyRegistry) -> dict[str, str]:
    return {p.name: str(p.target) for p in registry.policies()}


def test_an_edit_onto_a_scaled_target_is_rejected_and_keeps_its_last_good_version(
    tmp_path: Path,
) -> None:
    # `h.yaml` sorts before `o.yaml`: file order must not decide which one wins.
    _write(tmp_path / "h.yaml", _on("h", "asg-h", 8))
    _write(tmp_path / "o.yaml", _on("o", "asg-o", 5))
    registry = PolicyRegistry([str(tmp_path)])
    registry.reload()

    _write(tmp_path / "h.yaml", _on("h", "asg-o", 8))
    outcome = registry.reload()
    assert _targets(registry) == {"h": "aws-asg:asg-h", "o": "aws-asg:asg-o"}
    assert not outcome.changed
    assert outcome.kept == (str(tmp_path / "h.yaml"),)
    (problem,) = outcome.problems
    assert problem.file.endswith("h.yaml")
    assert problem.field == "target"
    assert "already scaled by policy 'o'" in problem.message
    h = registry.get("h")
    assert h is not None
    assert registry.problems_of(h) == [problem]
    o = registry.get("o")
    assert o is not None
    assert registry.problems_of(o) == []


def test_a_rename_to_a_name_in_use_keeps_the_last_good_version_of_the_renamed_policy(
    tmp_path: Path,
) -> None:
    _write(tmp_path / "h.yaml", _on("h", "asg-h"))
    _write(tmp_path / "o.yaml", _on("o", "asg-o"))
    registry = PolicyRegistry([str(tmp_path)])
    registry.reload()

    _write(tmp_path / "h.yaml", _on("o", "asg-h"))
    outcome = registry.reload()
    assert _targets(registry) == {"h": "aws-asg:asg-h", "o": "aws-asg:asg-o"}
    assert not outcome.changed
    o = registry.get("o")
    assert o is not None
    assert o.source.file.endswith("o.yaml")
    (problem,) = outcome.problems
    assert problem.file.endswith("h.yaml")
    assert "duplicate policy name 'o'" in problem.message


def test_a_policy_keeps_its_target_when_a_newcomer_claims_it(tmp_path: Path) -> None:
    # The newcomer sorts first; the policy already running keeps the target.
    _write(tmp_path / "o.yaml", _on("o", "shared"))
    registry = PolicyRegistry([str(tmp_path)])
    registry.reload()
    _write(tmp_path / "a.yaml", _on("a", "shared"))
    outcome = registry.reload()
    assert _targets(registry) == {"o": "aws-asg:shared"}
    assert not outcome.added
    assert [p.file.endswith("a.yaml") for p in outcome.problems] == [True]


def test_a_refused_newcomer_is_never_said_to_keep_a_version_it_never_had(
    tmp_path: Path,
) -> None:
    # Refused on its first reload, it was stored with an empty version: every later
    # reload then listed it in `kept` ("its last good version keeps running").
    _write(tmp_path / "o.yaml", _on("o", "shared"))
    registry = PolicyRegistry([str(tmp_path)])
    registry.reload()
    _write(tmp_path / "a.yaml", _on("a", "shared"))
    registry.reload()
    _write(tmp_path / "a.yaml", _on("a", "shared", 3))  # edited, still on the same target
    outcome = registry.reload()
    assert outcome.kept == ()
    assert [p.message for p in outcome.problems if p.file.endswith("a.yaml")] != []
    assert _targets(registry) == {"o": "aws-asg:shared"}
    _write(tmp_path / "a.yaml", _on("a", "free"))  # moved off it: it joins
    outcome = registry.reload()
    assert outcome.added == ("a",) and _targets(registry)["a"] == "aws-asg:free"


def test_a_rejected_edit_frees_nothing_for_a_third_policy(tmp_path: Path) -> None:
    # a: x -> y while b: y -> broken. b keeps y (its last good version), so a's move onto y
    # is rejected too, and a keeps x.
    _write(tmp_path / "a.yaml", _on("a", "x"))
    _write(tmp_path / "b.yaml", _on("b", "y"))
    registry = PolicyRegistry([str(tmp_path)])
    registry.reload()
    _write(tmp_path / "a.yaml", _on("a", "y"))
    _write(tmp_path / "b.yaml", "name: b\nmin: nope\n")
    registry.reload()
    assert _targets(registry) == {"a": "aws-asg:x", "b": "aws-asg:y"}


def test_moves_that_chain_are_applied_together(tmp_path: Path) -> None:
    # a: x -> y and b: y -> z in one reload: both are valid together.
    _write(tmp_path / "a.yaml", _on("a", "x"))
    _write(tmp_path / "b.yaml", _on("b", "y"))
    registry = PolicyRegistry([str(tmp_path)])
    registry.reload()
    _write(tmp_path / "a.yaml", _on("a", "y"))
    _write(tmp_path / "b.yaml", _on("b", "z"))
    outcome = registry.reload()
    assert _targets(registry) == {"a": "aws-asg:y", "b": "aws-asg:z"}
    assert outcome.problems == ()


def test_a_rejected_move_undoes_the_moves_that_depended_on_it(tmp_path: Path) -> None:
    # a: x -> y depends on b leaving y; b's move onto c's target z is rejected, so b stays
    # on y and a must stay on x: never two policies on one target.
    _write(tmp_path / "a.yaml", _on("a", "x"))
    _write(tmp_path / "b.yaml", _on("b", "y"))
    _write(tmp_path / "c.yaml", _on("c", "z"))
    registry = PolicyRegistry([str(tmp_path)])
    registry.reload()
    _write(tmp_path / "a.yaml", _on("a", "y"))
    _write(tmp_path / "b.yaml", _on("b", "z"))
    outcome = registry.reload()
    assert _targets(registry) == {"a": "aws-asg:x", "b": "aws-asg:y", "c": "aws-asg:z"}
    assert sorted(Path(f).name for f in outcome.kept) == ["a.yaml", "b.yaml"]


def test_no_reload_ever_leaves_two_enabled_policies_on_one_target(tmp_path: Path) -> None:
    names = ["a", "b", "c"]
    targets = ["x", "y", "z"]
    for name, target in zip(names, targets, strict=True):
        _write(tmp_path / f"{name}.yaml", _on(name, target))
    registry = PolicyRegistry([str(tmp_path)])
    registry.reload()
    # Every combination of moves, renames and breakages, reloaded one after the other.
    edits = [_on(n, t) for n in [*names, "d"] for t in targets] + ["min: [\n"]
    for i in range(200):
        for j, name in enumerate(names):
            _write(tmp_path / f"{name}.yaml", edits[(i * 7 + j * 13 + i * j) % len(edits)])
        registry.reload()
        enabled = [p for p in registry.policies() if p.enabled]
        assert len({str(p.target) for p in enabled}) == len(enabled)
        assert len({p.name for p in registry.policies()}) == len(registry.policies())


def _with_template(asg: str, team: str | None) -> str:
    """Policy `p` on `asg`, and (unless `team` is None) a template for ASGs tagged `team`."""
    text = "- " + _on("p", asg).replace("\n", "\n  ").rstrip() + "\n"
    if team is not None:
        text += (
            f'- name: "t-{{asg}}"\n  for_each: {{aws_asg: {{tags: {{team: {team}}}}}}}\n'
            "  min: 1\n  max: 10\n  checks:\n    - {name: c, strategy: fixed, count: 2}\n"
        )
    return text


@pytest.mark.parametrize("team", ["b", None], ids=["template-changed", "template-removed"])
@pytest.mark.parametrize("discovery", [True, False], ids=["discovery", "files-only"])
def test_a_file_rejected_for_a_collision_keeps_its_last_good_templates(
    tmp_path: Path, team: str | None, discovery: bool
) -> None:
    # x.yaml's edit moves `p` onto y.yaml's target: the whole file keeps its last good
    # version, its template (team=a) too, and discovery is never asked for the new one.
    _write(tmp_path / "x.yaml", _with_template("one", "a"))
    _write(tmp_path / "y.yaml", _on("q", "two"))
    asked: list[list[str]] = []

    def discover(templates: Sequence[Template]) -> tuple[list[FileLoad], list[Problem]]:
        asked.append([t.describe() for t in templates])
        return [], []

    registry = PolicyRegistry([str(tmp_path)], discover=discover if discovery else None)
    registry.reload()
    _write(tmp_path / "x.yaml", _with_template("two", team))
    outcome = registry.reload()
    assert outcome.kept == (str(tmp_path / "x.yaml"),)
    (problem,) = outcome.problems
    assert "already scaled by policy 'q'" in problem.message
    assert [t.describe() for t in registry.templates()] == ["t-{asg} (aws_asg tags team=a)"]
    assert asked == ([["t-{asg} (aws_asg tags team=a)"]] * 2 if discovery else [])
    registry.refresh()  # held back again: the collision is still there
    assert [t.describe() for t in registry.templates()] == ["t-{asg} (aws_asg tags team=a)"]

    _write(tmp_path / "y.yaml", _on("q", "three"))  # the collision is gone: x's edit is in
    outcome = registry.reload()
    assert outcome.kept == () and outcome.problems == ()
    expected = [] if team is None else ["t-{asg} (aws_asg tags team=b)"]
    assert [t.describe() for t in registry.templates()] == expected
    assert not discovery or asked[-1] == expected


def test_a_template_replaced_by_a_policy_on_its_own_target_in_one_edit_is_accepted(
    tmp_path: Path,
) -> None:
    # x.yaml's template scales ASG `web`; the edit writes an explicit policy for `web` in
    # its place. Settled against what runs (the template's own policy for `web`), the file
    # collided with itself and was held back at every reload.
    x = tmp_path / "x.yaml"
    _write(x, _with_template("one", "a"))
    expanded = Located(load_text(_on("t-web", "web"), str(x))[0], 1)

    def discover(templates: Sequence[Template]) -> tuple[list[FileLoad], list[Problem]]:
        return ([FileLoad(f"{DISCOVERED}aws/web@x", [expanded], [])] if templates else []), []

    registry = PolicyRegistry([str(tmp_path)], discover=discover)
    registry.reload()
    assert sorted(_targets(registry)) == ["p", "t-web"]
    _write(
        x,
        "- "
        + _on("p", "one").replace("\n", "\n  ").rstrip()
        + "\n- "
        + _on("web", "web").replace("\n", "\n  ").rstrip()
        + "\n",
    )
    outcome = registry.reload()
    assert outcome.kept == () and outcome.problems == ()
    assert sorted(_targets(registry)) == ["p", "web"]


def test_a_file_held_back_only_once_discovery_is_settled_keeps_its_last_good_templates(
    tmp_path: Path,
) -> None:
    # Against what runs, x's move onto `u` is free (n's policy is not loaded: a discovered
    # policy holds its name); that discovered target is gone, n's policy takes `u`, and x is
    # held back after all: settled again, with its last good template.
    running = Located(load_text(_on("n", "t"), "discovered:t")[0], 1)
    asked: list[list[str]] = []

    def discover(templates: Sequence[Template]) -> tuple[list[FileLoad], list[Problem]]:
        asked.append([t.describe() for t in templates])
        return ([FileLoad("discovered:t", [running], [])] if len(asked) == 1 else []), []

    _write(tmp_path / "x.yaml", _with_template("one", "a"))
    registry = PolicyRegistry([str(tmp_path)], discover=discover)
    registry.reload()
    _write(tmp_path / "n.yaml", _on("n", "u"))
    _write(tmp_path / "x.yaml", _with_template("u", "b"))
    outcome = registry.reload()
    assert _targets(registry) == {"n": "aws-asg:u", "p": "aws-asg:one"}
    assert outcome.kept == (str(tmp_path / "x.yaml"),)
    assert [t.describe() for t in registry.templates()] == ["t-{asg} (aws_asg tags team=a)"]
    assert [a[0][-7:] for a in asked] == ["team=a)", "team=b)", "team=a)"]
    (problem,) = outcome.problems
    assert "already scaled by policy 'n'" in problem.message


def test_a_warning_is_logged_when_its_file_is_read_not_again_at_each_reload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A valid policy with a warning (a `fallback` that `on_missing_data: hold` ignores)
    loads; its warning is listed while it lasts, and logged when new only."""
    ignored = _policy("web").replace("checks:", "fallback: {after: 3, count: 4}\nchecks:")
    _write(tmp_path / "web.yaml", ignored)
    registry = PolicyRegistry([str(tmp_path)])
    with caplog.at_level(logging.WARNING, logger="autoscaler.registry"):
        first = registry.reload()
        registry.reload()
        registry.refresh()
        _write(tmp_path / "api.yaml", _policy("api"))
        third = registry.reload()
    said = [(r.levelname, r.message) for r in caplog.records if "fallback" in r.message]
    assert said == [
        (
            "WARNING",
            f"policy file {tmp_path / 'web.yaml'}:5: fallback: warning: ignored while "
            "on_missing_data is hold (the default): the policy holds without data; write "
            "`on_missing_data: fallback` to use it, or remove it",
        )
    ]
    assert first.added == ("web",) and first.problems == ()
    assert [(w.line, w.field) for w in third.warnings] == [(5, "fallback")]
    assert registry.warnings() == list(third.warnings)

    _write(tmp_path / "web.yaml", _policy("web"))  # fixed: the warning goes
    assert registry.reload().warnings == ()
    assert registry.warnings() == []
