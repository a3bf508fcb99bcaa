"""Each asset writes its files into one folder, swapped into place only when complete.

Assets return a typed handle of that folder (:mod:`ace_assets.defs.results`) and
downstream assets read the JSON manifest in it, so nothing is pickled, every output is a
plain file other tools can open, and a failed run leaves the previous good folder untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ace_assets.defs.resources import PathsResource
from ace_assets.io.jsonio import read_json, write_json
from ace_assets.io.publish import publishing

MANIFEST = "manifest.json"


class NotMaterializedError(RuntimeError):
    """An upstream asset of this line has no result yet."""


def asset_dir(paths: PathsResource, asset: str, line: int | None = None) -> Path:
    base = paths.results / "catalog" if line is None else paths.line_dir(line)
    return base / asset


@contextmanager
def staged_output(paths: PathsResource, asset: str, line: int | None) -> Iterator[Path]:
    """A hidden folder beside the asset's folder, swapped in atomically only on success.

    One writer per asset and line at a time; stale parts of killed runs are cleaned first
    (:mod:`ace_assets.io.publish`).
    """
    with publishing(asset_dir(paths, asset, line)) as tmp:
        yield tmp


def write_manifest(folder: Path, data: dict[str, Any]) -> Path:
    return write_json(folder / MANIFEST, data)


def read_manifest(paths: PathsResource, asset: str, line: int | None = None) -> dict[str, Any]:
    target = asset_dir(paths, asset, line) / MANIFEST
    if not target.is_file():
        which = "" if line is None else f" for line {line}"
        raise NotMaterializedError(f"'{asset}'{which} has not been materialized (no {target})")
    return read_json(target)
