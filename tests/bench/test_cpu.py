"""bench.cpu measures what the README says it does: the benchmark's deliveries made by the
dispatcher, and with --blackhole one delivery per event parked, none sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.common import stop_children
from bench.cpu import measure


@pytest.mark.parametrize(("blackhole", "others"), [(False, 0), (True, 0), (False, 97)])
async def test_measure(tmp_path: Path, blackhole: bool, others: int) -> None:
    try:
        result = await measure(40, 10, blackhole, tmp_path, others)
    finally:
        stop_children()
    assert result["events"] == 40
    assert result["delivered"] == 3 * 40  # the three benchmark hooks, every event
    assert result["parked"] == (40 if blackhole else 0)
    assert result["cpu_us_per_delivery"] > 0
    log = (tmp_path / "hookd.log").read_text().splitlines()
    assert sum('"outcome":"delivered"' in line for line in log) == 3 * 50  # warm-up too
