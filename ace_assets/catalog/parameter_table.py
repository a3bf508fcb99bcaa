"""The README's ``## Parameters`` section, generated from the specs.

``python -m ace_assets.catalog.parameter_table`` prints it; a test checks that the
README carries exactly this text, so the documented defaults cannot drift from the ones
the code runs.
"""

from __future__ import annotations

from typing import Any

from ace_assets.catalog.parameter_specs import ENGINE_SPECS, SPECS, ParamSpec

INTRO = """\
Every setting of `analysis_parameters.csv`, with the default an empty cell gives. This
table is generated from `ace_assets/catalog/parameter_specs.py` (`SPECS`), the only
place a default lives: the stage settings (`DenoiseParams`, `PreprocessParams`,
`MotionParams`, `ExtractionParams`, `FrameTimingParams`) take theirs from it, so a notebook calling
`extract(movie)` runs what the asset runs. Cells are read with one grammar everywhere:
`TRUE`/`FALSE`, `None`, numbers, `(7, 7)`, `[0.5, 4]` and words; an empty cell keeps the
default. Regenerate with `python -m ace_assets.catalog.parameter_table`."""

ENGINE_INTRO = """\
Engine settings are not CSV columns and not part of a line's parameters: they tune how a
stage computes, not what. Code (notebooks, benches, tests) may set them, e.g.
`ExtractionParams(max_init_frames=1000)`."""


def cell(value: Any) -> str:
    """A default as it would be typed into the CSV."""
    if value is None:
        return "None"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, tuple):
        return "(" + ", ".join(cell(v) for v in value) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(cell(v) for v in value) + "]"
    return str(value)


def table(specs: dict[str, ParamSpec]) -> str:
    rows = ["| name | group | default | meaning |", "| --- | --- | --- | --- |"]
    for name, spec in specs.items():
        meaning = spec.doc.replace("|", "\\|")
        rows.append(f"| `{name}` | {spec.group} | `{cell(spec.default)}` | {meaning} |")
    return "\n".join(rows)


def markdown() -> str:
    """The whole ``## Parameters`` section, heading included, ending with a newline."""
    parts = [
        "## Parameters",
        INTRO,
        table(SPECS),
        ENGINE_INTRO,
        table(ENGINE_SPECS),
    ]
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
