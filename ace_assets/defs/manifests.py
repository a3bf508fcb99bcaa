"""Each asset records what it wrote in a JSON manifest beside its files.

Assets return ``MaterializeResult`` and downstream assets read manifests,
so no pickling IO manager stores results and every output is a plain file
other tools can open.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ace_assets.defs.resources import PathsResource
from ace_assets.io.store import atomic_write_text


class NotMaterializedError(RuntimeError):
    """An upstream asset of this line has no result yet."""


def asset_dir(paths: PathsResource, asset: str, line: int | None = None) -> Path:
    base = paths.results / "catalog" if line is None else paths.line_dir(line)
    return base / asset


def write_manifest(
    paths: PathsResource, asset: str, line: int | None, data: dict[str, Any]
) -> Path:
    target = asset_dir(paths, asset, line) / "manifest.json"
    return atomic_write_text(target, json.dumps(data, indent=2, default=_default))


def read_manifest(paths: PathsResource, asset: str, line: int | None = None) -> dict[str, Any]:
    target = asset_dir(paths, asset, line) / "manifest.json"
    if not target.is_file():
        which = "" if line is None else f" for line {line}"
        raise NotMaterializedError(f"'{asset}'{which} has not been materialized (no {target})")
    return json.loads(target.read_text())


def _default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
