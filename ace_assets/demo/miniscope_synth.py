"""Synthetic 1-photon Miniscope movie with known ground truth.

Why: every stage of the calcium chain (denoise, motion correction, CNMF-E,
phase-locking) needs a movie whose answer is known. The movie model is

    F(t) = corrupt_t(flicker(t) * bleach(t) * warp_t(B(t) + sum_n a_n C_n(t)) + bands(t) + noise)

where ``warp_t`` moves the scene by the rigid shift ``shifts[t] = (dy, dx)``
(plus an optional smooth non-rigid field): ``frame[y, x] = scene[y - dy, x - dx]``.
A motion corrector that reports the shift it *applies* will therefore return
``-shifts``. Footprints ``a_n`` peak at 1, so ``C`` is the grey-level rise at a
neuron's centre before bleaching and flicker.

All per-frame time series (traces, shifts, background, bleaching, flicker) are
small and computed once; frames are rendered on demand, and the noise of frame
``t`` is seeded by ``(seed, t)``, so any frame range is reproducible on its own
and memory does not grow with the movie length.

Beyond the demo: the knobs below vary what real recordings vary, so the harder family in
:mod:`ace_assets.demo.families` can be built from them: any frame size; several travelling
band components, each of any frequency and tilted (``cycles_x``); a background with
texture (``vessels``) or none (``flat``); resting neuron brightness; and the corruptions of
wireless Miniscopes (``corrupt_*``: garbage or torn rows, black, white and repeated frames),
recorded in the truth (``corrupt_frames``, ``corrupt_kind``, ``corrupt_rows``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import lfilter
from scipy.special import i0

# Independent random streams, so changing one corruption does not reshuffle the others.
_FOOTPRINTS, _SPIKES, _BACKGROUND, _MOTION, _FLICKER, _BANDS, _NONRIGID, _NOISE = range(8)
_TEXTURE, _CORRUPT = 8, 9

#: ``corrupt_kind`` codes in the truth
CORRUPT_ROWS, CORRUPT_BLACK, CORRUPT_WHITE, CORRUPT_DUPLICATE = 1, 2, 3, 4
TEXTURES = ("blobs", "vessels", "flat")


@dataclass(frozen=True)
class BandSpec:
    """One travelling band component: ``amplitude * sin(2 pi (cycles (y - speed t) / H
    + cycles_x x / W) + phase)``; ``cycles_x != 0`` tilts the bands."""

    cycles: float
    amplitude: float
    speed: float = 1.5  # px per frame, down the image
    cycles_x: float = 0.0


@dataclass
class MiniscopeSynthConfig:
    """Parameters of the synthetic movie; an amplitude of 0 switches that corruption off."""

    height: int = 128
    width: int = 128
    n_frames: int = 600
    fps: float = 30.0
    n_neurons: int = 30
    seed: int = 0
    # gSig-like: standard deviation (px) of the Gaussian footprint; the visible cell
    # radius is about 2x this, so CNMF-E's gSiz ~ 4 * neuron_radius + 1.
    neuron_radius: float = 3.0
    min_distance_factor: float = 3.0  # minimum centre distance = factor * neuron_radius
    firing_rate: float = 0.5  # Hz, mean rate of every neuron
    min_spikes: int = 3  # every neuron fires at least this often (so it is findable)
    decay_time: float = 0.4  # s, calcium decay (AR(1) if rise_time == 0)
    rise_time: float = 0.0  # s, > 0 gives an AR(2) kernel
    amplitude_range: tuple[float, float] = (18.0, 32.0)  # grey levels per spike at the centre
    noise_sd: float = 3.0  # grey levels, white Gaussian sensor noise
    background_level: float = 80.0  # grey levels, static 1-photon background
    background_fluctuation: float = 0.35  # relative amplitude of the slow background blobs
    n_background_components: int = 3
    bleach_fraction: float = 0.15  # fraction of brightness lost as t -> infinity
    bleach_tau_s: float | None = None  # None: one third of the movie's duration
    motion_amplitude: float = 2.0  # px, max |rigid shift| (smooth random walk, sub-pixel)
    nonrigid_amplitude: float = 0.0  # px, max |non-rigid displacement|
    band_amplitude: float = 4.0  # grey levels, travelling horizontal bands (V4 noise)
    band_cycles: int | None = None  # bands per frame height; None: round(0.2 * height)
    band_speed: float = 1.5  # px per frame, bands travel down the image
    band_cycles_x: float = 0.0  # cycles across the width: tilts the main band
    extra_bands: tuple[BandSpec, ...] = ()  # more band components, added to the main one
    flicker_sd: float = 0.02  # relative sd of the per-frame whole-frame gain
    texture: str = "blobs"  # "blobs" (smooth), "vessels" (+ dark vessel network), "flat"
    vessel_contrast: float = 0.3  # fraction of the background a vessel's core absorbs
    n_vessels: int = 6
    neuron_baseline: float = 0.0  # grey levels of resting fluorescence at a neuron's centre
    corrupt_rows_fraction: float = 0.0  # fraction of frames with a block of garbage/torn rows
    black_frames: int = 0  # frames read as all zero
    white_frames: int = 0  # frames read as saturated
    duplicate_frames: int = 0  # frames that repeat the previous frame exactly
    # Phase locking: per-frame ephys oscillation phase (rad, shape (n_frames,)).
    lock_phase: np.ndarray | None = field(default=None, repr=False)
    locked_fraction: float = 0.0  # fraction of neurons whose firing follows lock_phase
    preferred_phase: float = 1.0  # rad, phase at which locked neurons fire most
    lock_kappa: float = 3.0  # von Mises concentration of the locked rate modulation
    # Another session of the same animal (:mod:`ace_assets.demo.sessions_synth`): neuron
    # centres (N, 2) (y, x) and footprint shapes (N, 3) (sd along, sd across, axis angle in
    # rad) given instead of drawn. None: drawn from ``seed`` as always.
    neuron_centers: np.ndarray | None = field(default=None, repr=False)
    neuron_shapes: np.ndarray | None = field(default=None, repr=False)

    def resolved_band_cycles(self) -> int:
        if self.band_cycles is not None:
            return int(self.band_cycles)
        return max(1, int(round(0.2 * self.height)))

    def band_components(self) -> tuple[BandSpec, ...]:
        """Every band component: the main one (if its amplitude is not 0) and the extras."""
        main = BandSpec(
            float(self.resolved_band_cycles()),
            float(self.band_amplitude),
            float(self.band_speed),
            float(self.band_cycles_x),
        )
        return tuple(b for b in (main, *self.extra_bands) if b.amplitude != 0)

    def resolved_bleach_tau(self) -> float:
        if self.bleach_tau_s is not None:
            return float(self.bleach_tau_s)
        return max(self.n_frames / self.fps / 3.0, 1e-3)


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *stream])


def ar_coefficients(decay_time: float, rise_time: float, fps: float) -> np.ndarray:
    """AR coefficients g with c[t] = sum_i g[i] c[t-1-i] + s[t]."""
    d = np.exp(-1.0 / (decay_time * fps))
    if rise_time <= 0:
        return np.array([d])
    r = np.exp(-1.0 / (rise_time * fps))
    return np.array([d + r, -d * r])


def _kernel_peak(g: np.ndarray, n: int = 2000) -> float:
    impulse = np.zeros(n)
    impulse[0] = 1.0
    return float(lfilter([1.0], np.r_[1.0, -g], impulse).max())


def _smooth_walk(rng: np.random.Generator, n: int, tau_frames: float, smooth: float) -> np.ndarray:
    """Zero-mean, mean-reverting smooth random series scaled to max |x| = 1."""
    a = np.exp(-1.0 / max(tau_frames, 1.0))
    x = lfilter([1.0], [1.0, -a], rng.standard_normal(n + 200))[200:]
    if smooth > 0:
        x = gaussian_filter1d(x, smooth, mode="nearest")
    x = x - x.mean()
    peak = np.abs(x).max()
    return x / peak if peak > 0 else x


def _vessels(h: int, w: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """A static network of dark, smoothly winding vessels in [0, 1] (1 = vessel core)."""
    canvas = np.zeros((h, w), np.float32)
    d = float(max(h, w))
    for _ in range(n):
        y, x = rng.uniform(0, h), rng.uniform(0, w)
        angle = rng.uniform(0, 2 * np.pi)
        pts = []
        for _ in range(60):
            pts.append((x, y))
            angle += rng.normal(0, 0.25)
            x += np.cos(angle) * d / 40
            y += np.sin(angle) * d / 40
        width = max(1, int(round(rng.uniform(0.004, 0.012) * d)))
        poly = np.round(np.array(pts)).astype(np.int32)[None]
        cv2.polylines(canvas, poly, False, 1.0, thickness=width, lineType=cv2.LINE_AA)
    canvas = cv2.GaussianBlur(canvas, (0, 0), max(1.0, 0.003 * d))
    return np.clip(canvas, 0.0, 1.0)


def _place_centres(cfg: MiniscopeSynthConfig, rng: np.random.Generator) -> np.ndarray:
    r = cfg.neuron_radius
    margin = 2.5 * r + cfg.motion_amplitude + cfg.nonrigid_amplitude + 1.0
    lo, hi_y, hi_x = margin, cfg.height - 1 - margin, cfg.width - 1 - margin
    if hi_y <= lo or hi_x <= lo:
        raise ValueError(f"frame {cfg.height}x{cfg.width} too small for neuron_radius {r}")
    min_d2 = (cfg.min_distance_factor * r) ** 2
    centres: list[np.ndarray] = []
    for _ in range(200 * max(cfg.n_neurons, 1)):
        if len(centres) == cfg.n_neurons:
            break
        c = np.array([rng.uniform(lo, hi_y), rng.uniform(lo, hi_x)])
        if all(((c - o) ** 2).sum() >= min_d2 for o in centres):
            centres.append(c)
    if len(centres) < cfg.n_neurons:
        raise ValueError(
            f"cannot place {cfg.n_neurons} neurons {cfg.min_distance_factor}*{r} px apart "
            f"in a {cfg.height}x{cfg.width} frame; lower n_neurons or neuron_radius"
        )
    return np.array(centres).reshape(-1, 2)


class SyntheticMiniscope:
    """A reproducible synthetic movie; frames are rendered lazily by range."""

    def __init__(self, config: MiniscopeSynthConfig) -> None:
        cfg = config
        if cfg.n_frames <= 0 or cfg.height <= 0 or cfg.width <= 0:
            raise ValueError("n_frames, height and width must be positive")
        if cfg.lock_phase is not None and np.shape(cfg.lock_phase) != (cfg.n_frames,):
            raise ValueError(
                f"lock_phase must have shape ({cfg.n_frames},), got {np.shape(cfg.lock_phase)}"
            )
        if cfg.texture not in TEXTURES:
            raise ValueError(f"texture {cfg.texture!r} not in {TEXTURES}")
        self.config = cfg
        self.height, self.width, self.n_frames, self.fps = (
            cfg.height,
            cfg.width,
            cfg.n_frames,
            cfg.fps,
        )
        self._make_footprints()
        self._make_activity()
        self._make_background()
        self._make_motion()
        self._make_gains()
        self._make_corruptions()
        self._truth: dict[str, np.ndarray] | None = None

    # --- ground truth -------------------------------------------------------------

    def _make_footprints(self) -> None:
        cfg = self.config
        rng = _rng(cfg.seed, _FOOTPRINTS)
        if cfg.neuron_centers is None:
            self.centers = _place_centres(cfg, rng)
        else:
            self.centers = np.asarray(cfg.neuron_centers, np.float64).reshape(-1, 2)
        given = None if cfg.neuron_shapes is None else np.asarray(cfg.neuron_shapes, np.float64)
        for name, arr in (("neuron_centers", self.centers), ("neuron_shapes", given)):
            if arr is not None and len(arr) != cfg.n_neurons:
                raise ValueError(f"{name} has {len(arr)} rows for {cfg.n_neurons} neurons")
        half = int(np.ceil(3.0 * cfg.neuron_radius * 1.2))
        self._patches: list[tuple[int, int, np.ndarray]] = []
        shapes = np.zeros((len(self.centers), 3))
        yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
        for k, (cy, cx) in enumerate(self.centers):
            iy, ix = int(round(cy)), int(round(cx))
            dy, dx = yy + iy - cy, xx + ix - cx
            s1, s2 = cfg.neuron_radius * rng.uniform(0.85, 1.15, size=2)
            th = rng.uniform(0, np.pi)
            if given is not None:
                s1, s2, th = given[k]
            shapes[k] = (s1, s2, th)
            u = np.cos(th) * dx + np.sin(th) * dy
            v = -np.sin(th) * dx + np.cos(th) * dy
            patch = np.exp(-0.5 * ((u / s1) ** 2 + (v / s2) ** 2))
            patch[patch < 0.01] = 0.0
            self._patches.append((iy - half, ix - half, (patch / patch.max()).astype(np.float32)))
        #: (N, 3) sd along, sd across (px) and axis angle (rad) of each footprint
        self.footprint_shapes = shapes

    def _make_activity(self) -> None:
        cfg = self.config
        rng = _rng(cfg.seed, _SPIKES)
        n, t = cfg.n_neurons, cfg.n_frames
        self.g = ar_coefficients(cfg.decay_time, cfg.rise_time, cfg.fps)
        peak = _kernel_peak(self.g)
        n_locked = int(round(cfg.locked_fraction * n)) if cfg.lock_phase is not None else 0
        locked = np.zeros(n, dtype=bool)
        locked[rng.permutation(n)[:n_locked]] = True
        self.locked = locked
        rate = np.full((n, t), cfg.firing_rate / cfg.fps)
        if n_locked:
            mod = np.exp(cfg.lock_kappa * np.cos(np.asarray(cfg.lock_phase) - cfg.preferred_phase))
            rate[locked] *= mod / i0(cfg.lock_kappa)
        counts = rng.poisson(np.minimum(rate, 5.0))
        for k in range(n):  # guarantee a few spikes so every neuron is detectable
            missing = cfg.min_spikes - int(counts[k].sum())
            if missing > 0:
                p = rate[k] / rate[k].sum()
                np.add.at(counts[k], rng.choice(t, size=missing, p=p), 1)
        amp = rng.uniform(*cfg.amplitude_range, size=n)
        jitter = rng.uniform(0.8, 1.2, size=(n, t))
        self.S = (counts * amp[:, None] * jitter / peak).astype(np.float32)
        self.C = lfilter([1.0], np.r_[1.0, -self.g], self.S.astype(np.float64), axis=1).astype(
            np.float32
        )
        self.amplitudes = amp

    def _make_background(self) -> None:
        cfg = self.config
        rng = _rng(cfg.seed, _BACKGROUND)
        h, w = cfg.height, cfg.width
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        d = float(max(h, w))
        cy, cx = h / 2 + rng.uniform(-0.1, 0.1) * h, w / 2 + rng.uniform(-0.1, 0.1) * w
        vignette = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * (0.45 * d) ** 2))
        static = cfg.background_level * (0.55 + 0.45 * vignette)
        if cfg.texture == "vessels":
            vessels = _vessels(h, w, cfg.n_vessels, _rng(cfg.seed, _TEXTURE))
            static = static * (1.0 - cfg.vessel_contrast * vessels)
        nb = 0 if cfg.texture == "flat" else cfg.n_background_components
        spatial = np.zeros((nb, h, w), dtype=np.float32)
        temporal = np.zeros((nb, cfg.n_frames), dtype=np.float32)
        for j in range(nb):
            by, bx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
            sd = rng.uniform(0.15, 0.3) * d
            blob = np.exp(-((y - by) ** 2 + (x - bx) ** 2) / (2 * sd**2))
            spatial[j] = cfg.background_level * cfg.background_fluctuation * blob
            walk = _smooth_walk(rng, cfg.n_frames, tau_frames=4 * cfg.fps, smooth=cfg.fps)
            temporal[j] = 1.0 + 0.5 * walk
        if cfg.neuron_baseline:
            for y0, x0, p in self._patches:
                ys, xs = self._clip(y0, x0, p.shape)
                static[ys[0] : ys[1], xs[0] : xs[1]] += (
                    cfg.neuron_baseline * p[ys[2] : ys[3], xs[2] : xs[3]]
                )
        self.background_static = static.astype(np.float32)
        self.background_spatial = spatial
        self.background_temporal = temporal

    def _make_motion(self) -> None:
        cfg = self.config
        rng = _rng(cfg.seed, _MOTION)
        t = cfg.n_frames
        shifts = np.zeros((t, 2))
        if cfg.motion_amplitude > 0:
            for k in range(2):
                shifts[:, k] = _smooth_walk(rng, t, 1.5 * cfg.fps, 2.0) * cfg.motion_amplitude
        self.shifts = shifts.astype(np.float32)
        rng = _rng(cfg.seed, _NONRIGID)
        h, w = cfg.height, cfg.width
        y, x = np.mgrid[0:h, 0:w].astype(np.float64)
        fields = np.zeros((2, 2, h, w), dtype=np.float32)
        weights = np.zeros((2, t), dtype=np.float32)
        if cfg.nonrigid_amplitude > 0:
            for j in range(2):
                fy, fx = rng.uniform(0.5, 1.5, size=2)
                ph = rng.uniform(0, 2 * np.pi, size=4)
                fields[j, 0] = np.sin(2 * np.pi * fx * x / w + ph[0]) * np.cos(
                    2 * np.pi * fy * y / h + ph[1]
                )
                fields[j, 1] = np.cos(2 * np.pi * fx * x / w + ph[2]) * np.sin(
                    2 * np.pi * fy * y / h + ph[3]
                )
                weights[j] = _smooth_walk(rng, t, 1.0 * cfg.fps, 2.0)
            mag = np.abs(np.einsum("jt,jchw->tchw", weights[:, :: max(1, t // 50)], fields))
            fields *= cfg.nonrigid_amplitude / max(float(mag.max()), 1e-9)
        self.nonrigid_fields = fields  # (component, (dy, dx), H, W)
        self.nonrigid_weights = weights  # (component, T)
        self._grid = (x.astype(np.float32), y.astype(np.float32))

    def _make_gains(self) -> None:
        cfg = self.config
        t = np.arange(cfg.n_frames) / cfg.fps
        tau = cfg.resolved_bleach_tau()
        self.bleach = ((1 - cfg.bleach_fraction) + cfg.bleach_fraction * np.exp(-t / tau)).astype(
            np.float32
        )
        rng = _rng(cfg.seed, _FLICKER)
        self.flicker = (1.0 + cfg.flicker_sd * rng.standard_normal(cfg.n_frames)).astype(np.float32)
        phases = _rng(cfg.seed, _BANDS).uniform(0, 2 * np.pi, size=1 + len(cfg.extra_bands))
        self.band_phase0 = float(phases[0])
        self._band_phases = phases if cfg.band_amplitude != 0 else phases[1:]

    def _make_corruptions(self) -> None:
        """Which frames are corrupted and how (never frame 0, one corruption per frame)."""
        cfg = self.config
        t = cfg.n_frames
        rng = _rng(cfg.seed, _CORRUPT)
        n_rows = int(round(cfg.corrupt_rows_fraction * t))
        counts = [
            (CORRUPT_ROWS, n_rows),
            (CORRUPT_BLACK, cfg.black_frames),
            (CORRUPT_WHITE, cfg.white_frames),
            (CORRUPT_DUPLICATE, cfg.duplicate_frames),
        ]
        total = sum(n for _, n in counts)
        if total > max(t - 1, 0) // 2:
            raise ValueError(f"{total} corrupted frames are too many for {t} frames")
        # spaced at least 2 apart so every corrupted frame has intact neighbours
        pool = np.arange(1, t - 1, 2) if t > 2 else np.zeros(0, np.int64)
        frames = np.sort(rng.choice(pool, size=total, replace=False)) if total else pool[:0]
        kinds = np.concatenate([np.full(n, k) for k, n in counts]) if total else np.zeros(0)
        kinds = rng.permutation(kinds.astype(np.int64))
        rows = np.full((total, 2), -1, np.int64)
        for i in np.flatnonzero(kinds == CORRUPT_ROWS):
            height = int(rng.integers(max(2, self.height // 20), max(3, self.height // 3)))
            r0 = int(rng.integers(0, self.height - height))
            rows[i] = (r0, r0 + height)
        self.corrupt_frames = frames.astype(np.int64)
        self.corrupt_kind = kinds
        self.corrupt_rows = rows
        self._corrupt = {
            int(f): (int(k), (int(r[0]), int(r[1])))
            for f, k, r in zip(frames, kinds, rows, strict=True)
        }

    @property
    def footprints(self) -> np.ndarray:
        """Dense (N, H, W) float32 footprints, peak 1 (built on demand)."""
        out = np.zeros((self.config.n_neurons, self.height, self.width), dtype=np.float32)
        for k, (y0, x0, p) in enumerate(self._patches):
            ys, xs = self._clip(y0, x0, p.shape)
            out[k, ys[0] : ys[1], xs[0] : xs[1]] = p[ys[2] : ys[3], xs[2] : xs[3]]
        return out

    @property
    def truth(self) -> dict[str, np.ndarray]:
        """Ground truth as plain arrays (0-d arrays for scalars), ready for np.savez."""
        if self._truth is None:
            cfg = self.config
            nz = np.nonzero(self.S)
            preferred = np.where(self.locked, cfg.preferred_phase, np.nan)
            self._truth = {
                "footprints": self.footprints,
                "centers": self.centers.astype(np.float32),
                "C": self.C,
                "S": self.S,
                "spike_frames": np.stack(nz, axis=1).astype(np.int64),  # rows (neuron, frame)
                "amplitudes": self.amplitudes.astype(np.float32),
                "shifts": self.shifts,
                "nonrigid_fields": self.nonrigid_fields,
                "nonrigid_weights": self.nonrigid_weights,
                "locked": self.locked,
                "preferred_phase": preferred.astype(np.float32),
                "lock_phase": (
                    np.asarray(cfg.lock_phase, dtype=np.float32)
                    if cfg.lock_phase is not None
                    else np.full(cfg.n_frames, np.nan, dtype=np.float32)
                ),
                "background_static": self.background_static,
                "background_spatial": self.background_spatial,
                "background_temporal": self.background_temporal,
                "bleach": self.bleach,
                "flicker": self.flicker,
                "g": self.g.astype(np.float64),
                "fps": np.array(cfg.fps),
                "height": np.array(cfg.height),
                "width": np.array(cfg.width),
                "n_frames": np.array(cfg.n_frames),
                "seed": np.array(cfg.seed),
                "neuron_radius": np.array(cfg.neuron_radius),
                "decay_time": np.array(cfg.decay_time),
                "rise_time": np.array(cfg.rise_time),
                "noise_sd": np.array(cfg.noise_sd),
                "band_amplitude": np.array(cfg.band_amplitude),
                "band_cycles": np.array(cfg.resolved_band_cycles()),
                "band_speed": np.array(cfg.band_speed),
                "flicker_sd": np.array(cfg.flicker_sd),
                "bleach_fraction": np.array(cfg.bleach_fraction),
                "bleach_tau_s": np.array(cfg.resolved_bleach_tau()),
                "motion_amplitude": np.array(cfg.motion_amplitude),
                "nonrigid_amplitude": np.array(cfg.nonrigid_amplitude),
                "lock_kappa": np.array(cfg.lock_kappa),
                "band_components": np.array(
                    [[b.cycles, b.cycles_x, b.amplitude, b.speed] for b in cfg.band_components()],
                    dtype=np.float64,
                ).reshape(-1, 4),
                "texture": np.array(cfg.texture),
                "neuron_baseline": np.array(cfg.neuron_baseline),
                "corrupt_frames": self.corrupt_frames,
                "corrupt_kind": self.corrupt_kind,
                "corrupt_rows": self.corrupt_rows,
            }
        return self._truth

    # --- rendering ----------------------------------------------------------------

    def _clip(self, y0: int, x0: int, shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
        """Frame and patch slices of a patch placed at (y0, x0), clipped to the frame."""
        ph, pw = shape
        fy0, fx0 = max(y0, 0), max(x0, 0)
        fy1, fx1 = min(y0 + ph, self.height), min(x0 + pw, self.width)
        return (fy0, fy1, fy0 - y0, fy1 - y0), (fx0, fx1, fx0 - x0, fx1 - x0)

    def _check_range(self, start: int, stop: int) -> None:
        if not (0 <= start <= stop <= self.n_frames):
            raise ValueError(f"frame range [{start}, {stop}) outside [0, {self.n_frames})")

    def _scene(self, start: int, stop: int) -> np.ndarray:
        """Background + neurons in the reference (motion-free) frame, float32 (k, H, W)."""
        k = stop - start
        scene = np.empty((k, self.height, self.width), dtype=np.float32)
        scene[:] = self.background_static
        if self.background_spatial.shape[0]:
            scene += np.tensordot(
                self.background_temporal[:, start:stop].T, self.background_spatial, axes=1
            )
        for n, (y0, x0, p) in enumerate(self._patches):
            c = self.C[n, start:stop]
            if not c.any():
                continue
            ys, xs = self._clip(y0, x0, p.shape)
            scene[:, ys[0] : ys[1], xs[0] : xs[1]] += (
                c[:, None, None] * p[None, ys[2] : ys[3], xs[2] : xs[3]]
            )
        return scene

    def _warp(self, img: np.ndarray, t: int) -> np.ndarray:
        dy, dx = float(self.shifts[t, 0]), float(self.shifts[t, 1])
        has_nonrigid = self.config.nonrigid_amplitude > 0
        if dy == 0 and dx == 0 and not has_nonrigid:
            return img
        gx, gy = self._grid
        map_x, map_y = gx - dx, gy - dy
        if has_nonrigid:
            disp = np.tensordot(self.nonrigid_weights[:, t], self.nonrigid_fields, axes=1)
            map_y = map_y - disp[0]
            map_x = map_x - disp[1]
        return cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)

    def bands(self, start: int, stop: int) -> np.ndarray:
        """Travelling bands, float32 grey levels: (k, H, 1) when none is tilted, else (k, H, W)."""
        t = np.arange(start, stop, dtype=np.float64)[:, None, None]
        y = np.arange(self.height, dtype=np.float64)[None, :, None]
        x = np.arange(self.width, dtype=np.float64)[None, None, :]
        comps = self.config.band_components()
        tilted = any(b.cycles_x != 0 for b in comps)
        out = np.zeros((stop - start, self.height, self.width if tilted else 1), np.float64)
        for b, phase in zip(comps, self._band_phases, strict=True):
            arg = 2 * np.pi * b.cycles * (y - b.speed * t) / self.height + phase
            if b.cycles_x:
                arg = arg + 2 * np.pi * b.cycles_x * x / self.width
            out += b.amplitude * np.sin(arg)
        return out.astype(np.float32)

    def _corrupt_frame(self, t: int, frame: np.ndarray, flags: dict[str, bool]) -> np.ndarray:
        """Frame ``t`` as a faulty wireless link delivers it (``frame`` is the intact one;
        ``flags`` are the render switches, so a repeated frame repeats the same rendering)."""
        kind, (r0, r1) = self._corrupt[t]
        top = 255.0
        if kind == CORRUPT_BLACK:
            return np.zeros_like(frame)
        if kind == CORRUPT_WHITE:
            return np.full_like(frame, top)
        if kind == CORRUPT_DUPLICATE:
            return self.render(t - 1, t, **flags)[0]
        rng = _rng(self.config.seed, _CORRUPT, t)
        out = frame.copy()
        if rng.uniform() < 0.5:  # garbage rows
            out[r0:r1] = rng.uniform(0, top, size=(r1 - r0, self.width)).astype(frame.dtype)
        else:  # a torn block: the rows arrive shifted sideways
            out[r0:r1] = np.roll(
                frame[r0:r1], int(rng.integers(self.width // 8, self.width // 2)), 1
            )
        return out

    def render(
        self,
        start: int,
        stop: int,
        *,
        motion: bool = True,
        bleach: bool = True,
        flicker: bool = True,
        bands: bool = True,
        noise: bool = True,
        quantize: bool = True,
        corrupt: bool = True,
    ) -> np.ndarray:
        """Frames [start, stop) with chosen corruptions; uint8 if quantize else float32."""
        self._check_range(start, stop)
        cfg = self.config
        out = np.empty(
            (stop - start, self.height, self.width), dtype=np.uint8 if quantize else np.float32
        )
        step = max(1, (1 << 22) // (self.height * self.width))  # bound float work memory
        for a in range(start, stop, step):
            b = min(a + step, stop)
            scene = self._scene(a, b)
            for i, t in enumerate(range(a, b)):
                frame = self._warp(scene[i], t) if motion else scene[i]
                gain = (self.bleach[t] if bleach else 1.0) * (self.flicker[t] if flicker else 1.0)
                frame = frame * np.float32(gain)
                if noise and cfg.noise_sd > 0:
                    rng = _rng(cfg.seed, _NOISE, t)
                    frame += rng.standard_normal(frame.shape, dtype=np.float32) * np.float32(
                        cfg.noise_sd
                    )
                scene[i] = frame
            if bands and cfg.band_amplitude > 0:
                scene += self.bands(a, b)
            if quantize:
                np.clip(np.rint(scene), 0, 255, out=scene)
            out[a - start : b - start] = scene
        if corrupt and self._corrupt:
            for t in self.corrupt_frames[
                (self.corrupt_frames >= start) & (self.corrupt_frames < stop)
            ]:
                if int(t) >= 1:
                    flags = dict(
                        motion=motion,
                        bleach=bleach,
                        flicker=flicker,
                        bands=bands,
                        noise=noise,
                        quantize=quantize,
                    )
                    out[t - start] = self._corrupt_frame(int(t), out[t - start], flags)
        return out

    def frames(self, start: int, stop: int) -> np.ndarray:
        """The full corrupted movie, uint8 (k, H, W)."""
        return self.render(start, stop)

    def clean_frames(self, start: int, stop: int, *, quantize: bool = False) -> np.ndarray:
        """The movie without bands, flicker, noise and corruption (motion and bleaching kept)."""
        return self.render(
            start, stop, flicker=False, bands=False, noise=False, quantize=quantize, corrupt=False
        )

    def iter_chunks(self, chunk: int = 100) -> Iterator[tuple[int, np.ndarray]]:
        """(start, uint8 frames) blocks covering the whole movie."""
        for a in range(0, self.n_frames, chunk):
            yield a, self.frames(a, min(a + chunk, self.n_frames))
