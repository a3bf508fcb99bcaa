"""Accuracy of the cross-session registration against the generator's correspondence.

Demo data only: a line whose truth has ``same_neuron_as`` is a later session of the line
named by ``same_neuron_reference_line`` (:mod:`ace_assets.demo.sessions_synth`). Each
line's found components are tied to true neurons by ``miniscope_sources``' ``truth_match``;
a true pair is two found components, one per line, of one neuron. Pairs the registration
makes are scored among components that are true neurons; pairs with a component that is
no neuron at all (an extraction error, not a registration one) are counted apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from ace_assets.demo.truth import Match, truth_for


def score_registration(
    data_dir: Path, table: pd.DataFrame, matches: Mapping[int, Match]
) -> dict[str, dict[str, float]]:
    """Per later line: precision, recall and counts of its pairs with its reference line.

    ``table``: the registration's rows (``global_id``, ``line_number``, ``component``);
    ``matches``: per line, found component id -> true neuron.
    """
    out: dict[str, dict[str, float]] = {}
    lines = set(int(n) for n in table["line_number"])
    for line in sorted(lines):
        truth = truth_for(data_dir, line)
        if truth is None or "same_neuron_as" not in truth:
            continue
        ref = int(truth["same_neuron_reference_line"])
        if ref not in lines or not matches.get(line) or not matches.get(ref):
            continue
        if "group" in table and _group(table, ref) != _group(table, line):
            continue  # registered apart on purpose: nothing to score
        same_as = truth["same_neuron_as"]
        ref_cell = {int(t): int(c) for c, t in matches[ref].items()}  # neuron -> component
        true_pairs = {
            (ref_cell[int(same_as[t])], int(c))
            for c, t in matches[line].items()
            if same_as[t] >= 0 and int(same_as[t]) in ref_cell
        }
        mine = table[table["line_number"].isin([ref, line])]
        found_pairs = set()
        for _, rows in mine.groupby("global_id"):
            by_line = dict(zip(rows["line_number"], rows["component"], strict=True))
            if ref in by_line and line in by_line:
                found_pairs.add((int(by_line[ref]), int(by_line[line])))
        ref_known = {int(c) for c in matches[ref]}
        mov_known = {int(c) for c in matches[line]}
        scored = {p for p in found_pairs if p[0] in ref_known and p[1] in mov_known}
        hits = len(scored & true_pairs)
        out[f"line_{line}"] = {
            "reference_line": float(ref),
            "precision": hits / max(len(scored), 1),
            "recall": hits / max(len(true_pairs), 1),
            "n_true_pairs": float(len(true_pairs)),
            "n_found_pairs": float(len(found_pairs)),
            "pairs_with_non_neurons": float(len(found_pairs - scored)),
        }
    return out


def _group(table: pd.DataFrame, line: int) -> object:
    return table.loc[table["line_number"] == line, "group"].iloc[0]
