"""The swap benchmark's arithmetic and its table rows (the run itself belongs to `streamscore bench`)."""

from __future__ import annotations

import pytest

from streamscore.bench.shadow import role_publisher
from streamscore.bench.swaps import gap_figures, rss_mb, swap_rows


def test_the_swap_gap_is_the_largest_interval_at_a_swap_over_the_median_steady_one() -> None:
    # (time s, images, version): v1 batches every 0.1 s, v2's first batch 0.3 s after v1's last
    stamps = [(0.0, 10, 1), (0.1, 10, 1), (0.2, 10, 1), (0.5, 10, 2), (0.6, 10, 2), (0.8, 10, 3)]
    figures = gap_figures(stamps)
    assert figures["swap_gap_ratio"] == pytest.approx(3.0)
    assert figures["swap_interval_ms_max"] == pytest.approx(300)
    assert figures["batch_interval_ms_median"] == pytest.approx(100)


def test_the_interval_before_a_switch_counts_as_the_swaps() -> None:
    # the new version is installed ahead while the old one scores: that interval is the swap's too
    stamps = [(0.0, 10, 1), (0.1, 10, 1), (0.2, 10, 1), (0.6, 10, 1), (0.7, 10, 2), (0.8, 10, 2), (0.9, 10, 2)]
    figures = gap_figures(stamps)
    assert figures["swap_gap_ratio"] == pytest.approx(4.0)
    assert figures["swap_interval_ms_median"] == pytest.approx(100)


def test_installed_on_the_loop_the_interval_before_a_switch_is_a_steady_one() -> None:
    stamps = [(0.0, 10, 1), (0.1, 10, 1), (0.2, 10, 1), (0.6, 10, 1), (0.75, 10, 2), (0.85, 10, 2), (0.95, 10, 2)]
    figures = gap_figures(stamps, installed_ahead=False)
    assert figures["swap_interval_ms_max"] == pytest.approx(150)
    assert figures["batch_interval_ms_max"] == pytest.approx(400)
    assert figures["swap_gap_ratio"] == pytest.approx(1.5)


def test_no_swap_or_no_steady_interval_gives_no_ratio() -> None:
    assert gap_figures([(0.0, 1, 1), (0.1, 1, 1)])["swap_gap_ratio"] is None
    assert gap_figures([(0.0, 1, 1), (0.1, 1, 2)])["swap_gap_ratio"] is None


def test_the_table_says_why_the_shadow_overhead_is_missing() -> None:
    results = {
        "rss_mb_before": 250.0, "rss_mb_after_100_swaps": 260.0, "swap_gap_ratio": 1.5, "shadow_overhead": None,
        "swaps": {"swaps": 100, "swap_interval_ms_max": 90.0, "batch_interval_ms_median": 60.0,
                  "database_mb_before": 5.0, "database_mb_after": 7.0},
        "shadow": {"reason": "no roles"},
    }
    rows = dict(swap_rows(results))
    assert rows["RSS before / after 100 swaps (this process)"] == "250 MB / 260 MB"
    assert any(value == "n/a: no roles" for value in rows.values())
    assert any(value.startswith("1.50×") for value in rows.values())
    assert swap_rows({}) == []


def test_rss_and_the_role_publisher_are_found_or_explained() -> None:
    assert (rss_mb() or 1.0) > 0
    publish, reason = role_publisher()
    assert (publish is None) == bool(reason)


def test_the_database_memory_is_asked_of_the_backend_not_of_its_internals() -> None:
    from streamscore.backends import open_backend

    with open_backend("duckdb:///:memory:") as duckdb:
        used = duckdb.memory_mb()
    assert used is not None and used >= 0
    assert open_backend("postgresql://streamscore@127.0.0.1:1/db").memory_mb() is None  # not connected
