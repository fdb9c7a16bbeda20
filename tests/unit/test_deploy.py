"""What ships: the lock file pins every dependency CI installs, the Docker image installs
with it and checks its own health on `/readyz`, and the README's Nomad job hands the
secret files to the image's user."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import hcl2
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from autoscaler.cli import healthcheck

ROOT = Path(__file__).parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
README = (ROOT / "README.md").read_text()
EXTRAS = ("plot", "test")  # what scripts/lock resolves besides the runtime dependencies


def _pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not NAME==VERSION"
            pins[canonicalize_name(name)] = version
    return pins


def _needed(name: str, extras: frozenset[str], seen: set[tuple[str, str]]) -> Iterator[str]:
    """`name` and everything it needs with `extras`, for this Python (markers evaluated)."""
    key = (canonicalize_name(name), ",".join(sorted(extras)))
    if key in seen:
        return
    seen.add(key)
    yield key[0]
    for text in metadata.requires(name) or []:
        requirement = Requirement(text)
        wanted = requirement.marker is None or any(
            requirement.marker.evaluate({"extra": extra}) for extra in (extras or {""})
        )
        if wanted:
            yield from _needed(requirement.name, frozenset(requirement.extras), seen)


def _closure() -> set[str]:
    return set(_needed("autoscaler", frozenset(EXTRAS), set())) - {"autoscaler"}


def test_every_dependency_is_pinned_in_the_lock_file() -> None:
    missing = sorted(_closure() - set(_pins()))
    assert missing == [], f"not in constraints.txt: {missing}; run scripts/lock"


def test_the_installed_versions_are_the_pinned_ones() -> None:
    """scripts/bootstrap installs with `-c constraints.txt`: CI tests what the image ships."""
    pins = _pins()
    drift = {
        name: (metadata.version(name), pins[name])
        for name in sorted(_closure() & set(pins))
        if metadata.version(name) != pins[name]
    }
    assert drift == {}, "installed != pinned; run scripts/bootstrap (or scripts/lock)"


def test_the_pins_satisfy_what_pyproject_asks_for() -> None:
    pins = _pins()
    for text in metadata.requires("autoscaler") or []:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name in pins:
            assert requirement.specifier.contains(pins[name], prereleases=True), text


def _build_requires() -> list[Requirement]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [Requirement(text) for text in pyproject["build-system"]["requires"]]


def test_the_image_builds_with_the_pinned_build_backend() -> None:
    """pip applies `-c` constraints to nothing it installs in an isolated build environment:
    the image built the package with the newest setuptools pyproject.toml allowed on the
    day (one that dropped a deprecated `pyproject.toml` form would break the build).
    The backend is pinned with the rest, installed at its pin, and the build is not
    isolated."""
    pins = _pins()
    build = DOCKERFILE.partition(" AS build\n")[2].partition("\nFROM ")[0]
    for requirement in _build_requires():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement}: not in constraints.txt; run scripts/lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), requirement
        assert re.search(rf"pip install --no-cache-dir -c constraints\.txt .*\b{name}\b", build)
    wheel = re.search(r"pip wheel (.*) \.$", build, re.M)
    assert wheel is not None
    assert "--no-build-isolation" in wheel.group(1).split()


def test_ci_and_the_image_install_with_the_lock_file() -> None:
    bootstrap = (ROOT / "scripts" / "bootstrap").read_text()
    assert re.search(r"pip install .*-c constraints\.txt -e '\.\[test\]'", bootstrap)
    assert "COPY pyproject.toml README.md constraints.txt" in DOCKERFILE
    assert (
        "pip wheel --no-cache-dir --no-build-isolation --wheel-dir /wheels -c constraints.txt ."
        in DOCKERFILE
    )
    assert re.search(r"pip install .*--no-index .*-c /tmp/constraints\.txt autoscaler", DOCKERFILE)
    assert (ROOT / "scripts" / "lock").stat().st_mode & 0o111


def test_the_image_checks_its_health_on_readyz_with_python_itself() -> None:
    match = re.search(r"^HEALTHCHECK (.*?) \\\n\s+CMD (\[.*\])$", DOCKERFILE, re.M)
    assert match is not None
    options, command = match.groups()
    assert command == '["python", "-m", "autoscaler.cli.healthcheck"]'
    timeout = re.search(r"--timeout=(\d+)s", options)
    assert timeout is not None
    assert int(timeout.group(1)) > healthcheck.TIMEOUT  # our own timeout answers first
    assert "AUTOSCALER_LISTEN=0.0.0.0:8080" in DOCKERFILE
    assert healthcheck.readyz_url("0.0.0.0:8080") == "http://127.0.0.1:8080/readyz"


def _json_instruction(name: str) -> list[str]:
    found = re.findall(rf"^{name} (\[.*\])$", DOCKERFILE, re.M)
    assert len(found) == 1, f"one {name} [...] (exec form) in the Dockerfile"
    words: list[str] = json.loads(found[0])
    return words


def test_the_image_runs_the_service_under_tini_as_pid_1() -> None:
    """The kernel drops a signal sent to PID 1 without a handler for it: as PID 1 itself,
    the service lost a SIGTERM sent before Python had installed its handlers. tini (from
    Debian's package, in the final stage) hands it every signal; the CMD is unchanged, so
    `docker run IMAGE validate ...` still runs `autoscaler validate ...`. The integration
    test tests/integration/service/test_container_init.py runs these lines as PID 1."""
    final = DOCKERFILE.rpartition("\nFROM ")[2]
    assert re.search(r"apt-get install -y --no-install-recommends tini \\\n", final)
    assert "rm -rf /var/lib/apt/lists/*" in final
    assert _json_instruction("ENTRYPOINT") == ["/usr/bin/tini", "--", "autoscaler"]
    assert _json_instruction("CMD") == ["run"]


def _image_uid() -> int:
    found = re.search(r"useradd .*--uid (\d+)", DOCKERFILE)
    assert found is not None
    gid = re.search(r"groupadd .*--gid (\d+)", DOCKERFILE)
    assert gid is not None and gid.group(1) == found.group(1)
    return int(found.group(1))


def _nomad_templates() -> list[dict[str, Any]]:
    """Every template of every Nomad job in the README (the single-instance job, and the
    HA job's own: its pg-password was rendered root-only, and both replicas exited 4)."""
    templates: list[dict[str, Any]] = []
    for text in re.findall(r"```hcl\n(.*?)```", README, re.S):
        if "template {" not in text:
            continue
        job = hcl2.loads(text)
        for group in job["job"][0]['"autoscaler"']["group"]:
            for task in next(iter(group.values()))["task"]:
                templates += list(next(iter(task.values())).get("template", []))
    return templates


def _unquote(value: Any) -> Any:
    return value.strip('"') if isinstance(value, str) else value


@pytest.mark.parametrize("template", _nomad_templates(), ids=lambda t: _unquote(t["destination"]))
def test_the_nomad_job_gives_each_template_to_the_images_user(template: dict[str, Any]) -> None:
    """Nomad renders templates as root: without uid/gid, a 0400 secret is unreadable by the
    image's non-root user and the task exits 4 at startup."""
    uid = _image_uid()
    assert (template.get("uid"), template.get("gid")) == (uid, uid)
    perms = int(_unquote(template["perms"]), 8)
    assert perms & 0o400, "the owner (the image's user) must be able to read it"
    if _unquote(template["destination"]).startswith("secrets/"):
        assert perms & 0o077 == 0, "a secret is for its owner only"
