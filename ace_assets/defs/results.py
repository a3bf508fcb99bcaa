"""Typed handles of asset results, passed between assets by :func:`results_io_manager`.

An asset writes its folder itself, atomically (:func:`ace_assets.defs.manifests.staged_output`),
so a failed run leaves the last good result in place; what Dagster passes downstream is only a
handle naming that folder, ``results/line_<n>/<asset>/`` (``results/catalog/<asset>/`` for
unpartitioned assets). A downstream asset names its upstream as a parameter annotated with
the handle type, so lineage is visible in the code and no asset name is spelled as a string.
Handles read the manifest lazily: a line without the modality never opens anything.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Self

import dagster as dg
import numpy as np
import pandas as pd

from ace_assets.catalog.parameters import LineParameters
from ace_assets.defs.manifests import MANIFEST, NotMaterializedError, asset_dir, staged_output
from ace_assets.defs.resources import PathsResource
from ace_assets.ephys.band_store import open_signal_store
from ace_assets.errors import AceInputError
from ace_assets.io.store import ArrayStore, load_npz


@dataclass(frozen=True)
class NotApplicable:
    """The value of a materialization on a line without the recordings the asset needs."""

    reason: str


@dataclass(frozen=True)
class Result:
    """One asset's folder for one line (or the catalog); its manifest read on first use."""

    folder: Path

    #: manifest entry naming the result's array store, if it has one
    STORE_KEY = "store"

    @classmethod
    def at(cls, paths: PathsResource, asset: dg.AssetsDefinition, line: int | None) -> Self:
        """The handle of ``asset`` for ``line``, outside a run's inputs (sensors, reports)."""
        return cls(asset_dir(paths, asset.key.path[-1], line))

    @classmethod
    def of(cls, context: dg.AssetExecutionContext, paths: PathsResource) -> Self:
        """The handle of the asset being materialized: where its result goes."""
        return cls(asset_dir(paths, context.asset_key.path[-1], _line(context)))

    @property
    def asset(self) -> str:
        return self.folder.name

    @cached_property
    def manifest(self) -> dict[str, Any]:
        target = self.folder / MANIFEST
        if not target.is_file():
            raise NotMaterializedError(
                f"'{self.asset}' of {self.folder.parent.name} has not been materialized "
                f"(no {target})"
            )
        return json.loads(target.read_text())

    def store(self) -> ArrayStore:
        """The result's array store; a clear error if it was dropped to save disk."""
        manifest = self.manifest
        dropped = manifest.get("movie_dropped")
        if dropped:
            raise AceInputError(
                f"{dropped['reason']}. Re-materialize '{self.asset}' for "
                f"{self.folder.parent.name.replace('_', ' ')} first (its QC and manifest were "
                "kept; the movie is recomputed from its own inputs), or set "
                "keep_intermediate_movies to TRUE to keep it next time",
                file=manifest.get(self.STORE_KEY),
                column="keep_intermediate_movies",
            )
        return open_signal_store(manifest[self.STORE_KEY])


class Parameters(Result):
    """``analysis_parameters`` of a line."""

    @cached_property
    def values(self) -> LineParameters:
        return LineParameters.from_json(self.manifest)


class SessionFiles(Result):
    """The raw recordings of a line, as ``session_files`` resolved them."""

    @property
    def miniscope(self) -> dict[str, Any] | None:
        return self.manifest.get("miniscope")

    @property
    def ephys(self) -> dict[str, Any] | None:
        return self.manifest.get("ephys")

    @property
    def modalities(self) -> frozenset[str]:
        return frozenset(m for m in ("miniscope", "ephys") if self.manifest.get(m) is not None)


class MovieResult(Result):
    """A movie stage: its movie store (``movie.npyd``), QC arrays and report."""

    STORE_KEY = "movie"

    def qc(self) -> dict[str, np.ndarray]:
        return load_npz(self.folder / "qc.npz")

    @property
    def stripe_frequencies_hz(self) -> list[float]:
        return list(self.manifest.get("stripe_frequencies_hz", []))


class SourcesResult(Result):
    """Extracted components (``sources``) and their traces."""

    @property
    def sources(self) -> str:
        return self.manifest["sources"]

    def traces(self) -> dict[str, np.ndarray]:
        return load_npz(self.manifest["traces"])

    @property
    def truth_match(self) -> dict[str, int]:
        """Demo data only: found component id -> generator's neuron ({} for real data)."""
        return self.manifest.get("truth_match") or {}


class EventsResult(Result):
    """Curated calcium events and the kept components' traces."""

    def events(self) -> pd.DataFrame:
        return pd.read_csv(self.manifest["events_csv"])

    def kept(self) -> dict[str, np.ndarray]:
        return load_npz(self.manifest["kept"])

    @property
    def fps(self) -> float:
        return float(self.manifest["fps"])


class EphysStore(Result):
    """An ephys stage held as a (samples, channels) store, with its manifest."""


class SpectrogramResult(Result):
    def spectrogram(self) -> dict[str, np.ndarray]:
        return load_npz(self.manifest["spectrogram"])


class PhaseResult(Result):
    """Hilbert phase and amplitude stores of the filtered channels."""

    STORE_KEY = "phase"

    @property
    def channels(self) -> list[str]:
        return list(self.manifest["channels"])


class AlignmentResult(Result):
    """Frame times on the ephys clock (relative to the line's zero time)."""

    def frame_times(self) -> np.ndarray:
        return load_npz(self.manifest["frame_times"])["frame_times_s"]

    @property
    def zero_time_s(self) -> float:
        return float(self.manifest["zero_time_s"])


def _line(context: dg.AssetExecutionContext) -> int | None:
    return int(context.partition_key) if context.has_partition_key else None


@contextmanager
def staged(context: dg.AssetExecutionContext, paths: PathsResource) -> Iterator[Path]:
    """:func:`staged_output` for the asset being materialized."""
    with staged_output(paths, context.asset_key.path[-1], _line(context)) as out:
        yield out


class ResultsIOManager(dg.IOManager):
    """Maps (asset key, partition) to the asset's folder; stores nothing itself.

    ``handle_output`` only checks that the handle an asset returns is its own folder (the
    asset has already swapped it into place); ``load_input`` builds the handle type the
    downstream parameter is annotated with.
    """

    def __init__(self, paths: PathsResource) -> None:
        self._paths = paths

    def _folder(self, context: dg.InputContext | dg.OutputContext) -> Path:
        line = int(context.asset_partition_key) if context.has_asset_partitions else None
        return asset_dir(self._paths, context.asset_key.path[-1], line)

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if isinstance(obj, Result) and obj.folder != self._folder(context):
            raise ValueError(f"{context.asset_key.to_user_string()} returned {obj.folder}")

    def load_input(self, context: dg.InputContext) -> Result:
        handle = context.dagster_type.typing_type
        if not (isinstance(handle, type) and issubclass(handle, Result)):
            raise TypeError(
                f"input '{context.name}' must be annotated with a Result type, not {handle!r}"
            )
        return handle(self._folder(context))


@dg.io_manager(
    required_resource_keys={"paths"},
    description="Typed handles of the results folders (each asset writes its own, atomically).",
)
def results_io_manager(init_context: dg.InitResourceContext) -> ResultsIOManager:
    return ResultsIOManager(init_context.resources.paths)


def results_asset(**kwargs: Any) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """``@dg.asset`` whose output is passed downstream as a typed handle (this module)."""

    def decorate(fn: Callable[..., Any]) -> dg.AssetsDefinition:
        with warnings.catch_warnings():
            # io_manager_def is a beta parameter in Dagster 1.13; an explicit resource key
            # would make every caller of dg.materialize pass the IO manager too
            warnings.simplefilter("ignore", dg.BetaWarning)
            return dg.asset(io_manager_def=results_io_manager, **kwargs)(fn)

    return decorate
