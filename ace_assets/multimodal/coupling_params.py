"""Settings of the fluorescence-EEG coupling, from the catalog's ``coupling`` parameters.

Every setting is in seconds or Hz, never frames or samples, so one CSV row means the same
analysis at any frame rate, ephys rate and movie size.
"""

from __future__ import annotations

import math

from ace_assets.catalog.stage_params import StageParams, stage_params
from ace_assets.errors import AceInputError

RUN_CONFIG = "ops.analysis_parameters.config.overrides"


def _where(column: str) -> str:
    return (
        f"set column '{column}' of analysis_parameters.csv or the run-config key "
        f"{RUN_CONFIG}.{column}"
    )


@stage_params("coupling", frozen=True)
class CouplingParams(StageParams):
    """Windows, taper bandwidth, lag range and EEG bands of the coupling analysis."""

    coupling_window_s: float
    coupling_step_s: float
    coupling_bandwidth_hz: float
    coupling_max_lag_s: float
    coupling_bands_hz: list[list[float]]
    coupling_alpha: float

    @property
    def bands(self) -> list[tuple[float, float]]:
        return [(float(a), float(b)) for a, b in self.coupling_bands_hz]

    def validate(self) -> None:
        positive = {
            "coupling_window_s": self.coupling_window_s,
            "coupling_step_s": self.coupling_step_s,
            "coupling_bandwidth_hz": self.coupling_bandwidth_hz,
            "coupling_max_lag_s": self.coupling_max_lag_s,
        }
        for column, value in positive.items():
            if not (math.isfinite(value) and value > 0):
                raise AceInputError(
                    f"{value!r} is not a positive number; {_where(column)}", column=column
                )
        if not 0 < self.coupling_alpha < 1:
            raise AceInputError(
                f"{self.coupling_alpha!r} is not a probability between 0 and 1 (such as 0.05); "
                f"{_where('coupling_alpha')}",
                column="coupling_alpha",
            )
        for low, high in self.bands:
            if not (0 < low < high):
                raise AceInputError(
                    f"band [{low}, {high}] Hz needs 0 < low < high; {_where('coupling_bands_hz')}",
                    column="coupling_bands_hz",
                )

    def check_rates(self, fps: float, ephys_fs: float) -> None:
        """Bands the ephys cannot carry, or windows too short for the frame rate, are refused."""
        for low, high in self.bands:
            if high >= ephys_fs / 2:
                raise AceInputError(
                    f"band [{low}, {high}] Hz reaches the ephys Nyquist frequency "
                    f"({ephys_fs / 2:g} Hz); lower it: {_where('coupling_bands_hz')}",
                    column="coupling_bands_hz",
                )
        if self.coupling_window_s * fps < 16:
            raise AceInputError(
                f"a {self.coupling_window_s:g} s window holds under 16 frames at {fps:g} "
                f"frames/s; lengthen it: {_where('coupling_window_s')}",
                column="coupling_window_s",
            )
