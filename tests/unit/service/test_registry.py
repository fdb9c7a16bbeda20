"""The live policy set: reloads swap in valid files, and a broken file keeps its last good
version (with its problems reported) until it is fixed or removed."""

from __future__ import annotations

import os
from pathlib import Path

from autoscaler.service.registry import PolicyRegistry


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
