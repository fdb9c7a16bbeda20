"""Paths given on the command line or in the config -> the policy files they name.

A folder names its `*.yaml` and `*.yml` files (not recursive), links to nothing included
(the loader says it cannot read them); two names for one file name it once. Kept apart
from the loader because the service's registry reads the same list of files to watch
them, without loading them all again.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

from autoscaler.errors import Problem

__all__ = ["dangling", "expand_paths", "from_where"]


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
            message = dangling(path) or "no such file or folder" + from_where([path])
            problems.append(Problem(str(path), 1, "(file)", message))
    unique: dict[str, Path] = {}
    for path, resolved in found:
        unique.setdefault(resolved, path)
    return list(unique.values())


def dangling(path: Path) -> str | None:
    """`a symbolic link to TARGET, which does not exist` when `path` is a link whose target
    (at the end of its chain) is missing, else None: what to say instead of `No such file
    or directory` about a path that is there."""
    try:
        target = os.readlink(path)
    except OSError:  # not a link, or gone meanwhile
        return None
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # asked first: `resolve` raises on a loop only before 3.13
            return f"a symbolic link to {target}, in a loop of links that leads to no file"
    try:
        final = path.resolve()  # the chain followed as far as it goes
    except (OSError, RuntimeError):  # gone meanwhile, or a loop made meanwhile
        return None
    if os.path.exists(final):
        return None
    shown = target if str(final) == target else f"{target} ({final})"
    return f"a symbolic link to {shown}, which does not exist"


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
    found = []
    for e in entries:
        path = folder / e.name
        try:
            is_file = e.is_file()
        except OSError:  # a loop of links (ELOOP): no folder, so meant as a file
            is_file = False
        if is_file:
            resolved = str(path.resolve()) if e.is_symlink() else os.path.join(real, e.name)
            found.append((path, resolved))
        elif e.is_symlink() and not os.path.exists(path) and not e.name.startswith(".#"):
            # A link to nothing (its target deleted, or not mounted yet) or a loop is a
            # file its author meant to be read: the loader says it cannot be, as for an
            # unreadable one, rather than its policies vanishing without a word. Not
            # Emacs's lock of a file being edited (`.#web.yaml`, a link to `user@host.PID`
            # that is never a file): it comes and goes with every unsaved edit.
            found.append((path, str(path)))
    return found
