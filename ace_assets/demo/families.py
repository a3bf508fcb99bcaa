"""A harder family of synthetic Miniscope movies: what the demo's movies are not.

Why: the chain was tuned on the demo generator's movies (128 x 128 or 608 x 608, one band
frequency, smooth background). Real recordings differ in frame size, in where the band
noise sits in the spectrum (a real one-photon movie had ~91% of its stripe power below
20 cycles per frame height; V4 electronic noise sits far higher), in its tilt and speed,
in texture (vessels, or nothing at all), in how often neurons fire, and wireless links
corrupt rows and whole frames. Every member is meant to be processed with default
settings; each varies several of those axes at once. ``n_frames`` and ``seed`` can be
changed without changing what a member is.
"""

from __future__ import annotations

from dataclasses import replace

from ace_assets.demo.miniscope_synth import BandSpec, MiniscopeSynthConfig

_COMMON = dict(fps=30.0, noise_sd=3.0, background_level=80.0)

HARD_FAMILY: dict[str, MiniscopeSynthConfig] = {
    # a real-like one-photon movie: strong, slow, tilted bands well below 20 cycles/height
    "lowfreq_548x484": MiniscopeSynthConfig(
        height=548,
        width=484,
        n_frames=1000,
        n_neurons=90,
        neuron_radius=6.5,
        motion_amplitude=3.0,
        band_amplitude=5.0,
        band_cycles=4,
        band_speed=0.6,
        band_cycles_x=1.0,
        extra_bands=(BandSpec(11.0, 3.0, 1.1, -1.0), BandSpec(17.0, 1.5, 2.0, 0.0)),
        texture="vessels",
        neuron_baseline=4.0,
        seed=101,
        **_COMMON,
    ),
    # small frame, bands at ~19 cycles per height
    "bands19_240x300": MiniscopeSynthConfig(
        height=240,
        width=300,
        n_frames=1000,
        n_neurons=35,
        neuron_radius=6.0,
        motion_amplitude=2.5,
        band_amplitude=5.0,
        band_cycles=19,
        band_speed=1.0,
        texture="blobs",
        seed=102,
        **_COMMON,
    ),
    # V4 electronic noise near the top of the spectrum, at full V4 size
    "highfreq_608": MiniscopeSynthConfig(
        height=608,
        width=608,
        n_frames=1000,
        n_neurons=140,
        neuron_radius=7.0,
        motion_amplitude=4.0,
        band_amplitude=4.0,
        band_cycles=200,
        band_speed=1.5,
        extra_bands=(BandSpec(95.0, 2.0, 2.5, 0.0),),
        texture="vessels",
        neuron_baseline=3.0,
        seed=103,
        **_COMMON,
    ),
    # textureless background, sparse and quiet neurons, very slow bands
    "quiet_flat_320": MiniscopeSynthConfig(
        height=320,
        width=320,
        n_frames=1000,
        n_neurons=22,
        neuron_radius=6.5,
        firing_rate=0.15,
        amplitude_range=(14.0, 24.0),
        motion_amplitude=3.0,
        band_amplitude=4.0,
        band_cycles=2,
        band_speed=0.3,
        texture="flat",
        seed=104,
        **_COMMON,
    ),
    # a wireless Miniscope: small frames, corrupted rows and frames, strong flicker
    "wireless_200": MiniscopeSynthConfig(
        height=200,
        width=200,
        n_frames=1000,
        n_neurons=22,
        neuron_radius=5.5,
        motion_amplitude=2.0,
        band_amplitude=3.0,
        band_cycles=40,
        band_speed=2.0,
        flicker_sd=0.06,
        corrupt_rows_fraction=0.02,
        black_frames=3,
        white_frames=2,
        duplicate_frames=4,
        texture="blobs",
        seed=105,
        **_COMMON,
    ),
    # tilted bands in two directions at mid and low frequency, non-rigid motion
    "tilted_400x360": MiniscopeSynthConfig(
        height=400,
        width=360,
        n_frames=1000,
        n_neurons=60,
        neuron_radius=6.5,
        motion_amplitude=3.0,
        nonrigid_amplitude=1.0,
        band_amplitude=4.0,
        band_cycles=60,
        band_speed=1.2,
        band_cycles_x=8.0,
        extra_bands=(BandSpec(6.0, 3.0, 0.8, -2.0),),
        texture="vessels",
        neuron_baseline=3.0,
        seed=106,
        **_COMMON,
    ),
}


def family_member(
    name: str, *, n_frames: int | None = None, seed: int | None = None
) -> MiniscopeSynthConfig:
    """One member's configuration, optionally shorter/longer or with another seed."""
    if name not in HARD_FAMILY:
        raise KeyError(f"unknown family member {name!r}; choose from {sorted(HARD_FAMILY)}")
    cfg = HARD_FAMILY[name]
    changes: dict = {}
    if n_frames is not None:
        changes["n_frames"] = int(n_frames)
        # the same number of corrupted frames per frame count
        for key in ("black_frames", "white_frames", "duplicate_frames"):
            value = getattr(cfg, key)
            if value:
                changes[key] = max(1, round(value * n_frames / cfg.n_frames))
    if seed is not None:
        changes["seed"] = int(seed)
    return replace(cfg, **changes)
