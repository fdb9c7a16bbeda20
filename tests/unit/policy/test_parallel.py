"""Reading many policy files on several processes: the same result as one by one, in the
same order, and a failed worker costs only time."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from typing import Any, cast

import pytest

from autoscaler.policy import parallel
from autoscaler.policy.loader import load_paths
from autoscaler.policy.parallel import _shares, map_files

POLICY = """\
name: web{i}
target: {{type: nomad, job: job{i}, group: web}}
min: 1
max: 5
checks:
  - {{name: c, strategy: fixed, count: 2}}
"""


@pytest.fixture
def few_is_many(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fork workers from 10 files on, so the tests need not write a thousand."""
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 10)


def write_files(folder: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        path = folder / f"p{i:03}.yaml"
        path.write_text(POLICY.format(i=i))
        paths.append(path)
    return paths


@pytest.mark.usefixtures("few_is_many")
def test_files_read_by_workers_give_what_reading_them_one_by_one_gives(tmp_path: Path) -> None:
    write_files(tmp_path, 40)
    (tmp_path / "p007.yaml").write_text("name: web7\nmin: x\n")  # broken: its problems
    (tmp_path / "p031.yaml").write_text(POLICY.format(i=3))  # web3 again: a duplicate

    one = load_paths([tmp_path])
    three = load_paths([tmp_path], workers=3)

    assert three.policies == one.policies
    assert [p.name for p in three.policies][:8] == [f"web{i}" for i in (0, 1, 2, 3, 4, 5, 6, 8)]
    assert three.problems == one.problems
    assert any(p.file.endswith("p031.yaml") and "web3" in p.message for p in three.problems)
    assert any(p.file.endswith("p007.yaml") for p in three.problems)
    assert three.files == one.files


@pytest.mark.usefixtures("few_is_many")
def test_shares_are_read_in_other_processes_and_come_back_in_order(tmp_path: Path) -> None:
    paths = write_files(tmp_path, 30)

    def whose(path: Path) -> tuple[str, int]:
        return path.name, os.getpid()

    got = map_files(whose, tuple, paths, workers=2)

    assert [name for name, _ in got] == [p.name for p in paths]
    pids = {pid for _, pid in got}
    assert os.getpid() in pids
    assert len(pids) == 2


@pytest.mark.usefixtures("few_is_many")
def test_a_worker_that_dies_has_its_share_read_again_here(tmp_path: Path) -> None:
    paths = write_files(tmp_path, 30)
    parent = os.getpid()

    def dies_in_a_worker(path: Path) -> str:
        if os.getpid() != parent:
            os._exit(3)
        return path.name

    assert map_files(dies_in_a_worker, str, paths, workers=3) == [p.name for p in paths]


@pytest.mark.usefixtures("few_is_many")
def test_a_worker_sending_the_wrong_kind_has_its_share_read_again_here(tmp_path: Path) -> None:
    paths = write_files(tmp_path, 30)
    parent = os.getpid()

    def wrong_in_a_worker(path: Path) -> str:
        return path.name if os.getpid() == parent else cast(str, 42)  # the wrong kind

    assert map_files(wrong_in_a_worker, str, paths, workers=2) == [p.name for p in paths]


def test_few_files_are_read_here_without_forking(tmp_path: Path) -> None:
    paths = write_files(tmp_path, 5)

    def whose(path: Path) -> int:
        return os.getpid()

    assert set(map_files(whose, int, paths, workers=4)) == {os.getpid()}


@pytest.mark.parametrize(("count", "workers"), [(1000, 2), (10_000, 2), (1001, 3), (4000, 4)])
def test_shares_cover_every_file_once_in_order_in_equal_parts(count: int, workers: int) -> None:
    shares = _shares(count, workers)

    assert len(shares) == workers
    assert shares[0][0] == 0
    assert shares[-1][1] == count
    assert all(a[1] == b[0] for a, b in itertools.pairwise(shares))
    sizes = [end - start for start, end in shares]
    assert max(sizes) - min(sizes) <= 1


def test_default_workers_is_between_one_and_four() -> None:
    assert 1 <= parallel.default_workers() <= 4


@pytest.mark.usefixtures("few_is_many")
def test_an_interrupted_read_leaves_no_worker_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = write_files(tmp_path, 30)
    parent = os.getpid()
    spawned: list[int] = []
    spawn = parallel._spawn

    def recorded(*args: Any) -> tuple[int, int] | None:
        child = spawn(*args)
        assert child is not None
        spawned.append(child[0])
        return child

    monkeypatch.setattr(parallel, "_spawn", recorded)

    def stops_here(path: Path) -> str:
        if os.getpid() == parent:
            raise KeyboardInterrupt
        return path.name

    with pytest.raises(KeyboardInterrupt):
        map_files(stops_here, str, paths, workers=3)
    assert len(spawned) == 2
    for pid in spawned:
        with pytest.raises(ChildProcessError):  # reaped: no longer our child
            os.waitpid(pid, os.WNOHANG)


@pytest.mark.usefixtures("few_is_many")
def test_a_worker_sending_too_few_results_has_its_share_read_again_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = write_files(tmp_path, 30)
    spawn = parallel._spawn

    def short(read: Any, share: Any) -> tuple[int, int] | None:
        return spawn(read, share[:-1])  # one result missing

    monkeypatch.setattr(parallel, "_spawn", short)

    assert map_files(lambda p: p.name, str, paths, workers=3) == [p.name for p in paths]


def test_only_linux_reads_with_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")  # the `sys` that `parallel` reads
    assert parallel.default_workers() == 1
