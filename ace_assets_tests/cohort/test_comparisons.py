"""Group comparisons recover a known group effect, a known period effect, and list every
line left out with its reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ace_assets.cohort.comparisons import compare_groups, hedges_g
from ace_assets.cohort.groups import groups_from_column, read_groups
from ace_assets.errors import AceInputError


def cohort(seed: int = 3, n: int = 8, effect: float = 1.0) -> tuple[pd.DataFrame, dict]:
    """Two drugs, n lines each: group B fires ``effect`` Hz more; every line fires 0.5 Hz
    more in high slow-wave periods than in control; band power has no group effect (both
    groups hold the same values, in another order)."""
    rng = np.random.default_rng(seed)
    power = rng.normal(100, 10, n)
    power = np.concatenate([power, rng.permutation(power)])
    rows, groups = [], {}
    for i in range(2 * n):
        group = "A" if i < n else "B"
        control = 1.0 + (effect if group == "B" else 0.0) + rng.normal(0, 0.2)
        rows.append(
            {
                "line_number": i + 1,
                "systemic_drug": None if group == "A" else "dexmedetomidine",
                "status": "ok",
                "note": "",
                "event_rate_hz_control": control,
                "event_rate_hz_high_slow_wave": control + 0.5 + rng.normal(0, 0.05),
                "band_power_uV2_LFP_5-9Hz_all": power[i],
            }
        )
        groups[i + 1] = group
    return pd.DataFrame(rows), groups


def test_known_group_effect_is_found_and_no_effect_is_not() -> None:
    table, groups = cohort()
    summary, tests, excluded = compare_groups(table, groups)
    assert excluded.empty
    rate = tests[(tests.measure == "event_rate_hz_control") & (tests.test == "Mann-Whitney U")]
    (row,) = rate.to_dict("records")
    assert row["p"] < 0.01 and row["welch_p"] < 0.01
    assert row["hedges_g"] < -2  # A below B by five standard deviations
    assert row["rank_biserial_r"] < -0.9  # nearly every A line below every B line
    null = tests[tests.measure == "band_power_uV2_LFP_5-9Hz_all"].iloc[0]
    assert null.p > 0.5 and null.hedges_g == pytest.approx(0.0, abs=1e-9)
    means = summary[summary.measure == "event_rate_hz_control"].set_index("group")["mean"]
    assert means["B"] - means["A"] == pytest.approx(1.0, abs=0.2)
    assert set(summary.n) == {8}


def test_paired_periods_within_each_group() -> None:
    table, groups = cohort()
    _, tests, _ = compare_groups(table, groups)
    paired = tests[tests.test.str.startswith("Wilcoxon")].set_index("groups")
    assert set(paired.index) == {"A", "B"}
    for group in ("A", "B"):
        assert paired.loc[group, "p"] < 0.01  # 8 of 8 lines higher: p = 2 / 2**8
        assert paired.loc[group, "rank_biserial_r"] == pytest.approx(1.0)
        assert paired.loc[group, "mean_difference"] == pytest.approx(0.5, abs=0.05)


def test_three_groups_use_kruskal_wallis() -> None:
    table, groups = cohort(n=6)
    groups = {k: ("A", "B", "C")[(k - 1) % 3] for k in groups}
    _, tests, _ = compare_groups(table, groups, ["band_power_uV2_LFP_5-9Hz_all"])
    (row,) = tests.to_dict("records")
    assert row["test"] == "Kruskal-Wallis H" and 0 <= row["epsilon_squared"] <= 1


def test_every_left_out_line_is_listed_with_why() -> None:
    table, groups = cohort()
    table.loc[table.line_number == 2, ["status", "note"]] = ["stale", "older than parameters"]
    table.loc[table.line_number == 3, "event_rate_hz_control"] = np.nan
    groups[99] = "A"
    del groups[16]
    _, tests, excluded = compare_groups(table, groups, ["event_rate_hz_control"])
    why = {(r.line_number, r.measure): r.reason for r in excluded.itertuples()}
    assert why[(2, "*")] == "status stale: older than parameters"
    assert "no value" in why[(3, "event_rate_hz_control")]
    assert why[(99, "*")] == "not in experiments.csv"
    assert why[(16, "*")] == "in no group"
    (row,) = tests.to_dict("records")
    assert (row["n_A"], row["n_B"]) == (6, 7)


def test_groups_from_file_or_drug_column(tmp_path) -> None:
    path = tmp_path / "groups.csv"
    path.write_text("group,line number\nsleep,1\nsleep,2\ndex,3\n,\n")
    assert read_groups(path) == {1: "sleep", 2: "sleep", 3: "dex"}
    path.write_text("group,line number\nsleep,1\ndex,one\n")
    with pytest.raises(AceInputError) as info:
        read_groups(path)
    assert (info.value.row, info.value.column) == (3, "line number")
    path.write_text("group,line number\nsleep,1\ndex,1\n")
    with pytest.raises(AceInputError, match="one group"):
        read_groups(path)
    table, _ = cohort(n=2)
    assert groups_from_column(table) == {
        1: "none",
        2: "none",
        3: "dexmedetomidine",
        4: "dexmedetomidine",
    }


def test_hedges_g_small_samples() -> None:
    assert np.isnan(hedges_g(np.array([1.0]), np.array([1.0, 2.0])))
    assert hedges_g(np.array([0.0, 2.0]), np.array([0.0, 2.0])) == 0.0
