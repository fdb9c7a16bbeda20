"""The Docker image's ENTRYPOINT and CMD, run as the container runs them: as PID 1 of a PID
namespace of their own (`unshare --pid`, as root), with the image's variables.

The kernel drops a signal sent to a namespace's PID 1 that has no handler for it (only
SIGKILL and SIGSTOP from an ancestor namespace get through). With the service itself as
PID 1, a SIGTERM in its first half second, before Python had installed its handlers, was
lost and `docker stop` waited its whole timeout for the SIGKILL. tini, as PID 1, hands the
signal to the service. No docker here: the Dockerfile's own lines are run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.net import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[3]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _json_line(instruction: str) -> list[str]:
    found = re.search(rf"^{instruction} (\[.*\])$", DOCKERFILE, re.M)
    assert found is not None, f"no {instruction} [...] in the Dockerfile"
    words: list[str] = json.loads(found.group(1))
    return words


COMMAND = _json_line("ENTRYPOINT") + _json_line("CMD")
UNSHARE = shutil.which("unshare")


def _can_unshare() -> bool:
    if UNSHARE is None:
        return False
    done = subprocess.run([UNSHARE, "--pid", "--fork", "true"], capture_output=True, check=False)
    return done.returncode == 0


needs_pid_namespace = pytest.mark.skipif(
    not _can_unshare(), reason="needs `unshare --pid` (root) to run a process as PID 1"
)


def _image_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """This environment with the image's variables, its folders moved under `tmp_path`, the
    API off unless `overrides` say otherwise, and `autoscaler` (this checkout's) on PATH."""
    policies = tmp_path / "policies"
    policies.mkdir(exist_ok=True)
    bin_dir = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "AUTOSCALER_POLICIES": str(policies),
        "AUTOSCALER_STATE": str(tmp_path / "autoscaler-state.db"),
        "AUTOSCALER_LISTEN": "",
        "AUTOSCALER_PROMETHEUS_URL": "http://127.0.0.1:9",  # nothing listens: fine for this
        **overrides,
    }


def _pid_1(unshare: int, unshare_exe: str) -> int | None:
    """The host PID of `unshare`'s child (PID 1 inside) once it runs another program."""
    try:
        children = Path(f"/proc/{unshare}/task/{unshare}/children").read_text().split()
        running = os.readlink(f"/proc/{children[0]}/exe") if children else None
    except OSError:  # gone
        return None
    return int(children[0]) if running is not None and running != unshare_exe else None


@contextmanager
def _as_pid_1(env: Mapping[str, str], log: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The image's command as PID 1 of a new PID namespace: (unshare's process, the host PID
    of PID 1), returned once PID 1 runs the command (no longer unshare's own code)."""
    assert UNSHARE is not None
    program = Path(COMMAND[0])
    assert not program.is_absolute() or program.exists(), f"no {program}: run scripts/bootstrap"
    unshare_exe = os.path.realpath(UNSHARE)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [UNSHARE, "--pid", "--fork", "--kill-child", *COMMAND],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 10
        while (pid := _pid_1(proc.pid, unshare_exe)) is None:
            assert proc.poll() is None and time.monotonic() < deadline, "PID 1 never ran"
            time.sleep(0.001)
        yield proc, pid
    finally:
        if proc.poll() is None:
            proc.kill()  # --kill-child: PID 1 gets a SIGKILL with it
        proc.wait(10)


def _takes_sigterm(pid: int) -> bool:
    """Whether `pid` blocks or catches SIGTERM (then the kernel keeps it for the process)."""
    status = dict(
        line.split(":\t", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith(("SigBlk:", "SigCgt:"))
    )
    bit = 1 << (signal.SIGTERM - 1)
    return bool((int(status["SigBlk"], 16) | int(status["SigCgt"], 16)) & bit)


# The service takes 0.7 to 1 s here from exec to its SIGTERM handler (interpreter, imports);
# tini blocks every signal within a millisecond of its exec.
EARLY = 0.25


@needs_pid_namespace
def test_a_sigterm_in_the_first_moments_stops_the_container(tmp_path: Path) -> None:
    """Sent as soon as PID 1 takes SIGTERM, or `EARLY` s after it runs the image's command
    if it does not by then: without an init that was lost, and the service ran on (as
    `docker stop` sees it, for its whole timeout, then a SIGKILL)."""
    log = tmp_path / "container.log"
    with _as_pid_1(_image_env(tmp_path), log) as (proc, pid):
        deadline = time.monotonic() + EARLY
        while not _takes_sigterm(pid) and time.monotonic() < deadline:
            time.sleep(0.001)
        os.kill(pid, signal.SIGTERM)
        try:
            code = proc.wait(5)
        except subprocess.TimeoutExpired:
            pytest.fail(f"PID 1 ignored the SIGTERM: still running 5 s later\n{log.read_text()}")
    # The service had no handler yet: SIGTERM's default action ended it, and tini says so.
    assert code == 128 + signal.SIGTERM, log.read_text()


@needs_pid_namespace
def test_a_sigterm_once_running_stops_it_gracefully_with_exit_0(tmp_path: Path) -> None:
    log = tmp_path / "container.log"
    with _as_pid_1(_image_env(tmp_path), log) as (proc, pid):
        wait_until(lambda: "running 0 policies" in log.read_text(), timeout=20)
        os.kill(pid, signal.SIGTERM)
        assert proc.wait(10) == 0, log.read_text()
    assert "stopped" in log.read_text().lower()


@needs_pid_namespace
def test_the_services_exit_code_is_the_containers(tmp_path: Path) -> None:
    """The API on every interface without a token: the service exits 4, and so does PID 1."""
    log = tmp_path / "container.log"
    env = _image_env(tmp_path, AUTOSCALER_LISTEN="0.0.0.0:0")
    with _as_pid_1(env, log) as (proc, _pid):
        assert proc.wait(20) == 4, log.read_text()
    assert "AUTOSCALER_API_TOKEN_FILE" in log.read_text()
