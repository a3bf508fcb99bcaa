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
    blurred_cells: int = 0,
    blurred_sigma: float = 9.0,
    blurred_amplitude: float = 15.0,
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
    movie = syn.render(0, n_frames, motion=False, bands=False, quantize=False)
    if blurred_cells:
        movie += _out_of_focus(
            height, width, n_frames, fps, blurred_cells, blurred_sigma, blurred_amplitude, seed
        )
    if quantize:
        movie = np.clip(np.rint(movie), 0, 255).astype(np.uint8)
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


def _out_of_focus(
    h: int, w: int, t: int, fps: float, n: int, sigma: float, amp: float, seed: int
) -> np.ndarray:
    """Blurred, active out-of-focus cells: the 1-photon background that is not smooth."""
    rng = np.random.default_rng([seed, 99])
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    g = np.exp(-1.0 / (1.0 * fps))
    out = np.zeros((t, h, w), dtype=np.float32)
    for _ in range(n):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2)).astype(np.float32)
        spikes = (rng.random(t) < 0.5 / fps) * rng.uniform(0.5, 1.5, t)
        c = np.zeros(t, dtype=np.float32)
        for i in range(t):
            c[i] = (g * c[i - 1] if i else 0.0) + spikes[i]
        out += amp * c[:, None, None] * blob[None]
    return out
