"""oneM2M timestamp formatting: the per-second cache must give exactly what strftime gives."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from m2mcloud.cse.timeutil import format_ts, parse_ts


@pytest.mark.parametrize(
    "epoch",
    [0.0, 1.5, 1_795_000_000.0, 1_795_000_000.9999996, 1_795_000_000.0000004, 1_795_000_001.25],
)
def test_format_ts_matches_strftime(epoch: float) -> None:
    expected = datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%dT%H%M%S,%f")
    assert format_ts(epoch) == expected


def test_format_ts_changes_with_the_second_and_round_trips() -> None:
    first, second = format_ts(1_795_000_000.5), format_ts(1_795_000_001.5)
    assert first == "20261118T110640,500000"
    assert second == "20261118T110641,500000"
    assert parse_ts(second) == pytest.approx(1_795_000_001.5)
