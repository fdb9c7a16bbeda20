"""What `--help` shows after the flags: examples and exit codes, per command.

One table of exit codes per command, so the help, the README and the code agree
(tests/integration/cli/test_config_and_shell.py checks each command's help shows them).
"""

from __future__ import annotations

import argparse
from typing import Any

EXAMPLES: dict[str | None, tuple[str, ...]] = {
    None: (
        "autoscaler validate policies/",
        "autoscaler plan policies/ -o wide",
        "autoscaler run --config /etc/autoscaler/autoscaler.yaml",
        "autoscaler completion bash > /etc/bash_completion.d/autoscaler",
    ),
    "validate": (
        "autoscaler validate policies/",
        "autoscaler validate web.yaml api.yaml --config autoscaler.yaml",
    ),
    "plan": (
        "autoscaler plan policies/ --prometheus-url http://prometheus:9090",
        "autoscaler plan -o json --state /var/lib/autoscaler/state.db | jq '.[].reasons'",
        "autoscaler plan -o wide --config autoscaler.yaml",
        "autoscaler plan --detailed-exitcode || [ $? -eq 2 ]   # CI: fail unless 0 or 2",
    ),
    "run": (
        "autoscaler run policies/ --state /var/lib/autoscaler/state.db",
        "autoscaler run --config /etc/autoscaler/autoscaler.yaml",
        "autoscaler run policies/ --once --dry-run",
    ),
    "schema": (
        "autoscaler schema > policy.schema.json",
        "autoscaler schema --config > config.schema.json",
    ),
    "completion": (
        "autoscaler completion bash > /etc/bash_completion.d/autoscaler",
        'autoscaler completion zsh > "${fpath[1]}/_autoscaler"',
    ),
    "simulate": (
        "autoscaler simulate policies/web.yaml --trace load.csv --capacity 120 --plot web.html",
        "autoscaler simulate --trace load.csv --capacity 0.35 --to 7d   # the recommended policy",
    ),
    "backtest": (
        "autoscaler backtest policies/ --from -7d --prometheus-url http://prometheus:9090",
        "autoscaler backtest policies/web.yaml --from 2026-01-01T00:00:00Z --to -1d -o json",
    ),
    "test": ("autoscaler test policies/tests/*_test.yaml",),
    "convert": (
        "autoscaler convert batch.hcl -o policies/batch.yaml",
        "autoscaler convert jobs/*.nomad.hcl > policies/from-nomad.yaml",
    ),
}

# NOMAD_* variables are Nomad's connection settings, read as the `nomad` CLI reads them: a
# bad one is a configuration problem (4), never a usage error.
_USAGE = (2, "bad usage: a flag, or an AUTOSCALER_* variable, with a bad value")
# Whatever the command found: its output is lost or cut short (`> /dev/full`), which a
# script reading it must not take for any other outcome (`exits.EXIT_OUTPUT`).
_OUTPUT = (5, "the output could not be written (stdout failed, e.g. a full disk)")
EXIT_CODES: dict[str | None, tuple[tuple[int | str, str], ...]] = {
    None: (
        (0, "success"),
        (1, "invalid input (policy files; with `plan --detailed-exitcode`, any)"),
        _USAGE,
        (3, "some policy could not be evaluated"),
        (4, "startup or configuration problem (config file, settings incl. NOMAD_*, state)"),
        _OUTPUT,
    ),
    "validate": (
        (0, "every policy file is valid (warnings, FILE:LINE: FIELD: warning:, fail nothing)"),
        (1, "some policy file or the config file is invalid (one FILE:LINE: FIELD: line each)"),
        ("", "with --discover also: a target's override, a collision, a failing source"),
        _USAGE,
        (4, "with --discover: bad Nomad settings (e.g. NOMAD_SKIP_VERIFY)"),
        _OUTPUT,
    ),
    "plan": (
        (0, "every policy was evaluated (a failed check holds its policy; stderr names it)"),
        (1, "some policy file is invalid (the valid ones are still planned)"),
        _USAGE,
        (3, "some policy could not be evaluated (target unreadable, Prometheus unreachable,"),
        ("", "a discovery source unreadable: its targets are unknown)"),
        (4, "bad config file or settings (NOMAD_* too), or a --state that is not a state db"),
        _OUTPUT,
        ("with --detailed-exitcode (terraform's convention):", ""),
        (0, "no policy would scale"),
        (2, "some policy would scale"),
        (3, "a check, a target or a discovery source failed"),
        (1, "any invalid input: policy or config file, usage, settings"),
    ),
    "run": (
        (0, "stopped by SIGTERM/SIGINT; with --once, every policy was evaluated"),
        (1, "with --once: some policy file is invalid (the valid ones still applied)"),
        _USAGE,
        (3, "with --once: some policy could not be evaluated (a discovery source unreadable"),
        ("", "too), or was skipped on SIGTERM/SIGINT"),
        (4, "startup problem: config file, settings, state database locked or broken,"),
        ("", "token file, listen address, an API beyond loopback without a token, a policy"),
        ("", "path that does not exist"),
        _OUTPUT,
    ),
    "schema": ((0, "the schema is printed"), _USAGE, _OUTPUT),
    "completion": ((0, "the script is printed"), _USAGE, _OUTPUT),
    "simulate": (
        (0, "simulated"),
        (1, "a bad policy file or trace (each problem says FILE[:LINE]: why), or a plot"),
        ("", "that cannot be written"),
        (2, "bad usage (an unknown signal or baseline, a bad number, a --plot name that"),
        ("", "is not .png, .svg or .html)"),
        _OUTPUT,
    ),
    "backtest": (
        (0, "done"),
        (1, "some policy file is invalid or discovery failed (the valid ones are still"),
        ("", "backtested), or the plot cannot be written"),
        (2, "bad usage"),
        (3, "Prometheus unreachable"),
        (4, "bad connection settings"),
        _OUTPUT,
    ),
    "test": (
        (0, "every test passed"),
        (1, "some test failed, or some test file (or a policy file it names) is invalid"),
        (2, "bad usage"),
        _OUTPUT,
    ),
    "convert": (
        (0, "every policy converted (lines on stderr say what differs)"),
        (1, "a file is not HCL or holds no scaling policy, or a policy cannot be converted"),
        ("", "into a valid one (a task's vertical policy, none of its checks carried), or"),
        ("", "would lose a check without --allow-dropped-checks: nothing is written for it;"),
        ("", "or the -o file cannot be written"),
        (2, "bad usage"),
        _OUTPUT,
    ),
}


def epilog(command: str | None) -> str:
    """The examples and exit codes of `command` (None: the top-level command)."""
    lines = ["examples:"]
    lines += [f"  {example}" for example in EXAMPLES.get(command, ())]
    lines += ["", "exit codes:"]
    for code, meaning in EXIT_CODES.get(command, ()):
        if isinstance(code, int):
            lines.append(f"  {code:<4} {meaning}")
        elif code:
            lines.append(f"  {code}")
        else:
            lines.append(f"       {meaning}")
    return "\n".join(lines)


class _Formatter(argparse.HelpFormatter):
    """argparse's wrapping for the description, the epilog's lines kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def parser_help(command: str) -> dict[str, Any]:
    """`add_parser` keywords giving `command`'s help its examples and exit codes."""
    return {"epilog": epilog(command), "formatter_class": _Formatter}
