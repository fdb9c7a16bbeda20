"""`autoscaler convert`: Nomad Autoscaler policies (HCL) -> our policy YAML, moving over.

Reads Nomad Autoscaler policy files (`scaling "name" { policy { ... } }`) and Nomad job
files (group `scaling` blocks), and writes one YAML document per policy. Everything that
cannot be carried over, or not exactly, is one line on stderr (`FILE: WHERE: not carried:
...`) and a `# not carried:` comment above the policy it concerns. The YAML written is
validated as `autoscaler validate` would: each policy, then all of them together (unique
names, one enabled policy per target: the first converted wins).

A policy that would lose a check (another metric source, another strategy, ...) is not
written unless `--allow-dropped-checks` is given: without the check it could scale in on
the others alone, where Nomad Autoscaler (and discovery, which keeps such a check as one
that always fails) would hold.

Exit codes: 0 every policy converted (lines on stderr may say what differs); 1 a file is
not HCL, holds no scaling policy, or a policy could not be converted into a valid one or
would lose a check (nothing is written for that policy); 2 bad usage.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import stat
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from autoscaler.cli import help_text, safe_yaml
from autoscaler.cli.printable import printable
from autoscaler.errors import PolicyError
from autoscaler.policy.conflicts import Claims, Located
from autoscaler.policy.loader import load_text

if TYPE_CHECKING:
    from autoscaler.core.model import Policy
    from autoscaler.policy.nomad_hcl import Converted

EXIT_OK, EXIT_INCOMPLETE = 0, 1


@dataclass(frozen=True)
class _Written:
    """One converted policy's YAML document, its validated policy, and where it came from."""

    file: str
    where: str  # as in Converted
    document: str
    policy: Policy
    converted: Converted


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `convert` on the main parser's subcommands."""
    parser = sub.add_parser(
        "convert",
        **help_text.parser_help("convert"),
        help="turn Nomad Autoscaler policies (HCL policy or job files) into policy YAML",
        description="Convert Nomad Autoscaler policy files and the group `scaling` blocks "
        "of Nomad job files into policy YAML; one line on stderr per thing not carried over.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="HCL files (.hcl, .nomad)")
    parser.add_argument(
        "--output", "-o", metavar="FILE", help="write the YAML here (default: stdout)"
    )
    parser.add_argument(
        "--allow-dropped-checks",
        action="store_true",
        help="write a policy even when a check of it cannot be carried (left out: scale-in "
        "then depends only on the checks carried); without it such a policy is not written",
    )
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Run `autoscaler convert` with parsed arguments; returns the exit code."""
    written: list[_Written] = []
    ok = True
    for file in args.files:
        ok = _convert_file(file, written, sys.stderr, args.allow_dropped_checks) and ok
    kept = _together(written, sys.stderr, allow_dropped=args.allow_dropped_checks)
    ok = ok and len(kept) == len(written)
    text = "---\n".join(done.document for done in kept)
    if args.output:
        if not kept:  # nothing converted: an existing file (a policy in use) is left alone
            _say(f"{args.output}: not written: no policy was converted", file=sys.stderr)
            return EXIT_INCOMPLETE
        try:
            _replace(Path(args.output), text)
        except OSError as exc:
            _say(
                f"error: {args.output}: cannot write the YAML: {exc.strerror or exc}",
                file=sys.stderr,
            )
            return EXIT_INCOMPLETE
    else:
        sys.stdout.write(text)
    return EXIT_OK if ok else EXIT_INCOMPLETE


def _say(line: str, *, file: TextIO) -> None:
    """`line` on `file` (stderr), its control characters escaped (`printable`): the job
    names, labels and queries it quotes come from the HCL files."""
    print(printable(line), file=file)


def _replace(path: Path, text: str) -> None:
    """Write `text` to `path` through a file beside it renamed over it: a reader (the
    controller reloading the folder) sees the old file or the new one, never half.

    Through a symbolic link, the file it points to is replaced (the link stays), with the
    old file's mode and owner (the service's user must still read it); anything but a
    regular file (`/dev/stdout`) is written into as it is."""
    target = Path(os.path.realpath(path))
    try:
        old: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        old = None
    if old is not None and not stat.S_ISREG(old.st_mode):
        target.write_text(text, encoding="utf-8")
        return
    part = target.with_name(f".{target.name}.part")
    try:
        part.write_text(text, encoding="utf-8")
        if old is not None:
            os.chmod(part, stat.S_IMODE(old.st_mode))
            with contextlib.suppress(PermissionError):  # only root may give it away
                os.chown(part, old.st_uid, old.st_gid)
        os.replace(part, target)
    finally:
        part.unlink(missing_ok=True)


def _convert_file(file: str, written: list[_Written], err: TextIO, allow_dropped: bool) -> bool:
    """Append each policy of `file`, converted; False when something could not be."""
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _say(f"{file}: cannot read the file: {exc}", file=err)
        return False
    # Imported here: only `convert` reads HCL, and every command builds this parser.
    from autoscaler.policy.nomad_hcl import convert_hcl  # noqa: PLC0415

    try:
        converted = convert_hcl(text)
    except ValueError as exc:
        _say(f"{file}: {exc}", file=err)
        return False
    ok = True
    for policy in converted:
        done = _document(file, policy, err, allow_dropped=allow_dropped)
        if done is None:
            ok = False
        else:
            written.append(done)
    return ok


def _together(written: list[_Written], err: TextIO, *, allow_dropped: bool) -> list[_Written]:
    """The converted policies that `validate` accepts in one file, in order: a policy whose
    name, or enabled target, an earlier one has is left out (with why on `err`).

    A job's group whose name (`JOB-GROUP`) an earlier policy of the same file has takes
    the name discovery gives it (`JOB.GROUP`) when that one is free: `job "a-b" group "c"`
    and `job "a" group "b-c"` are both `a-b-c`, and converting the file on its own cannot
    part them. Policies that do not collide keep their names."""
    claims = Claims()
    origins: dict[str, _Written] = {}  # policy name -> the policy converted first so named
    kept: list[_Written] = []
    for converted in written:
        done = converted
        clash = claims.rival(Located(done.policy, 1))
        if clash is not None and clash[0] == "name":
            renamed = _renamed(done, origins[clash[1].policy.name], claims, err, allow_dropped)
            if renamed is not None:
                done = renamed
                clash = claims.rival(Located(done.policy, 1))
        if clash is None:
            claims.claim(Located(done.policy, 1))
            origins[done.policy.name] = done
            kept.append(done)
            continue
        rule, rival = clash
        earlier = origins[rival.policy.name]
        first = f"{earlier.where} in {earlier.file}"
        if rule == "name":
            advice = (
                "convert this file on its own and rename one"
                if earlier.file != done.file
                else "give one of them another label in this file"
            )
            why = (
                f"its name '{done.policy.name}' is that of the policy converted from {first}; "
                f"names are unique: {advice}"
            )
        else:
            why = (
                f"{done.policy.target} is already scaled by the policy converted from {first}; "
                "two policies on one target would undo each other: merge their checks into "
                "one policy, or disable one"
            )
        _say(f"{done.file}: {done.where}: cannot convert: {why}", file=err)
    return kept


def _renamed(
    done: _Written, earlier: _Written, claims: Claims, err: TextIO, allow_dropped: bool
) -> _Written | None:
    """`done` under the name discovery gives it, when it collides with `earlier` of its
    own file by name only and that name is free; None otherwise."""
    alias = done.converted.alias
    if earlier.file != done.file or alias is None or alias == done.policy.name:
        return None
    if claims.rival(Located(replace(done.policy, name=alias), 1)) is not None:
        return None
    note = (
        f"named '{alias}' as discovery names it: '{done.policy.name}' is the policy "
        f"converted from {earlier.where}"
    )
    translation = done.converted.translation
    translation.data["name"] = alias
    translation.notes.append(note)
    renamed = _document(done.file, done.converted, io.StringIO(), allow_dropped=allow_dropped)
    if renamed is not None:
        _say(f"{done.file}: {done.where}: not carried: {note}", file=err)
    return renamed


def _document(
    file: str, converted: Converted, err: TextIO, *, allow_dropped: bool
) -> _Written | None:
    """One converted policy as a YAML document, validated; None (with why on `err`).

    A policy that loses a check is None too unless `allow_dropped`: Nomad Autoscaler keeps
    scaling out on that check, and never scales in while it asks for more, so without it
    the other checks alone could scale in where it would hold."""
    done = converted.translation
    where = f"{file}: {converted.where}"
    errors = list(done.errors)
    if done.unsupported and not allow_dropped:
        errors += [
            f"check {name!r}: {reason}; without it the policy could scale in on its other "
            "checks where Nomad Autoscaler would not: give --allow-dropped-checks to "
            "convert it without this check"
            for name, _, reason in done.unsupported
        ]
    for error in errors:
        _say(f"{where}: cannot convert: {error}", file=err)
    if errors:
        return None
    carried = ", ".join(repr(check["name"]) for check in done.data.get("checks", []))
    lines = [
        f"check {name!r}: {reason}; left out (--allow-dropped-checks): scale-in now depends "
        f"only on the checks carried ({carried or 'none'})"
        for name, _, reason in done.unsupported
    ]
    not_carried = lines + done.notes
    for line in not_carried:
        _say(f"{where}: not carried: {line}", file=err)
    # A job's name, a label, a query may hold a bidi override or a C1 control: escaped in
    # the YAML as `plan -o yaml` escapes them (reading back as the same text), and in the
    # comments as in the tables (where a line break would also end the comment).
    body = safe_yaml.dump(done.data, allow_unicode=True, width=100)
    header = [f"# Converted from {converted.where} in {file} by autoscaler convert."]
    header += [f"# not carried: {line}" for line in not_carried]
    document = "\n".join(printable(line) for line in header) + "\n" + body
    try:
        (policy,) = load_text(document, f"{file} ({converted.where})")
    except PolicyError as exc:
        for problem in exc.problems:
            _say(
                f"{where}: the converted policy is not valid: {problem.field}: {problem.message}",
                file=err,
            )
        return None
    return _Written(file, converted.where, document, policy, converted)
