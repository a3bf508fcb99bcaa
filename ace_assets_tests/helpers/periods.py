"""Analysis-parameter values holding only what :func:`line_periods` reads."""

from __future__ import annotations

from ace_assets.catalog.periods import BASELINE_COLUMN, INTERVAL_COLUMNS, ZERO_COLUMN

HIGH = INTERVAL_COLUMNS["high_slow_wave"]
CONTROL = INTERVAL_COLUMNS["control"]


def period_values(**cells: object) -> dict[str, object]:
    """No zero time, no baseline, no intervals; ``cells`` (by column name) on top."""
    values: dict[str, object] = {ZERO_COLUMN: 0.0, BASELINE_COLUMN: None, HIGH: [], CONTROL: []}
    values.update(cells)
    return values
