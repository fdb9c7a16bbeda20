"""What the README gives a platform team to copy, held to what the code does: the metrics
table against `/metrics` (names, types, labels), the alerting and recording rules against
`promtool check rules` and the exported names, and every `autoscaler …` command line
against the real argument parser."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.cli.main import build_parser
from tests.unit.service.test_telemetry import _exposition_of_a_busy_controller

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
# Documented as gone (README: "Renamed metrics"); the recording rules there record them.
RENAMED = frozenset({"autoscaler_current_count", "autoscaler_desired_count"})
COMMANDS = ("validate", "plan", "run", "schema", "convert", "simulate", "backtest", "test")


def _families() -> dict[str, tuple[str, frozenset[str]]]:
    """Exposed name (`_total` on counters) -> (type, label names) of a busy controller."""
    found = {}
    for family in text_string_to_metric_families(_exposition_of_a_busy_controller()):
        name = family.name + ("_total" if family.type == "counter" else "")
        labels = frozenset(k for s in family.samples for k in s.labels) - {"le"}
        found[name] = (family.type, labels)
    return found


def _metrics_table() -> dict[str, tuple[str, frozenset[str]]]:
    """The README's table under "### Metrics": name -> (type, label names)."""
    section = README[README.index("### Metrics") : README.index("**Renamed metrics**")]
    rows = {}
    for name, kind, labels in re.findall(
        r"^\| `(autoscaler_\w+)` \| (\w+) \| ([^|]*)\|", section, re.MULTILINE
    ):
        # `policy`, `result` (`ok`, `error`): the names outside the parentheses.
        names = re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", labels))
        rows[name] = (kind, frozenset(names))
    return rows


def test_the_metrics_table_lists_every_exported_metric_with_its_type_and_labels() -> None:
    exported = {n: v for n, v in _families().items() if n.startswith("autoscaler_")}
    assert _metrics_table() == exported


def _rule_files() -> list[str]:
    return [b for b in re.findall(r"```yaml\n(.*?)```", README, re.DOTALL) if "rules:" in b]


@pytest.mark.parametrize("rules", _rule_files())
def test_each_rule_file_passes_promtool_and_reads_exported_metrics(
    rules: str, tmp_path: Path
) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(rules)
    check = subprocess.run(
        ["promtool", "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    exported = set(_families())
    exprs = " ".join(re.findall(r"expr: (.*(?:\n {10,}.*)*)", rules))
    for name in re.findall(r"\bautoscaler_\w+", exprs):
        assert name in exported or name in RENAMED, name


def test_the_rule_files_are_found() -> None:
    """The README's own alerts, the renamed metrics' rules, and the example alert."""
    assert len(_rule_files()) >= 3
    assert any("AutoscalerPolicyStale" in r for r in _rule_files())


def _command_lines() -> list[list[str]]:
    """Every `autoscaler COMMAND …` of the README's code blocks and inline code, as argv;
    synopses (`[--to T]`, `PATH...`) left out."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README, re.DOTALL)
    blocks += re.findall(r"`([^`\n]*autoscaler [a-z]+[^`\n]*)`", README)
    found: dict[tuple[str, ...], None] = {}
    for block in blocks:
        for raw in block.replace("\\\n", " ").splitlines():
            line = re.split(r"\s#", raw)[0].strip()
            for match in re.finditer(r"(?:^|[\s/|;&(\"'])autoscaler\s+([a-z]+\b.*)$", line):
                words = re.split(r"\s(?:\||>|&&|\|\||;|2>|<)\s?", match.group(1))[0]
                if "[" in words or "..." in words or "…" in words:
                    continue
                with contextlib.suppress(ValueError):
                    argv = shlex.split(words)
                    if argv and argv[0] in COMMANDS:
                        found[tuple(argv)] = None
    return [list(argv) for argv in found]


@pytest.mark.parametrize("argv", _command_lines(), ids=" ".join)
def test_each_readme_command_line_parses(argv: list[str]) -> None:
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors), contextlib.suppress(SystemExit):
        build_parser().parse_args(argv)
    # `simulate` and `test` alone are shown with their required flags elsewhere.
    if errors.getvalue():
        assert "the following arguments are required" in errors.getvalue(), errors.getvalue()


def test_the_command_lines_are_found() -> None:
    lines = _command_lines()
    assert len(lines) >= 20
    assert {argv[0] for argv in lines} >= {"validate", "plan", "run", "backtest", "simulate"}


@pytest.mark.parametrize(
    ("first_line", "check"),
    [
        pytest.param("# prometheus.yml", ["promtool", "check", "config"], id="prometheus"),
        pytest.param("# alertmanager.yml", ["amtool", "check-config"], id="alertmanager"),
    ],
)
def test_the_scrape_and_webhook_configs_are_valid(
    first_line: str, check: list[str], tmp_path: Path
) -> None:
    (block,) = [
        b for b in re.findall(r"```yaml\n(.*?)```", README, re.DOTALL) if b.startswith(first_line)
    ]
    path = tmp_path / "config.yml"
    path.write_text(block)
    result = subprocess.run(
        [*check, str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
