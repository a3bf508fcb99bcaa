"""CNMF-E class source extraction for 1-photon Miniscope movies (numpy/scipy/OpenCV only).

Entry points: :func:`extract` (movie -> :class:`ExtractionResult`), :class:`ExtractionParams`
(CSV-named settings), :func:`save_result` / :func:`load_result`, :func:`apply_rejections`
(curation by original component id) and :func:`evaluate_against_truth`.
"""

from __future__ import annotations

from .evaluation import evaluate_against_truth
from .params import ExtractionParams
from .pipeline import extract
from .result import ExtractionResult, apply_rejections, load_result, save_result
from .summary_images import correlation_pnr, streamed_correlation_pnr

__all__ = [
    "ExtractionParams",
    "ExtractionResult",
    "apply_rejections",
    "correlation_pnr",
    "evaluate_against_truth",
    "extract",
    "load_result",
    "save_result",
    "streamed_correlation_pnr",
]
