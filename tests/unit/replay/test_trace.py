"""Trace files: the shared traces' format, every bad row named by line, exact tick means."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.replay.trace import Integral, Trace, TraceError, parse_trace, read_trace, tick_means


def parse(text: str) -> Trace:
    return parse_trace(text.splitlines(keepends=True), name="t.csv")


def test_reads_the_shared_format_and_ignores_other_columns() -> None:
    trace = parse("host,timestamp_seconds,requests_per_second\na,60,2\nb,120,4\nc,180,6\n")
    assert list(trace.times) == [0, 60, 120]  # offsets from the first row
    assert list(trace.rates) == [2, 4, 6]
    assert trace.step == 60 and trace.end == 180


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "t.csv:1: empty file", id="empty"),
        pytest.param("time,rps\n0,1\n", "t.csv:1: header lacks timestamp_seconds and", id="header"),
        pytest.param(
            "timestamp_seconds,requests_per_second\n0,1\n10,abc\n",
            "t.csv:3: requests_per_second: 'abc' is not a number",
            id="not-a-number",
        ),
        pytest.param(
            "timestamp_seconds,requests_per_second\n0,1\n10,nan\n",
            "t.csv:3: requests_per_second: nan is not a finite number",
            id="nan",
        ),
        pytest.param(
            "timestamp_seconds,requests_per_second\n0,1\n10,-2\n",
            "t.csv:3: requests_per_second: -2 is negative",
            id="negative",
        ),
        pytest.param(
            "timestamp_seconds,requests_per_second\n0,1\n10,2\n\n10,3\n",
            "t.csv:5: timestamp_seconds: 10 is not after the previous row's 10",
            id="not-increasing-after-blank-line",
        ),
        pytest.param(
            "timestamp_seconds,requests_per_second\n0,1\n10\n",
            "t.csv:3: 1 field, the header has 2",
            id="short-row",
        ),
        pytest.param("timestamp_seconds,requests_per_second\n0,1\n", "1 data row:", id="one-row"),
        pytest.param(
            "timestamp_seconds,requests_per_second\n0,1\n10,1e308\n20,1\n",
            "t.csv:3: requests_per_second: 1e308 is above 1e+15 requests per second",
            id="huge-rate",
        ),
        pytest.param(
            "timestamp_seconds,requests_per_second,host\n0,1,a\n60,2," + "x" * 200_000 + "\n",
            "t.csv:3: not a CSV row: field larger than field limit (131072)",
            id="csv-field-too-large",
        ),
        pytest.param(
            "timestamp_seconds,requests_per_second\n0,1\n1e300,2\n",
            "t.csv:3: timestamp_seconds: 1e300 is more than 10y (3650d) after the first row's 0",
            id="huge-span",
        ),
    ],
)
def test_bad_input_is_an_error_with_its_line(text: str, message: str) -> None:
    with pytest.raises(TraceError) as caught:
        parse(text)
    assert message in str(caught.value)


def test_missing_file_is_a_trace_error(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="cannot read the trace"):
        read_trace(tmp_path / "missing.csv")


def test_tick_means_are_exact_means_of_the_step_function() -> None:
    # 1 s rows: 0..9 -> 1 req/s, 10..19 -> 4 req/s, 20..29 -> 0 req/s
    rows = [f"{t},{1 if t < 10 else 4 if t < 20 else 0}" for t in range(30)]
    trace = parse("timestamp_seconds,requests_per_second\n" + "\n".join(rows))
    assert tick_means(trace, 15) == [(10 * 1 + 5 * 4) / 15, (5 * 4 + 10 * 0) / 15]


def test_a_row_lasts_until_the_next_so_a_gap_holds_the_last_rate() -> None:
    trace = parse("timestamp_seconds,requests_per_second\n0,2\n60,3\n300,5\n360,1\n")
    assert trace.gaps() == [(60, 240)]
    means = tick_means(trace, 60)
    assert means == [2, 3, 3, 3, 3, 5, 1]


def test_before_the_start_the_first_rate_is_assumed() -> None:
    trace = parse("timestamp_seconds,requests_per_second\n0,2\n60,3\n")
    integral = Integral(trace)
    assert integral.at(-30) == -60  # 30 s of 2 req/s before offset 0
    assert integral.at(90) == 2 * 60 + 3 * 30
    assert integral.walk([-30, 0, 90]) == [-60, 0, 210]


def test_window_cuts_and_shifts_the_trace() -> None:
    trace = parse("timestamp_seconds,requests_per_second\n0,1\n60,2\n120,3\n180,4\n")
    part = trace.window(90, 200)
    assert list(part.times) == [0, 30, 90] and list(part.rates) == [2, 3, 4]
    assert part.end == 110
    with pytest.raises(TraceError, match="ends at 240 s"):
        trace.window(300, 400)


def test_a_window_starting_after_the_end_says_where_the_trace_ends() -> None:
    # `simulate --from 30d` on a shorter trace: its --to is the trace's end.
    trace = parse("timestamp_seconds,requests_per_second\n0,1\n60,2\n")
    with pytest.raises(TraceError, match=r"the trace ends at 120 s \(2m\), not after 300 s \(5m\)"):
        trace.window(300, trace.end)


def test_a_file_written_with_a_byte_order_mark_reads_as_any_other(tmp_path: Path) -> None:
    # Excel's "CSV UTF-8" starts with a BOM: the header was then '\ufefftimestamp_seconds'.
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbftimestamp_seconds,requests_per_second\n0,10\n60,20\n")
    trace = read_trace(path)
    assert trace.rates == [10.0, 20.0]
