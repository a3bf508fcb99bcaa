"""Another imaging session of the same animal, with the true cell correspondence.

Why: cross-session registration (:mod:`ace_assets.miniscope.session_registry`) needs
sessions whose shared neurons are known. Between days the baseplate sits a little
differently, so the same tissue appears shifted and slightly turned in the field of view;
some cells are no longer seen (out of focus, silent) and others appear. The tissue here is
one population of neurons at least ``min_distance_factor * neuron_radius`` apart: the base
session sees part of it; the new session sees a known subset of those (moved by the
field-of-view change, footprint axes turned with it) plus cells the base session did not
see, which are never where a base cell was.

Geometry: a tissue point seen at ``p`` in the base frame is seen at
``R (p - c) + c + shift`` in the new frame, ``(y, x)`` order, ``c`` the frame centre and
``R`` a turn by ``rotation_deg`` (counter-clockwise in ``(x, y)``, i.e. on screen with y
down, clockwise).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ace_assets.demo.miniscope_synth import MiniscopeSynthConfig, SyntheticMiniscope

#: stream of the session's random choices (which cells stay, where new ones are)
_SESSION_STREAM = 11


@dataclass(frozen=True)
class SessionChange:
    """How the new session differs from the base one."""

    shift: tuple[float, float] = (5.0, -7.0)  # px (dy, dx) of the tissue in the new frame
    rotation_deg: float = 3.0
    shared_fraction: float = 0.8  # of the base neurons, the share seen again
    n_neurons: int | None = None  # neurons in the new session; None: as many as the base
    #: px, largest displacement of a smooth non-rigid warp on top (the brain deforms a little)
    warp_amplitude: float = 0.0


@dataclass(frozen=True)
class RelatedSession:
    """The new session's movie config and, per its neuron, the base neuron it is (or -1)."""

    config: MiniscopeSynthConfig
    same_as: np.ndarray  # (N_new,) int64: index into the base neurons, -1 for a new cell

    def truth(self, reference_line: int | None = None) -> dict[str, np.ndarray]:
        """Truth entries for the generator's npz (arrays only)."""
        out = {"same_neuron_as": self.same_as.astype(np.int64)}
        if reference_line is not None:
            out["same_neuron_reference_line"] = np.array(int(reference_line))
        return out


def rotation(angle_deg: float) -> np.ndarray:
    """The 2x2 matrix acting on ``(y, x)`` vectors for a turn by ``angle_deg``."""
    a = np.deg2rad(angle_deg)
    return np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])


def move_points(
    points: np.ndarray, shape: tuple[int, int], change: SessionChange, seed: int = 0
) -> np.ndarray:
    """Base-frame ``(y, x)`` points as the new session sees them.

    The non-rigid warp (``warp_amplitude``) is one period of a sine across the frame in each
    direction, its phases drawn from ``seed`` (the new session's).
    """
    centre = (np.asarray(shape, float) - 1.0) / 2.0
    pts = np.asarray(points, float).reshape(-1, 2)
    out = (pts - centre) @ rotation(change.rotation_deg).T + centre + np.asarray(change.shift)
    if change.warp_amplitude:
        phase = np.random.default_rng([int(seed), _SESSION_STREAM, 1]).uniform(0, 2 * np.pi, 2)
        h, w = shape
        amp = change.warp_amplitude
        out[:, 0] += amp * np.sin(2 * np.pi * pts[:, 1] / w + phase[0])
        out[:, 1] += amp * np.sin(2 * np.pi * pts[:, 0] / h + phase[1])
    return out


def related_session(
    base: SyntheticMiniscope, change: SessionChange, *, seed: int, **overrides: object
) -> RelatedSession:
    """A session of the same tissue as ``base`` seen after ``change``.

    ``seed`` drives the new movie (activity, background, noise) and which cells stay;
    ``overrides`` replace other fields of the base config (frame size, texture, ...).
    """
    cfg = replace(base.config, seed=seed, lock_phase=None, locked_fraction=0.0, **overrides)  # type: ignore[arg-type]
    n_new = int(change.n_neurons if change.n_neurons is not None else base.config.n_neurons)
    rng = np.random.default_rng([int(seed), _SESSION_STREAM])
    r = cfg.neuron_radius
    margin = 2.5 * r + cfg.motion_amplitude + cfg.nonrigid_amplitude + 1.0
    moved = move_points(base.centers, (base.height, base.width), change, seed)
    inside = (
        (moved[:, 0] >= margin)
        & (moved[:, 0] <= cfg.height - 1 - margin)
        & (moved[:, 1] >= margin)
        & (moved[:, 1] <= cfg.width - 1 - margin)
    )
    wanted = min(int(round(change.shared_fraction * len(moved))), n_new)
    candidates = rng.permutation(np.flatnonzero(inside))
    shared = np.sort(candidates[:wanted])
    centres = [moved[i] for i in shared]
    same_as = [int(i) for i in shared]
    min_d2 = (cfg.min_distance_factor * r) ** 2
    tissue = list(moved)  # every base cell, seen or not: a new cell is a different cell
    for _ in range(400 * max(n_new, 1)):
        if len(centres) == n_new:
            break
        c = np.array(
            [
                rng.uniform(margin, cfg.height - 1 - margin),
                rng.uniform(margin, cfg.width - 1 - margin),
            ]
        )
        if all(((c - o) ** 2).sum() >= min_d2 for o in tissue):
            centres.append(c)
            tissue.append(c)
            same_as.append(-1)
    if len(centres) < n_new:
        raise ValueError(
            f"cannot place {n_new - len(shared)} new neurons beside {len(shared)} shared ones "
            f"in a {cfg.height}x{cfg.width} frame; lower n_neurons or shared_fraction"
        )
    shapes = base.footprint_shapes.copy()
    shapes[:, 2] += np.deg2rad(change.rotation_deg)
    drawn = rng.uniform(0.85, 1.15, size=(n_new, 2)) * r
    new_shapes = np.column_stack([drawn, rng.uniform(0, np.pi, size=n_new)])
    is_shared = np.asarray(same_as) >= 0
    new_shapes[is_shared] = shapes[np.asarray(same_as)[is_shared]]
    config = replace(
        cfg,
        n_neurons=n_new,
        neuron_centers=np.asarray(centres),
        neuron_shapes=new_shapes,
    )
    return RelatedSession(config=config, same_as=np.asarray(same_as, np.int64))
