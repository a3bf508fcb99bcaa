"""What a stage report dataclass shares: its arrays go to ``qc.npz``, the rest to the manifest."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

import numpy as np


class SplitReport:
    """Mixin for a report dataclass whose fields that do not apply are None.

    ``params`` (a settings dataclass) is written as a plain dict; field order is kept so
    manifests read the same run after run.
    """

    def _entries(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is not None:
                out[f.name] = asdict(value) if f.name == "params" else value
        return out

    def qc_arrays(self) -> dict[str, np.ndarray]:
        """The arrays kept in the asset's ``qc.npz``."""
        return {k: np.asarray(v) for k, v in self._entries().items() if isinstance(v, np.ndarray)}

    def manifest(self) -> dict[str, Any]:
        """Everything else, for the asset's manifest: params, scalars, counts."""
        return {k: v for k, v in self._entries().items() if not isinstance(v, np.ndarray)}
