"""The benchmark's summaries: median and interquartile range of per-round ratios, and the
load-average rule that marks a run unreliable (pure functions, no timing)."""

from __future__ import annotations

import pytest

from bench.stats import (
    MIN_ROUNDS,
    QUIET_LOAD,
    banner,
    describe,
    paired,
    summarise,
    unreliable_reasons,
)


def test_median_and_quartiles_of_seven_rounds() -> None:
    summary = summarise([1.9, 1.2, 1.5, 1.4, 1.6, 1.3, 1.7])

    assert summary is not None
    assert summary.median == pytest.approx(1.5)
    assert (summary.q1, summary.q3) == (pytest.approx(1.35), pytest.approx(1.65))
    assert summary.count == 7
    assert summary.text("x") == "1.50x (IQR 1.35-1.65, 7 rounds)"


def test_one_outlying_round_moves_the_range_less_than_min_max_would() -> None:
    summary = summarise([0.90, 0.91, 0.89, 0.90, 0.92, 0.88, 0.40])

    assert summary is not None
    assert summary.median == pytest.approx(0.90)
    assert summary.q1 > 0.85, "the IQR must not stretch to the one bad round"


def test_even_count_takes_the_middle_pair() -> None:
    summary = summarise([1.0, 2.0, 3.0, 4.0])

    assert summary is not None
    assert summary.median == pytest.approx(2.5)
    assert (summary.q1, summary.q3) == (pytest.approx(1.75), pytest.approx(3.25))


def test_one_round_has_no_range_and_none_is_void() -> None:
    one = summarise([1.25])

    assert one is not None
    assert one.text() == "1.25 (1 round)"
    assert summarise([]) is None
    assert describe([]) == "n/a (every run void)"


def test_ratios_pair_runs_of_the_same_round_and_drop_void_rounds() -> None:
    assert paired([10.0, None, 30.0, 8.0], [5.0, 5.0, None, 4.0]) == [2.0, 2.0]


def test_load_above_the_quiet_line_marks_the_run_unreliable() -> None:
    (reason,) = unreliable_reasons(QUIET_LOAD + 0.01, MIN_ROUNDS)

    assert "load average was 0.51" in reason
    lines = banner([reason])
    assert lines[1].startswith("UNRELIABLE RUN")
    assert reason in "\n".join(lines)


def test_a_quiet_start_with_enough_rounds_is_reliable() -> None:
    assert unreliable_reasons(QUIET_LOAD, MIN_ROUNDS) == []
    assert banner([]) == []


def test_too_few_rounds_is_unreliable_even_when_quiet() -> None:
    (reason,) = unreliable_reasons(0.0, MIN_ROUNDS - 1)

    assert f"{MIN_ROUNDS - 1} rounds" in reason
