"""Rendering of evaluations for people (table, wide) and machines (JSON, YAML), and what
a plan amounts to (its summary line, its failures, its exit code)."""

from __future__ import annotations

import json
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import TYPE_CHECKING, Any

from autoscaler.cli import safe_yaml
from autoscaler.cli.printable import json_safe, printable
from autoscaler.core.forecast import describe
from autoscaler.core.model import Action, CheckResult, Decision
from autoscaler.core.names import counted

if TYPE_CHECKING:
    from autoscaler.engine.evaluation import Evaluation

OUTPUTS = ("table", "wide", "json", "yaml")

PLAN_KEYS = ("policy", "target", "current", "desired", "action", "dry_run", "reasons", "checks")


def plan_object(evaluation: Evaluation) -> dict[str, Any]:
    """The documented `plan --output json` object for one policy: `PLAN_KEYS`, then the
    additions, `time` (the decision's, RFC 3339 in UTC, as the decision log's
    `decision_time` and the notifications write it; the spec's decisions carry it) and
    `error`."""
    full = evaluation.decision.to_dict()
    obj = {key: full[key] for key in PLAN_KEYS}
    obj["time"] = evaluation.decision.time.astimezone(UTC).isoformat()
    obj["error"] = evaluation.error
    return obj


def render_plan_json(evaluations: Sequence[Evaluation]) -> str:
    # Text as it is (`→`, not `\u2192`), as the README and the JSON logs show it; escaped
    # where stdout cannot encode it (its backslash replacement would not be valid JSON).
    return json_safe(
        json.dumps(
            [plan_object(e) for e in evaluations], indent=2, ensure_ascii=not _stdout_is_utf8()
        )
    )


def _stdout_is_utf8() -> bool:
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    return encoding in ("utf8", "utf8sig")


def render_plan_yaml(evaluations: Sequence[Evaluation]) -> str:
    """The same document as `render_plan_json`, as YAML (kubectl's `-o yaml`), with the
    characters `json_safe` escapes escaped too (`"\\u202e"`, never raw)."""
    objects = [plan_object(e) for e in evaluations]
    # Raw Unicode only where stdout can encode it (as `render_plan_json`): its backslash
    # replacement in a quoted scalar would read back as other text.
    return safe_yaml.dump(objects, allow_unicode=_stdout_is_utf8(), width=1000)


def render(evaluations: Sequence[Evaluation], output: str) -> str:
    """`evaluations` in one of `OUTPUTS`, ending with a newline."""
    if output == "json":
        return render_plan_json(evaluations) + "\n"
    if output == "yaml":
        return render_plan_yaml(evaluations) if evaluations else "[]\n"
    if output == "wide":
        return render_plan_wide(evaluations)
    return render_plan_table(evaluations)


@dataclass
class Summary:
    """How many policies would go up, down, stay, or hold; and what failed."""

    counts: dict[Action, int] = field(default_factory=lambda: dict.fromkeys(Action, 0))
    not_evaluated: list[tuple[str, str]] = field(default_factory=list)  # (policy, error)
    failed_checks: list[tuple[str, str, str]] = field(
        default_factory=list
    )  # (policy, check, error)

    @property
    def would_scale(self) -> bool:
        return bool(self.counts[Action.UP] or self.counts[Action.DOWN])

    @property
    def failed(self) -> bool:
        """Some policy could not be evaluated or some check failed."""
        return bool(self.not_evaluated or self.failed_checks)

    def line(self) -> str:
        """`3 up, 1 down, 8 unchanged, 1 held`, then what failed, if anything."""
        c = self.counts
        text = (
            f"{c[Action.UP]} up, {c[Action.DOWN]} down, {c[Action.NONE]} unchanged, "
            f"{c[Action.HOLD]} held"
        )
        failures = []
        if self.not_evaluated:
            failures.append(f"{len(self.not_evaluated)} not evaluated")
        if self.failed_checks:
            failures.append(f"{counted(len(self.failed_checks), 'check')} failed")
        return text + (f"; {', '.join(failures)}" if failures else "")


def summarize(evaluations: Sequence[Evaluation]) -> Summary:
    summary = Summary()
    for evaluation in evaluations:
        d = evaluation.decision
        summary.counts[d.action] += 1
        if evaluation.error:
            summary.not_evaluated.append((d.policy, evaluation.error))
        for check in d.checks:
            if check.error is not None:
                summary.failed_checks.append((d.policy, check.name, check.error))
    return summary


def _on_screen(text: str) -> int:
    """How many terminal columns `text` takes: an ASG, job or group name may be any text,
    and a CJK character or an emoji takes two, a combining accent none (`len` counted one
    each, and the columns after such a name were shifted)."""
    if text.isascii():
        return len(text)
    return sum(
        0
        if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf")
        else 2
        if unicodedata.east_asian_width(c) in ("W", "F")
        else 1
        for c in text
    )


def _count(value: int | None) -> str:
    return "?" if value is None else str(value)


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def render_plan_table(evaluations: Sequence[Evaluation]) -> str:
    """A block per policy: headline, reasons, then one line per check."""
    if not evaluations:
        return "no enabled policies\n"
    lines: list[str] = []
    for evaluation in evaluations:
        d = evaluation.decision
        flag = "  [dry-run]" if d.dry_run else ""
        lines.append(
            f"{d.policy}  {d.target}  current {_count(d.current)} -> desired "
            f"{_count(d.desired)}  {d.action.value.upper()}{flag}"
        )
        for reason in d.reasons:
            lines.append(f"  - {reason}")
        if evaluation.error and evaluation.error not in d.reasons:
            lines.append(f"  ! not evaluated: {evaluation.error}")
        width = max((len(c.name) for c in d.checks), default=0)
        for c in d.checks:
            query = c.query if c.query is not None else "(fixed)"
            outcome = f"error: {c.error}" if c.error else f"= {_value(c.value)} -> {c.desired}"
            lines.append(f"    {c.name:<{width}}  {outcome}")
            if c.forecast is not None:
                lines.append(f"    {'':<{width}}  forecast {describe(c.forecast)}")
            lines.append(f"    {'':<{width}}  {query}")
        lines.append("")
    lines.append(summarize(evaluations).line())
    # A target's name or an error may hold a line break or an escape sequence.
    return "\n".join(printable(line) for line in lines) + "\n"


def _wide_check(c: CheckResult) -> str:
    """`rps=50→9`, with its forecast: `rps=50→9 (forecast 83 in 2m30s)`."""
    if c.error is not None:
        shown = f"{c.name}=error"
    elif c.value is None:  # a check without a query (`fixed`): only its count
        shown = f"{c.name}=-→{_count(c.desired)}"
    else:
        shown = f"{c.name}={_value(c.value)}→{_count(c.desired)}"
    if c.forecast is not None:
        shown += f" (forecast {describe(c.forecast)})"
    return shown


def _decisive(d: Decision) -> str:
    """The reason that set the count: the last one, unless it is a check's own (the checks'
    reasons come in policy order, and the highest count wins, not the last check), then
    the reason of the check that asked for the most."""
    if not d.reasons:
        return ""
    last = d.reasons[-1]
    asked = [c for c in d.checks if c.desired is not None]
    if not asked or not any(last.startswith(f"{c.name}: ") for c in d.checks):
        return last
    winner = max(asked, key=lambda c: c.desired or 0)  # the first of equals, as combined
    mine = [r for r in d.reasons if r.startswith(f"{winner.name}: ")]
    return mine[-1] if mine else last


def render_plan_wide(evaluations: Sequence[Evaluation]) -> str:
    """One row per policy: counts, action, every check's value, count and forecast, the last
    reason."""
    if not evaluations:
        return "no enabled policies\n"
    header = ("POLICY", "TARGET", "CURRENT", "DESIRED", "ACTION", "CHECKS", "REASON")
    rows: list[tuple[str, ...]] = [header]
    for evaluation in evaluations:
        d = evaluation.decision
        checks = ", ".join(_wide_check(c) for c in d.checks)
        reason = evaluation.error or _decisive(d)
        cells = (d.policy, d.target, _count(d.current), _count(d.desired), d.action.value)
        # Escaped before the columns are measured: `\x1b` takes four.
        rows.append(tuple(printable(cell) for cell in (*cells, checks, reason)))
    widths = [max(_on_screen(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = [
        "  ".join(
            cell + " " * (width - _on_screen(cell))
            for cell, width in zip(row, widths, strict=False)
        )
        + f"  {row[-1]}"
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines) + "\n" + summarize(evaluations).line() + "\n"
