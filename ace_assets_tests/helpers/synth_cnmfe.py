"""Synthetic motion-corrected 1-photon movies with ground truth, for the extraction tests.

Uses the shared generator (``ace_assets.demo.miniscope_synth``) with motion and the V4
travelling bands switched off (those are removed by earlier stages); the strong smooth,
fluctuating background, flicker, bleaching and sensor noise are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


# ---------------------------------------------------------------- the harder family


def spec_defaults() -> dict:
    """What an empty analysis_parameters.csv row gives extraction (SPECS' defaults)."""
    from ace_assets.catalog.stage_params import group_defaults

    return group_defaults("extraction")


@dataclass
class FamilyMovie:
    movie: np.ndarray  # (T, H, W) uint8, motion and corruptions removed
    centers: np.ndarray  # (N, 2) true centres in the movie's pixels (some just outside it)
    interior: np.ndarray  # (N,) bool: centre well inside the field (recall counts these)
    C: np.ndarray
    S: np.ndarray
    neuron_radius: float
    fps: float
    stripe_frequencies_hz: list[float]  # where the movie's bands pass a fixed row

    cropped: bool = False

    def scores(self, result) -> dict[str, Any]:
        """Recall over the interior neurons, precision over the sources found in the
        interior: in a crop, a neuron cut by the edge shows only its inner part, whose
        centre lies more than the 4 px match distance from the true one."""
        from ace_assets.miniscope.extraction.evaluation import match_centers

        ti, fi = match_centers(self.centers, result.centers, 4.0)
        found = np.ones(result.n_components, dtype=bool)
        if self.cropped:
            _, h, w = self.movie.shape
            r, c = self.neuron_radius, np.asarray(result.centers).reshape(-1, 2)
            found = (c[:, 0] >= r) & (c[:, 0] < h - r) & (c[:, 1] >= r) & (c[:, 1] < w - r)
        n_found = int(found.sum())
        return {
            "recall": float(np.isin(np.flatnonzero(self.interior), ti).mean()),
            "precision": float(found[fi].sum()) / n_found if n_found else 0.0,
            "unmatched": np.setdiff1d(np.arange(result.n_components), fi),
        }


def family_movie(
    name: str,
    n_frames: int,
    *,
    band_scale: float = 0.0,
    crop: tuple[int, int] | None = None,
    extra: np.ndarray | None = None,
) -> FamilyMovie:
    """A member of HARD_FAMILY as the extraction stage receives it from earlier stages:
    no motion, no corrupted frames, and its bands at ``band_scale`` of their amplitude
    (0: removed; 0.3-0.5: what an imperfect denoiser leaves). ``crop`` keeps the central
    ``(h, w)`` pixels (same neurons, texture and bands, a smaller field, for fast tests);
    ``extra`` (T, h, w) float is added before quantisation."""
    from dataclasses import replace

    from ace_assets.demo.families import family_member

    cfg = family_member(name, n_frames=n_frames)
    if band_scale:
        cfg = replace(
            cfg,
            band_amplitude=cfg.band_amplitude * band_scale,
            extra_bands=tuple(
                replace(b, amplitude=b.amplitude * band_scale) for b in cfg.extra_bands
            ),
        )
    syn = SyntheticMiniscope(cfg)
    h, w = crop or (cfg.height, cfg.width)
    y0, x0 = (cfg.height - h) // 2, (cfg.width - w) // 2
    movie = np.empty((n_frames, h, w), dtype=np.uint8)
    for a in range(0, n_frames, 50):
        b = min(a + 50, n_frames)
        block = syn.render(a, b, motion=False, bands=band_scale > 0, corrupt=False, quantize=False)
        block = block[:, y0 : y0 + h, x0 : x0 + w]
        if extra is not None:
            block = block + extra[a:b]
        movie[a:b] = np.clip(np.rint(block), 0, 255)
    r = cfg.neuron_radius
    centers = syn.centers.astype(np.float64) - [y0, x0]
    inside = [(centers[:, i] >= -2 * r) & (centers[:, i] < n + 2 * r) for i, n in enumerate((h, w))]
    keep = np.flatnonzero(inside[0] & inside[1])
    centers = centers[keep]
    interior = (
        (centers[:, 0] >= r)
        & (centers[:, 0] < h - r)
        & (centers[:, 1] >= r)
        & (centers[:, 1] < w - r)
    )
    if crop is None:
        interior[:] = True
    freqs = [bd.cycles * bd.speed / cfg.height * cfg.fps for bd in cfg.band_components()]
    return FamilyMovie(
        movie=movie,
        centers=centers,
        interior=interior,
        C=syn.C[keep],
        S=syn.S[keep],
        neuron_radius=r,
        fps=cfg.fps,
        stripe_frequencies_hz=freqs if band_scale else [],
        cropped=crop is not None,
    )


def sharp_band(
    shape: tuple[int, int, int],
    fps: float,
    *,
    period_px: float,
    speed: float,
    amplitude: float,
    columns: slice,
    kappa: float = 8.0,
) -> tuple[np.ndarray, float]:
    """A narrow bright band (von Mises profile across rows) travelling down ``columns``.

    Unlike the generator's sinusoidal bands, a pixel sees it as a sharp rise and fall each
    time it passes, so CNMF-E's seeding takes it for a transient, the way residual stripes
    of real recordings became 4-9 x 35-44 px "cells". Returns the (T, H, W) float32 band
    and the frequency (Hz) at which it passes a row.
    """
    t, h, w = shape
    y = np.arange(h, dtype=np.float32)[None, :, None]
    tt = np.arange(t, dtype=np.float32)[:, None, None]
    profile = np.exp(kappa * (np.cos(2 * np.pi * (y - speed * tt) / period_px) - 1.0))
    out = np.zeros((t, h, w), dtype=np.float32)
    out[:, :, columns] = amplitude * profile
    return out, speed / period_px * fps
