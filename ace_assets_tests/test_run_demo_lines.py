"""run_demo writes the demo lines an older demo folder lacks, and says which lines predate
the drug groups instead of silently comparing groups without the effect."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ace_assets.demo.generate import DEMO_LINES, truth_path
from ace_assets.io.store import atomic_save_npz, load_npz
from ace_assets.run_demo import group_effects, write_missing_demo_lines


def test_missing_lines_are_written_and_old_ones_named(tmp_path: Path, capsys) -> None:
    data = tmp_path / "demo_data"
    write_missing_demo_lines(data, full=False)
    assert all(truth_path(data, n).is_file() for n in DEMO_LINES)
    assert "writing synthetic demo recordings" in capsys.readouterr().out
    old = dict(load_npz(truth_path(data, 3)))
    del old["osc_power_factor"]  # as the generator wrote it before the groups
    atomic_save_npz(truth_path(data, 3), **old)
    write_missing_demo_lines(data, full=False)
    out = capsys.readouterr().out
    assert "writing" not in out and "demo lines [3] predate" in out and "--overwrite" in out


def test_group_effects_print_the_ratio_of_whole_recording_band_power(tmp_path: Path) -> None:
    csv = tmp_path / "tests.csv"
    pd.DataFrame(
        [
            {"measure": "band_power_uV2_LFP_5-9Hz_all", "groups": "isoflurane vs none",
             "mean_ratio": 3.96, "hedges_g": 40.0},
            {"measure": "band_power_uV2_LFP_5-9Hz_control", "groups": "isoflurane vs none",
             "mean_ratio": 2.0, "hedges_g": 1.0},
            {"measure": "event_rate_hz_all", "groups": "a vs b", "mean_ratio": 1.0,
             "hedges_g": 0.1},
        ]
    ).to_csv(csv, index=False)  # fmt: skip
    (line,) = group_effects(csv)
    assert "isoflurane vs none ratio of means 3.96" in line and "Hedges g 40.0" in line
    assert group_effects(tmp_path / "absent.csv") == []
