"""The Dagster code location: ``dagster dev -w workspace.yaml`` loads ``defs``."""

from __future__ import annotations

import dagster as dg

from ace_assets.defs.calcium_assets import calcium_events, miniscope_results, miniscope_sources
from ace_assets.defs.catalog_assets import analysis_parameters, experiments
from ace_assets.defs.ephys_assets import (
    ephys_channels,
    ephys_results,
    ephys_spectrogram,
    filtered_ephys,
)
from ace_assets.defs.executors import executor_from_env
from ace_assets.defs.line_runs import LINE_JOB, per_line_selection
from ace_assets.defs.movie_assets import denoised_movie, motion_corrected_movie, preprocessed_movie
from ace_assets.defs.multimodal_assets import multimodal_alignment, multimodal_results
from ace_assets.defs.resources import deployment_paths, paths_tags
from ace_assets.defs.schedules import nightly_reconcile
from ace_assets.defs.sensors import follow_upstream_sensor, new_recordings
from ace_assets.defs.session_assets import session_files

all_assets = [
    experiments,
    analysis_parameters,
    session_files,
    denoised_movie,
    preprocessed_movie,
    motion_corrected_movie,
    miniscope_sources,
    calcium_events,
    miniscope_results,
    ephys_channels,
    filtered_ephys,
    ephys_spectrogram,
    ephys_results,
    multimodal_alignment,
    multimodal_results,
]


def build_definitions() -> dg.Definitions:
    """The code location, with the paths of this deployment (``ACE_*`` variables, else demo)."""
    tags = paths_tags()
    process_all = dg.define_asset_job(
        LINE_JOB,
        selection=per_line_selection(all_assets),
        description="Every per-line asset of one line number.",
        tags=tags,
    )
    return dg.Definitions(
        assets=all_assets,
        jobs=[process_all],
        sensors=[new_recordings, follow_upstream_sensor()],
        schedules=[nightly_reconcile],
        resources={"paths": deployment_paths()},
        executor=executor_from_env(),
    )


defs = build_definitions()


def process_line_job() -> dg.JobDefinition:
    """Reconstructable entry point for out-of-process runs (``dg.reconstructable``)."""
    return defs.resolve_job_def("process_line")
