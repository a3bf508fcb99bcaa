"""``python -m ace_assets.catalog check PROJECT_PATH [--data DATA_PATH] [--path-map FILE]``.

Exit status: 0 when no line has an error (warnings and rows without a line number
are printed, and do not fail), 1 when a line has an error, 2 when the catalog or the
path map cannot be read at all.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ace_assets.catalog.check import check_project, render
from ace_assets.catalog.path_map import PathMap
from ace_assets.errors import AceInputError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ace_assets.catalog",
        description="Tools for a project's catalog CSVs (no Dagster needed).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check",
        help="validate experiments.csv, analysis_parameters.csv and the files of each line",
        description=(
            "Validate experiments.csv and analysis_parameters.csv in PROJECT_PATH and, with "
            "--data, the folders and files each line points at. Prints one row per line with "
            "its problems. Exit status: 0 no errors, 1 a line has an error, 2 unreadable input."
        ),
    )
    check.add_argument("project", metavar="PROJECT_PATH", help="folder with experiments.csv")
    check.add_argument(
        "--data",
        metavar="DATA_PATH",
        help="root of the raw recordings; without it, files are not checked",
    )
    check.add_argument(
        "--path-map",
        metavar="FILE",
        help='JSON file of ordered prefix rewrites, e.g. {"D:\\\\Lab\\\\data": "."} '
        "(the paths resource's path_map / ACE_PATH_MAP)",
    )
    args = parser.parse_args(argv)
    try:
        path_map = PathMap.parse(args.path_map) if args.path_map else PathMap()
        report = check_project(args.project, args.data, path_map)
    except AceInputError as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return 2
    print(render(report))
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
