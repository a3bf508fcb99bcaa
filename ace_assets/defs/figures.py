"""QC figures: saved as PNG beside the result and embedded in the asset's metadata."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import dagster as dg
import matplotlib

matplotlib.use("Agg")  # headless: runs on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ace_assets.io.store import atomic_write_bytes  # noqa: E402


def new_figure(width: float = 6.0, height: float = 3.0, ncols: int = 1, nrows: int = 1):
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False)
    return fig, axes


def figure_metadata(fig: Figure, path: Path, title: str) -> dg.MetadataValue:
    """Write ``fig`` to ``path`` atomically and return markdown that shows it in the UI."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=70)
    plt.close(fig)
    payload = buffer.getvalue()
    atomic_write_bytes(path, payload)
    encoded = base64.b64encode(payload).decode("ascii")
    return dg.MetadataValue.md(
        f"**{title}** (`{path.name}`)\n\n![{title}](data:image/png;base64,{encoded})"
    )
