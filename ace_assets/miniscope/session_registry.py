"""Global neuron ids across the sessions of one animal.

Why: questions that follow a cell across days need one id per cell, not one per session.
The rule, the same however many sessions there are: the first session is the reference;
every other session's field of view is aligned to the reference's
(:func:`session_alignment.align_session`, never chained through another session, so errors
do not add up), its footprints are mapped onto the reference frame and matched one-to-one
(:func:`footprint_matching.match_footprints`) against every cell known so far: the
reference's cells, then those first seen in an earlier session, each represented by its
footprint in the session it was first seen in. A matched cell takes that cell's id, an
unmatched one a new id. Sessions are taken in the order given (by date).

Is a session the same field of view at all? The alignment always finds *some* best fit,
and with the freedom to shift, turn and bend, a third of the cells of an unrelated session
find a partner. So the session is also aligned and matched as three decoys that cannot show
the reference's tissue (itself mirrored left-right, upside down, and both), and the matches
a coincidence rarely makes are counted: centres within ``CLOSE_DISTANCE_GSIG * gSig`` and
footprints overlapping at least ``CLOSE_OVERLAP``. Unless so many close matches would arise
by chance with probability at most ``MAX_CHANCE`` (a Poisson count at the decoys' mean
rate), the session keeps all its cells apart under new ids (which later sessions are not
matched to), and the reason is reported.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import poisson

from ace_assets.miniscope.footprint_matching import (
    Footprints,
    Matches,
    match_footprints,
    on_own_frame,
    to_reference,
)
from ace_assets.miniscope.session_alignment import SessionTransform, align_session

#: a close match: centres within this many gSig, footprints overlapping at least this much
CLOSE_DISTANCE_GSIG = 0.5
CLOSE_OVERLAP = 0.8
#: largest chance, judged by the decoys, that a session's close matches are coincidences
MAX_CHANCE = 1e-3
COLUMNS = ("global_id", "session", "component", "confidence", "distance_px", "overlap")


@dataclass(frozen=True)
class Session:
    """One session's kept components: footprints (H*W, N) row-major, ids, summary image."""

    key: Hashable  # the line number
    A: sp.spmatrix
    ids: np.ndarray
    image: np.ndarray  # (H, W) correlation (or mean) image
    origin: tuple[int, int] = (0, 0)  # (y, x) of the frame's pixel (0, 0) on the sensor

    @property
    def dims(self) -> tuple[int, int]:
        return (int(self.image.shape[0]), int(self.image.shape[1]))


@dataclass
class Registration:
    """The table (one row per cell per session it is seen in) and how each session fit."""

    reference: Hashable
    table: pd.DataFrame
    transforms: dict[Hashable, SessionTransform] = field(default_factory=dict)
    footprints: dict[Hashable, Footprints] = field(default_factory=dict)  # reference frame
    match_distances: dict[Hashable, np.ndarray] = field(default_factory=dict)
    not_aligned: dict[Hashable, str] = field(default_factory=dict)
    #: per session: close matches, the decoys' mean, and the chance they are coincidences
    evidence: dict[Hashable, dict[str, float]] = field(default_factory=dict)

    def wide(self) -> pd.DataFrame:
        """global id x session: the component id (NaN where not seen) and its confidence."""
        if self.table.empty:
            return pd.DataFrame({"global_id": []})
        comp = self.table.pivot(index="global_id", columns="session", values="component")
        conf = self.table.pivot(index="global_id", columns="session", values="confidence")
        out = pd.DataFrame(index=comp.index)
        for key in comp.columns:
            out[f"component_{key}"] = comp[key].astype("Int64")
            out[f"confidence_{key}"] = conf[key]
        out["n_sessions"] = comp.notna().sum(axis=1)
        return out.reset_index()


def register_sessions(sessions: Sequence[Session], gsig: float) -> Registration:
    """Global ids for the cells of ``sessions`` (the first is the reference)."""
    if not sessions:
        raise ValueError("no session to register")
    ref = sessions[0]
    ref_fp = on_own_frame(ref.A, ref.dims)
    reg = Registration(reference=ref.key, table=pd.DataFrame(columns=list(COLUMNS)))
    reg.transforms[ref.key] = SessionTransform(ref.dims, correlation=1.0)
    reg.footprints[ref.key] = ref_fp
    known_a = ref_fp.A
    known_c = ref_fp.centers
    n = ref_fp.A.shape[1]
    rows: list[dict] = [
        {
            "global_id": k,
            "session": ref.key,
            "component": int(ref.ids[k]),
            "confidence": 1.0,
            "distance_px": 0.0,
            "overlap": 1.0,
        }
        for k in range(n)
    ]
    for s in sessions[1:]:
        known = Footprints(known_a, known_c, ref_fp.dims)
        transform, fp, m = _align_and_match(ref, s, known, gsig)
        reg.transforms[s.key] = transform
        reg.footprints[s.key] = fp
        close = _close(m, gsig)
        decoys = [_close(_align_and_match(ref, d, known, gsig)[2], gsig) for d in _decoys(s)]
        chance = float(poisson.sf(close - 1, max(float(np.mean(decoys)), 0.5)))
        reg.evidence[s.key] = {
            "close_matches": float(close),
            "decoy_close_matches": float(np.mean(decoys)),
            "chance": chance,
        }
        new_ids = np.full(fp.A.shape[1], -1, np.int64)
        conf = np.full(fp.A.shape[1], np.nan)
        dist = np.full(fp.A.shape[1], np.nan)
        over = np.full(fp.A.shape[1], np.nan)
        reg.match_distances[s.key] = m.candidate_distances
        if chance > MAX_CHANCE:
            reg.not_aligned[s.key] = (
                f"only {close} of its cells match the reference's closely, where its mirror "
                f"images match {np.mean(decoys):.1f} (chance {chance:.2g} > {MAX_CHANCE:g}): "
                "another field of view?"
            )
        else:
            new_ids[m.mov] = m.ref
            conf[m.mov], dist[m.mov], over[m.mov] = m.confidence, m.distance_px, m.overlap
        fresh = np.flatnonzero(new_ids < 0)
        new_ids[fresh] = n + np.arange(len(fresh))
        n += len(fresh)
        if s.key not in reg.not_aligned:  # a misplaced session's cells are no one's partners
            known_a = sp.hstack([known_a, fp.A[:, fresh]], format="csc")
            known_c = np.vstack([known_c, fp.centers[fresh]])
        for k in range(fp.A.shape[1]):
            rows.append(
                {
                    "global_id": int(new_ids[k]),
                    "session": s.key,
                    "component": int(s.ids[k]),
                    "confidence": float(conf[k]),
                    "distance_px": float(dist[k]),
                    "overlap": float(over[k]),
                }
            )
    if rows:
        reg.table = pd.DataFrame(rows, columns=list(COLUMNS)).sort_values(
            ["global_id", "session"], kind="stable", ignore_index=True
        )
    return reg


def _align_and_match(
    ref: Session, s: Session, known: Footprints, gsig: float
) -> tuple[SessionTransform, Footprints, Matches]:
    offset = (float(s.origin[0] - ref.origin[0]), float(s.origin[1] - ref.origin[1]))
    transform = align_session(ref.image, s.image, gsig, offset=offset)
    fp = to_reference(s.A, s.dims, transform)
    return transform, fp, match_footprints(known, fp, gsig)


def _close(m: Matches, gsig: float) -> int:
    """Matches a coincidence rarely makes: centres very near, footprints much alike."""
    near = m.distance_px <= CLOSE_DISTANCE_GSIG * gsig
    return int((near & (m.overlap >= CLOSE_OVERLAP)).sum())


def _decoys(s: Session) -> list[Session]:
    """The session mirrored left-right, upside down and both: never the reference's tissue."""
    h, w = s.dims
    coo = sp.csc_matrix(s.A).tocoo()
    y, x = coo.row // w, coo.row % w
    out = []
    for flip_y, flip_x in ((False, True), (True, False), (True, True)):
        yy = h - 1 - y if flip_y else y
        xx = w - 1 - x if flip_x else x
        a = sp.csc_matrix((coo.data, (yy * w + xx, coo.col)), shape=coo.shape)
        image = s.image[:: -1 if flip_y else 1, :: -1 if flip_x else 1].copy()
        out.append(Session(s.key, a, s.ids, image, s.origin))
    return out
