"""Synthetic motion-corrected 1-photon movies with ground truth, for the extraction tests.

Uses the shared generator (``ace_assets.demo.miniscope_synth``) with motion and the V4
travelling bands switched off (those are removed by earlier stages); the strong smooth,
fluctuating background, flicker, bleaching and sensor noise are kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ace_assets.demo.miniscope_synth import MiniscopeSynthConfig, SyntheticMiniscope


@dataclass
class SynthMovie:
    movie: np.ndarray  # (T, H, W) uint8 or float32
    centers: np.ndarray  # (N, 2) (y, x)
    C: np.ndarray  # (N, T)
    S: np.ndarray  # (N, T)
    footprints: np.ndarray  # (N, H, W)
    fps: float


def make_movie(
    *,
    height: int = 112,
    width: int = 112,
    n_frames: int = 800,
    n_neurons: int = 36,
    seed: int = 1,
    fps: float = 30.0,
    noise_sd: float = 3.0,
    neuron_radius: float = 3.0,
    quantize: bool = True,
    **overrides: float,
) -> SynthMovie:
    cfg = MiniscopeSynthConfig(
        height=height,
        width=width,
        n_frames=n_frames,
        fps=fps,
        n_neurons=n_neurons,
        seed=seed,
        neuron_radius=neuron_radius,
        noise_sd=noise_sd,
        motion_amplitude=0.0,
        band_amplitude=0.0,
        **overrides,
    )
    syn = SyntheticMiniscope(cfg)
    movie = syn.render(0, n_frames, motion=False, bands=False, quantize=quantize)
    truth = syn.truth
    return SynthMovie(
        movie=movie,
        centers=truth["centers"].astype(np.float64),
        C=truth["C"],
        S=truth["S"],
        footprints=truth["footprints"],
        fps=fps,
    )


def empty_movie(
    *, height: int = 64, width: int = 64, n_frames: int = 300, seed: int = 3
) -> np.ndarray:
    """Background and noise only: no neurons."""
    cfg = MiniscopeSynthConfig(
        height=height,
        width=width,
        n_frames=n_frames,
        n_neurons=0,
        min_spikes=0,
        seed=seed,
        motion_amplitude=0.0,
        band_amplitude=0.0,
    )
    syn = SyntheticMiniscope(cfg)
    return syn.render(0, n_frames, motion=False, bands=False, quantize=True)
