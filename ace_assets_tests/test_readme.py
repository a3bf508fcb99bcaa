"""The README's asset table is the code's graph, and every asset says what it is."""

from __future__ import annotations

import dagster as dg

from ace_assets.definitions import all_assets
from ace_assets_tests.helpers.paths import README


def readme_graph() -> dict[str, set[str]]:
    text = README.read_text(encoding="utf-8")
    table = text[text.index("| asset | inputs |") :].split("\n\n")[0].splitlines()[2:]
    graph = {}
    for row in table:
        asset, inputs = (cell.strip() for cell in row.strip("|").split("|"))
        graph[asset] = {i.strip() for i in inputs.split(",") if i.strip()}
    return graph


def code_graph() -> dict[str, set[str]]:
    graph = {}
    for a in all_assets:
        if isinstance(a, dg.AssetsDefinition):
            for key in a.keys:
                graph[key.to_user_string()] = {d.to_user_string() for d in a.asset_deps[key]}
    return graph


def test_readme_graph_is_the_code_graph() -> None:
    assert readme_graph() == code_graph()


def test_every_asset_and_check_has_a_description() -> None:
    for a in all_assets:
        if isinstance(a, dg.AssetsDefinition):
            for key in a.keys:
                assert (a.descriptions_by_key.get(key) or "").strip(), key
            for spec in a.check_specs:
                assert (spec.description or "").strip(), spec.name
