"""QC figures: saved as PNG beside the result, large enough to read.

Each figure is written at least :data:`MIN_WIDTH_PX` wide with readable fonts; the
asset's figures are then combined into one image that is the first metadata entry
(:mod:`ace_assets.defs.presentation`), so QC is one click away in the UI.
"""

from __future__ import annotations

import math
from pathlib import Path

import dagster as dg
import matplotlib

matplotlib.use("Agg")  # headless: runs on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ace_assets.io.store import atomic_write_bytes  # noqa: E402

MIN_WIDTH_PX = 1200
plt.rcParams.update(
    {
        "font.size": 10,
        "axes.titlesize": 10,
        "axes.labelsize": 10,
        "xtick.labelsize": 9,
        "ytick.labelsize": 9,
        "legend.fontsize": 9,
    }
)


def new_figure(width: float = 9.0, height: float = 3.5, ncols: int = 1, nrows: int = 1):
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
    return fig, axes


def colorbar(ax, mappable, label: str) -> None:
    """A colour bar beside ``ax`` whose label gives the quantity and its unit."""
    ax.figure.colorbar(mappable, ax=ax, label=label, fraction=0.046, pad=0.02)


def save_png(fig: Figure, path: Path) -> Path:
    """Write ``fig`` atomically, at least MIN_WIDTH_PX wide."""
    import io

    width_in = float(fig.get_size_inches()[0])
    dpi = max(100, math.ceil(MIN_WIDTH_PX / max(width_in, 1e-3)))
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=dpi)
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def figure_metadata(fig: Figure, path: Path, title: str) -> dg.MetadataValue:
    """Save ``fig`` to ``path``; the metadata entry names the file (the combined QC image
    embeds every figure of the asset, see :mod:`ace_assets.defs.presentation`)."""
    save_png(fig, path)
    return dg.MetadataValue.text(f"{title}: {path.name} (in the combined 'qc' figure)")
