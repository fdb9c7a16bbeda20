"""`python -m bench.golden_simulate`: `simulate` gives the same answers as when recorded.

Speeding up the replay (issue 10) must not change one decision. This runs
`autoscaler simulate -o json --plot FILE.html` in-process on the shared traces
(../shared/traces) with the recommended policy and with `bench/golden/guarded.yaml`
(cooldowns, stabilization, limits, three strategies, a forecast and the anomaly guard),
and compares with `bench/golden/simulate.json`: the JSON document (scores, actions), the
HTML plot (each action with its reasons) and a digest of every decision the policies made
(action, counts, reasons, checks, as the plan JSON shows them, holds included).
`--write` records the current answers instead (only when the change of behaviour is meant).
Exit 0 when all cases match, 1 (with the cases that differ) otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoscaler.cli.main import main as autoscaler  # noqa: E402
from autoscaler.replay import harness  # noqa: E402

GOLDEN = ROOT / "bench" / "golden" / "simulate.json"
POLICY = ROOT / "bench" / "golden" / "guarded.yaml"

# name -> (trace file, arguments after the trace)
CASES: dict[str, tuple[str, list[str]]] = {
    "nasa-recommended": ("nasa_http_jul1995_per_minute.csv", ["--capacity", "0.35"]),
    "nasa-recommended-from": (
        "nasa_http_jul1995_per_minute.csv",
        ["--capacity", "0.35", "--from", "14d", "--to", "21d", "--compare", "hpa"],
    ),
    "twitter-recommended-week": (
        "twitter_sample_stream_2021-08_per_10s.csv",
        ["--capacity", "10", "--to", "7d", "--compare", "hpa"],
    ),
    "azure-code-recommended": (
        "azure_llm_inference_code_2023-11-16_per_second.csv",
        ["--capacity", "1", "--compare", "hpa"],
    ),
    "azure-conv-recommended": (
        "azure_llm_inference_conv_2023-11-16_per_second.csv",
        ["--capacity", "1", "--compare", "hpa"],
    ),
    "wikipedia-recommended-60d": (
        "wikipedia_all_projects_hourly_2008-2013.csv",
        ["--capacity", "100", "--to", "60d", "--compare", "hpa"],
    ),
    "twitter-guarded": (
        "twitter_sample_stream_2021-08_per_10s.csv",
        ["--capacity", "10", "--from", "7d", "--to", "10d", "--compare", "hpa", str(POLICY)],
    ),
    "nasa-guarded": (
        "nasa_http_jul1995_per_minute.csv",
        ["--capacity", "0.35", "--compare", "hpa", str(POLICY)],
    ),
    "azure-code-guarded": (
        "azure_llm_inference_code_2023-11-16_per_second.csv",
        ["--capacity", "1", "--compare", "hpa", str(POLICY)],
    ),
}


@contextlib.contextmanager
def decisions_digest() -> Iterator[Any]:
    """Hash every decision `Replay.evaluate` returns while the block runs."""
    digest = hashlib.sha256()
    original = harness.Replay.evaluate

    def evaluate(self: harness.Replay, *args: Any, **kwargs: Any) -> Any:
        evaluation = original(self, *args, **kwargs)
        shown = evaluation.decision.to_dict()
        shown["error"], shown["scaled"] = evaluation.error, evaluation.scaled
        digest.update(json.dumps(shown, sort_keys=True, default=str).encode() + b"\n")
        return evaluation

    harness.Replay.evaluate = evaluate  # type: ignore[method-assign]
    try:
        yield digest
    finally:
        harness.Replay.evaluate = original  # type: ignore[method-assign]


def run_case(traces: Path, trace: str, arguments: list[str]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        plot = Path(tmp) / "plot.html"
        argv = ["simulate", "--trace", str(traces / trace), "-o", "json", "--plot", str(plot)]
        out, err = io.StringIO(), io.StringIO()
        with (
            decisions_digest() as digest,
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            code = autoscaler(argv + arguments)
        if code != 0:
            raise SystemExit(
                f"simulate {' '.join(argv + arguments)}: exit {code}\n{err.getvalue()}"
            )
        document = json.loads(out.getvalue())
        document["trace"] = trace  # the path differs between checkouts
        return {
            "json": document,
            "plot_sha256": hashlib.sha256(plot.read_bytes()).hexdigest(),
            "decisions_sha256": digest.hexdigest(),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--traces", type=Path, default=ROOT.parent / "shared" / "traces")
    parser.add_argument("--write", action="store_true", help="record the current answers")
    parser.add_argument("--only", action="append", help="run only this case (repeatable)")
    args = parser.parse_args()
    golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    results, failed = {}, []
    for name, (trace, arguments) in CASES.items():
        if args.only and name not in args.only:
            continue
        results[name] = got = run_case(args.traces, trace, arguments)
        same = golden.get(name) == got
        print(f"{name}: {'same' if same else 'DIFFERENT' if name in golden else 'new'}")
        if not same:
            failed.append(name)
    if args.write:
        GOLDEN.write_text(json.dumps({**golden, **results}, indent=2, sort_keys=True) + "\n")
        print(f"written to {GOLDEN}")
        return 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
