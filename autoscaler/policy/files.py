"""Paths given on the command line or in the config -> the policy files they name.

A folder names its `*.yaml` and `*.yml` files (not recursive); two names for one file
name it once. Kept apart from the loader because the service's registry reads the same
list of files to watch them, without loading them all again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from autoscaler.errors import Problem

__all__ = ["expand_paths", "from_where"]


def expand_paths(paths: Sequence[str | Path], problems: list[Problem]) -> list[Path]:
    """The policy files named by `paths` (folders: their `*.yaml`/`*.yml`), each once.

    A path that does not exist adds a problem to `problems`.
    """
    found: list[tuple[Path, str]] = []  # (as given, resolved)
    for given in paths:
        path = Path(given)
        try:
            is_dir, is_file = path.is_dir(), path.is_file()
        except OSError as exc:  # a folder on the way that cannot be entered
            message = f"cannot be reached: {exc.strerror or exc} (check the folders' permissions)"
            problems.append(Problem(str(path), 1, "(file)", message))
            continue
        if is_dir:
            found.extend(_folder_files(path))
        elif is_file:
            found.append((path, str(path.resolve())))
        else:
            message = "no such file or folder" + from_where([path])
            problems.append(Problem(str(path), 1, "(file)", message))
    unique: dict[str, Path] = {}
    for path, resolved in found:
        unique.setdefault(resolved, path)
    return list(unique.values())


def from_where(paths: Sequence[str | Path]) -> str:
    """` (a relative path is taken from the working directory, DIR)` when some of `paths`
    is relative, else nothing: to end a "no such file" message with, since a config
    file's `policies: [policies]` is not taken from the file's folder, and under systemd
    the working directory is `/`."""
    if all(Path(p).is_absolute() for p in paths):
        return ""
    return f" (a relative path is taken from the working directory, {os.getcwd()})"


def _folder_files(folder: Path) -> list[tuple[Path, str]]:
    """The `*.yaml`/`*.yml` files of `folder` by name, each with its resolved path.

    One directory read and one `resolve` of the folder, not a `stat` and a `resolve` per
    file (a third of `validate`'s time at 10,000 files): only links are resolved one by one.
    A resolved path is kept as text (what `str` of the resolved `Path` gives), only to
    tell when two names lead to one file.
    """
    with os.scandir(folder) as scan:
        entries = sorted(
            (entry for entry in scan if os.path.splitext(entry.name)[1] in (".yaml", ".yml")),
            key=lambda entry: entry.name,
        )
    real = str(folder.resolve())
    return [
        (
            folder / e.name,
            str((folder / e.name).resolve()) if e.is_symlink() else os.path.join(real, e.name),
        )
        for e in entries
        if e.is_file()
    ]
