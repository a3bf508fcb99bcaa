"""Which lines are sessions of one field of view, to be registered together.

Most explicit first:

1. ``registration_groups.csv`` in the project folder, one row per line
   (``group,line number``, the format of ``groups.csv``); lines it leaves out are not
   registered;
2. else a ``registration groups`` column in experiments.csv (an empty cell: the line's
   animal id), for an animal imaged through two lenses or at two depths;
3. else the catalog's ``id``: every session of one animal shows one field of view.

Only lines with a calcium imaging directory count; a line without an id is a group of its
own. Within a group sessions are ordered by date, then line number; the first is the
reference every other session is aligned to.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from ace_assets.catalog.experiments import Experiment, ExperimentCatalog
from ace_assets.cohort.groups import read_groups

REGISTRATION_GROUPS_CSV = "registration_groups.csv"
CATALOG_COLUMN = "registration groups"


def _catalog_cell(experiment: Experiment) -> str:
    for header, value in experiment.extra.items():
        if header.strip().lower() == CATALOG_COLUMN:
            return value.strip()
    return ""


def _order(experiment: Experiment) -> tuple[dt.date, int]:
    return (experiment.date or dt.date.max, experiment.line_number)


def registration_groups(
    catalog: ExperimentCatalog, project: Path
) -> tuple[dict[str, list[int]], str]:
    """group -> its lines (reference first), and where the grouping came from."""
    imaging = {n: e for n, e in catalog.lines.items() if e.has_calcium and not e.problems}
    file = Path(project) / REGISTRATION_GROUPS_CSV
    named: dict[int, str]
    if file.is_file():
        named = {n: g for n, g in read_groups(file).items() if n in imaging}
        source = str(file)
    else:
        cells = {n: _catalog_cell(e) for n, e in imaging.items()}
        column = any(cells.values())
        named = {n: cells[n] or e.animal_id or f"line {n} (no id)" for n, e in imaging.items()}
        source = f"catalog column '{CATALOG_COLUMN}'" if column else "catalog column 'id'"
    groups: dict[str, list[int]] = {}
    for line in sorted(named, key=lambda n: _order(imaging[n])):
        groups.setdefault(named[line], []).append(line)
    return dict(sorted(groups.items())), source
