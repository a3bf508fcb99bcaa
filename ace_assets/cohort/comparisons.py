"""Groups of lines compared per measure and period, with n, effect sizes and a test.

The test follows the design:

* two groups of different lines: Mann-Whitney U (few animals per group, no normality
  assumed), with Welch's t beside it; effect sizes Hedges' g and the rank-biserial r, and
  the effect itself in the measure's units: the difference and the ratio of the group means
  (first group named over the second);
* three or more groups: Kruskal-Wallis H, effect size epsilon squared;
* two periods of the same lines (high slow-wave power vs control): the Wilcoxon
  signed-rank test on each line's pair, per group; effect size the matched-pairs
  rank-biserial r.

A line that is not ``ok`` in the cohort table, or has no value for a measure (it lacks the
modality), is listed in ``excluded`` with the reason, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

#: per-period measure columns of the cohort table: prefix -> what it is
PERIOD_MEASURES = ("event_rate_hz", "band_power_uV2")
#: periods compared within lines (paired)
PAIRED_PERIODS = ("high_slow_wave", "control")
SUMMARY_COLUMNS = ["measure", "group", "n", "mean", "sd", "sem", "median"]
TEST_COLUMNS = ["measure", "groups", "test", "statistic", "p", "effect"]


def measure_columns(table: pd.DataFrame) -> list[str]:
    """The numeric measure columns worth comparing: rates, band power, phase locking."""
    keep = ("event_rate_hz_", "band_power_uV2_", "mrl_", "locked_fraction_")
    return [c for c in table.columns if c.startswith(keep)]


def hedges_g(a: np.ndarray, b: np.ndarray) -> float:
    n1, n2 = a.size, b.size
    if n1 < 2 or n2 < 2:
        return float("nan")
    pooled = np.sqrt(((n1 - 1) * a.var(ddof=1) + (n2 - 1) * b.var(ddof=1)) / (n1 + n2 - 2))
    if pooled == 0:
        return float("nan")
    correction = 1 - 3 / (4 * (n1 + n2) - 9)
    return float((a.mean() - b.mean()) / pooled * correction)


def summary_rows(values: Mapping[str, np.ndarray], measure: str) -> list[dict]:
    rows = []
    for group, v in values.items():
        rows.append(
            {
                "measure": measure,
                "group": group,
                "n": int(v.size),
                "mean": float(v.mean()) if v.size else np.nan,
                "sd": float(v.std(ddof=1)) if v.size > 1 else np.nan,
                "sem": float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else np.nan,
                "median": float(np.median(v)) if v.size else np.nan,
            }
        )
    return rows


def between_groups(values: Mapping[str, np.ndarray], measure: str) -> dict | None:
    """The between-group test of one measure, or None with fewer than two usable groups."""
    usable = {g: v for g, v in values.items() if v.size >= 2}
    if len(usable) < 2:
        return None
    names = sorted(usable)
    row: dict = {"measure": measure, "groups": " vs ".join(names)}
    row.update({f"n_{g}": usable[g].size for g in names})
    if len(names) == 2:
        a, b = usable[names[0]], usable[names[1]]
        u = stats.mannwhitneyu(a, b, alternative="two-sided")
        welch = stats.ttest_ind(a, b, equal_var=False)
        row.update(
            {
                "test": "Mann-Whitney U",
                "statistic": float(u.statistic),
                "p": float(u.pvalue),
                "welch_t": float(welch.statistic),
                "welch_p": float(welch.pvalue),
                "effect": "Hedges g; rank-biserial r",
                "hedges_g": hedges_g(a, b),
                "rank_biserial_r": float(2 * u.statistic / (a.size * b.size) - 1),
                "mean_difference": float(a.mean() - b.mean()),
                "mean_ratio": float(a.mean() / b.mean()) if b.mean() != 0 else np.nan,
            }
        )
    else:
        h = stats.kruskal(*(usable[g] for g in names))
        n = sum(v.size for v in usable.values())
        row.update(
            {
                "test": "Kruskal-Wallis H",
                "statistic": float(h.statistic),
                "p": float(h.pvalue),
                "effect": "epsilon squared",
                "epsilon_squared": float(h.statistic / ((n**2 - 1) / (n + 1))),
            }
        )
    return row


def paired_periods(
    table: pd.DataFrame, groups: Mapping[int, str], base: str, first: str, second: str
) -> list[dict]:
    """Per group: Wilcoxon signed-rank of ``base_first`` vs ``base_second`` over its lines."""
    a_col, b_col = f"{base}_{first}", f"{base}_{second}"
    if a_col not in table or b_col not in table:
        return []
    rows = []
    both = table.dropna(subset=[a_col, b_col])
    for group in sorted(set(groups.values())):
        mine = both[both["line_number"].map(groups).eq(group)]
        diff = (mine[a_col] - mine[b_col]).to_numpy(dtype=float)
        if diff.size < 2:
            continue  # the summary shows its n; the lines are in ``excluded``
        row = {
            "measure": base,
            "groups": group,
            "test": f"Wilcoxon signed-rank, {first} vs {second}",
            f"n_{group}": int(diff.size),
        }
        if diff.size >= 2 and np.any(diff != 0):
            w = stats.wilcoxon(diff)
            nonzero = diff[diff != 0]
            ranks = stats.rankdata(np.abs(nonzero))
            r = (ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum()
            row.update(
                {
                    "statistic": float(w.statistic),
                    "p": float(w.pvalue),
                    "effect": "matched-pairs rank-biserial r",
                    "rank_biserial_r": float(r),
                    "mean_difference": float(diff.mean()),
                }
            )
        rows.append(row)
    return rows


def compare_groups(
    table: pd.DataFrame, groups: Mapping[int, str], measures: Sequence[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(summary per group and measure, tests, excluded lines with the reason)."""
    measures = list(measures) if measures is not None else measure_columns(table)
    excluded: list[dict] = []
    in_table = set(table["line_number"].astype(int))
    for line in sorted(set(groups) - in_table):
        excluded.append(
            {
                "line_number": line,
                "group": groups[line],
                "measure": "*",
                "reason": "not in experiments.csv",
            }
        )
    usable = table[table["line_number"].astype(int).isin(groups)]
    bad = usable[usable["status"] != "ok"]
    for r in bad.itertuples(index=False):
        excluded.append(
            {
                "line_number": int(r.line_number),
                "group": groups[int(r.line_number)],
                "measure": "*",
                "reason": f"status {r.status}: {r.note}" if r.note else f"status {r.status}",
            }
        )
    usable = usable[usable["status"] == "ok"]
    ungrouped = sorted(in_table - set(groups))
    for line in ungrouped:
        excluded.append(
            {"line_number": line, "group": None, "measure": "*", "reason": "in no group"}
        )
    summary, tests = [], []
    for measure in measures:
        if measure not in usable:
            continue
        values: dict[str, np.ndarray] = {}
        for group in sorted(set(groups.values())):
            mine = usable[usable["line_number"].map(groups).eq(group)]
            has = mine[measure].notna()
            for line in mine.loc[~has, "line_number"]:
                excluded.append(
                    {
                        "line_number": int(line),
                        "group": group,
                        "measure": measure,
                        "reason": "no value (the line lacks the recording or the period)",
                    }
                )
            values[group] = mine.loc[has, measure].to_numpy(dtype=float)
        summary += summary_rows(values, measure)
        if (row := between_groups(values, measure)) is not None:
            tests.append(row)
    ok_groups = {int(k): v for k, v in groups.items() if k in set(usable["line_number"])}
    for base in [
        c[: -len("_" + PAIRED_PERIODS[0])] for c in measures if c.endswith("_" + PAIRED_PERIODS[0])
    ]:
        tests += paired_periods(usable, ok_groups, base, *PAIRED_PERIODS)
    return (  # named columns even when empty: an empty CSV still says what it would hold
        pd.DataFrame(summary, columns=None if summary else SUMMARY_COLUMNS),
        pd.DataFrame(tests, columns=None if tests else TEST_COLUMNS),
        pd.DataFrame(excluded, columns=["line_number", "group", "measure", "reason"]),
    )
