"""`autoscaler convert`: Nomad Autoscaler policies (HCL) -> our policy YAML, moving over.

Reads Nomad Autoscaler policy files (`scaling "name" { policy { ... } }`) and Nomad job
files (group `scaling` blocks), and writes one YAML document per policy. Everything that
cannot be carried over, or not exactly, is one line on stderr (`FILE: WHERE: not carried:
...`) and a `# not carried:` comment above the policy it concerns. The YAML written is
validated as `autoscaler validate` would.

Exit codes: 0 every policy converted (lines on stderr may say what differs); 1 a file is
not HCL, holds no scaling policy, or a policy could not be converted into a valid one
(nothing is written for that policy); 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import yaml

from autoscaler.cli import help_text
from autoscaler.errors import PolicyError
from autoscaler.policy.loader import load_text

if TYPE_CHECKING:
    from autoscaler.policy.nomad_hcl import Converted

EXIT_OK, EXIT_INCOMPLETE = 0, 1


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
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    """Run `autoscaler convert` with parsed arguments; returns the exit code."""
    documents: list[str] = []
    ok = True
    for file in args.files:
        ok = _convert_file(file, documents, sys.stderr) and ok
    text = "---\n".join(documents)
    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            print(
                f"error: {args.output}: cannot write the YAML: {exc.strerror or exc}",
                file=sys.stderr,
            )
            return EXIT_INCOMPLETE
    else:
        sys.stdout.write(text)
    return EXIT_OK if ok else EXIT_INCOMPLETE


def _convert_file(file: str, documents: list[str], err: TextIO) -> bool:
    """Append the YAML of each policy in `file`; False when something could not be."""
    try:
        text = Path(file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"{file}: cannot read the file: {exc}", file=err)
        return False
    # Imported here: only `convert` reads HCL, and every command builds this parser.
    from autoscaler.policy.nomad_hcl import convert_hcl  # noqa: PLC0415

    try:
        converted = convert_hcl(text)
    except ValueError as exc:
        print(f"{file}: {exc}", file=err)
        return False
    ok = True
    for policy in converted:
        document = _document(file, policy, err)
        if document is None:
            ok = False
        else:
            documents.append(document)
    return ok


def _document(file: str, converted: Converted, err: TextIO) -> str | None:
    """The YAML document of one converted policy, or None (with why on `err`)."""
    done = converted.translation
    where = f"{file}: {converted.where}"
    for error in done.errors:
        print(f"{where}: cannot convert: {error}", file=err)
    if done.errors:
        return None
    lines = [f"check {name!r}: {reason}" for name, _, reason in done.unsupported]
    not_carried = lines + done.notes
    for line in not_carried:
        print(f"{where}: not carried: {line}", file=err)
    body = yaml.safe_dump(done.data, sort_keys=False, allow_unicode=True, width=100)
    header = [f"# Converted from {converted.where} in {file} by autoscaler convert."]
    header += [f"# not carried: {line}" for line in not_carried]
    document = "\n".join(header) + "\n" + body
    try:
        load_text(document, f"{file} ({converted.where})")
    except PolicyError as exc:
        for problem in exc.problems:
            print(
                f"{where}: the converted policy is not valid: {problem.field}: {problem.message}",
                file=err,
            )
        return None
    return document
