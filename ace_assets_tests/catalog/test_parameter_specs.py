"""One parameter system: the specs hold every default and the one cell grammar.

The checks iterate over the specs and the registered stage classes, so a setting added
to either is covered without touching this file.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import ace_assets.io.frame_times
import ace_assets.miniscope.denoise
import ace_assets.miniscope.extraction
import ace_assets.miniscope.motion
import ace_assets.miniscope.preprocess
import ace_assets.multimodal.coupling_params  # noqa: F401  (registers the stage classes)
from ace_assets.catalog.parameter_specs import ENGINE_SPECS, SPECS
from ace_assets.catalog.parameter_table import markdown
from ace_assets.catalog.parameters import resolve_parameters
from ace_assets.catalog.stage_params import (
    STAGE_CLASSES,
    StageParams,
    group_defaults,
    group_specs,
    stage_params,
)
from ace_assets.errors import AceInputError
from ace_assets_tests.helpers.paths import README

STAGES = sorted(STAGE_CLASSES)
#: cells a hand-typed spreadsheet may hold, valid or not for any one setting
PROBES = (
    "",
    "TRUE",
    "false",
    "yes",
    "no",
    "t",
    "y",
    "1",
    "0",
    "-1",
    "7",
    "2.5",
    "None",
    "nan",
    "(7, 7)",
    "[7, 7]",
    "(7, x)",
    "(1, 2, 3, 4)",
    "[[0, 60], [120, 180]]",
    "oasis",
    "copy",
    "auto",
    "median",
)


def test_the_pipeline_stages_are_registered() -> None:
    assert set(STAGE_CLASSES) == {
        "denoise",
        "preprocess",
        "motion",
        "extraction",
        "timing",
        "coupling",
    }
    assert not set(SPECS) & set(ENGINE_SPECS)


@pytest.mark.parametrize("group", STAGES)
def test_every_stage_default_is_its_spec(group: str) -> None:
    cls = STAGE_CLASSES[group]
    specs = group_specs(group)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert set(fields) == set(specs)
    made = cls()
    for name, spec in specs.items():
        f = fields[name]
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        assert default == spec.default, name
        assert getattr(made, name) == spec.default, name


@pytest.mark.parametrize("group", STAGES)
def test_no_settings_run_what_an_empty_csv_row_runs(group: str) -> None:
    """A notebook's ``Stage()`` equals the asset's ``from_mapping(params.group(...))``."""
    cls = STAGE_CLASSES[group]
    line = resolve_parameters(None, 1)
    assert line.group(group) == group_defaults(group)
    assert cls.from_mapping(line.group(group)) == cls()


def _catalog(name: str, cell: str) -> Any:
    try:
        return resolve_parameters(None, 1, {name: cell}).values[name]
    except AceInputError as exc:
        assert exc.column == name
        return AceInputError


def _stage(cls: type[StageParams], name: str, cell: str) -> Any:
    try:
        parsed = cls.parse({name: cell})
    except AceInputError as exc:
        assert exc.column == name
        return AceInputError
    return parsed.get(name, SPECS[name].default)


@pytest.mark.parametrize("group", STAGES)
def test_a_cell_means_the_same_to_the_catalog_and_the_stage(group: str) -> None:
    cls = STAGE_CLASSES[group]
    for name, spec in SPECS.items():
        if spec.group != group:
            continue
        for cell in PROBES:
            assert _stage(cls, name, cell) == _catalog(name, cell), (name, cell)


@pytest.mark.parametrize("cell", ["yes", "no", "t", "f", "y", "n", "1", "0", "None"])
def test_the_second_grammar_is_gone(cell: str) -> None:
    """Extraction once read yes/t/y/1 as TRUE; the catalog never did, and now neither does it."""
    with pytest.raises(AceInputError) as err:
        ace_assets.miniscope.extraction.ExtractionParams.from_dict({"center_psf": cell})
    assert err.value.column == "center_psf"
    with pytest.raises(AceInputError):
        resolve_parameters(None, 1, {"center_psf": cell})


@pytest.mark.parametrize("group", STAGES)
def test_engine_settings_use_the_same_grammar(group: str) -> None:
    cls = STAGE_CLASSES[group]
    for name, spec in ENGINE_SPECS.items():
        if spec.group != group:
            continue
        assert cls.parse({name: ""}) == {}  # an empty cell keeps the default
        if not spec.kind.startswith("opt_"):
            with pytest.raises(AceInputError) as err:
                cls.parse({name: "None"})
            assert err.value.column == name


def test_unknown_settings_are_refused_by_name() -> None:
    for group, cls in STAGE_CLASSES.items():
        with pytest.raises(AceInputError, match=f"unknown {group} parameters") as err:
            cls.from_mapping({"no_such_setting": 1})
        assert err.value.column == "no_such_setting"


def test_a_stage_class_cannot_drift_from_the_specs() -> None:
    with pytest.raises(TypeError, match="missing"):

        @stage_params("preprocess")
        class Missing(StageParams):
            crop_coords: tuple[int, int, int, int] | None

    with pytest.raises(TypeError, match="with a default of their own"):

        @stage_params("denoise")
        class Defaulted(StageParams):
            frameStep: int = 3
            goodRadius: float
            notchHalfWidth: int
            centerHalfHeightToLeave: int
            cutoff: float
            butterOrder: int
            wrapCorrection: bool
            stripe_method: str
            stripe_threshold: float
            stripe_max_tilt: float
            corrupt_row_ratio: float
            repair_corrupted_frames: bool


def _readme_section(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n") + 1
    end = text.find("\n## ", start)
    return text[start : end + 1 if end >= 0 else len(text)]


def test_the_readme_parameter_table_is_generated_from_the_specs() -> None:
    assert _readme_section("## Parameters") == markdown() + "\n", (
        "README ## Parameters is stale: paste `python -m ace_assets.catalog.parameter_table`"
    )
    for name in (*SPECS, *ENGINE_SPECS):
        assert f"| `{name}` |" in markdown()


def test_empty_means_missing_everywhere() -> None:
    assert resolve_parameters(None, 1, {"gSig": ""}).sources["gSig"] == "default"
    for cls in STAGE_CLASSES.values():
        assert cls.parse({n: "" for n in cls.specs()}) == {}
