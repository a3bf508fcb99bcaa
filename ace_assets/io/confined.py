"""Raw files are read only where they really are inside data_path.

A catalog folder is resolved under data_path (``catalog.paths.resolve_under``), but a
file or subfolder inside it may still be a symbolic link to anywhere on the server. The
readers would follow it: the header of a file the lab never meant to share would land in a
result, and a link to a device or a huge file could stall a run. So every file is resolved
(all links followed) before it is opened, and one that ends outside data_path is refused.
Links that stay inside data_path are fine: labs use them to avoid copying movies.
"""

from __future__ import annotations

from pathlib import Path

from ace_assets.errors import AceInputError

COPY_HINT = (
    "copy the file into the session folder instead of linking it, or move data_path up "
    "to a folder that contains the link's target"
)


class OutsideDataPathError(AceInputError):
    """A raw file (or folder) that leads outside data_path, or cannot be resolved."""


def confined_file(path: str | Path, root: str | Path) -> Path:
    """``path`` with every link followed, refused if missing or outside ``root``.

    The returned path is the one to open: it is what was checked, so a link changed
    afterwards cannot redirect the read.
    """
    path = Path(path)
    resolved_root = Path(root).resolve()
    try:
        target = path.resolve(strict=True)
    except FileNotFoundError:
        raise OutsideDataPathError(
            f"not found (a missing file, or a link to {_link_target(path)} that does not exist)",
            file=path,
        ) from None
    except (OSError, RuntimeError) as exc:  # a link loop: RuntimeError before Python 3.13
        raise OutsideDataPathError(f"cannot be resolved ({exc})", file=path) from None
    _require_inside(path, target, resolved_root)
    return target


def confined_tree(folder: str | Path, root: str | Path, *, depth: int = 1) -> None:
    """Refuse any entry of ``folder`` (and of its subfolders, ``depth`` levels down) that
    leads outside ``root``.

    For readers that choose their files by looking around a folder (the Miniscope reader
    probes subfolders' ``metaData.json`` before it knows which files it wants), checking
    everything they may look at, before they look, is simpler to trust than checking each
    open. A dangling link is skipped when it points inside ``root`` (readers see no file
    there) and refused when it points outside (it would be followed once its target exists).
    """
    resolved_root = Path(root).resolve()
    _require_inside(Path(folder), Path(folder).resolve(), resolved_root)
    pending = [(Path(folder), 0)]
    while pending:
        current, level = pending.pop()
        for entry in sorted(current.iterdir()):
            if entry.is_symlink():  # a plain entry of a folder inside root is inside root
                try:
                    target = entry.resolve(strict=False)
                except (OSError, RuntimeError) as exc:
                    raise OutsideDataPathError(f"cannot be resolved ({exc})", file=entry) from None
                _require_inside(entry, target, resolved_root)
            if level < depth and entry.is_dir():
                pending.append((entry, level + 1))


def _require_inside(path: Path, target: Path, root: Path) -> None:
    if target != root and root not in target.parents:
        where = (
            "is"
            if path.absolute() == target
            else f"leads through a symbolic link to {target}, which is"
        )
        raise OutsideDataPathError(
            f"{where} outside data_path {root}; raw files are read only inside data_path. "
            f"Hint: {COPY_HINT}",
            file=path,
        )


def _link_target(path: Path) -> str:
    try:
        return str(path.readlink()) if path.is_symlink() else str(path)
    except OSError:
        return str(path)
