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

A session whose summary image does not match the reference's (the peak of their
correlation is not ``MIN_SIGNIFICANCE`` above its spread: another field of view, or an
empty image) keeps all its cells apart, under new ids, and the reason is reported.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ace_assets.miniscope.footprint_matching import (
    Footprints,
    match_footprints,
    on_own_frame,
    to_reference,
)
from ace_assets.miniscope.session_alignment import SessionTransform, align_session

#: z-score of the rigid correlation peak below which two images are not one field of view
MIN_SIGNIFICANCE = 8.0
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
        offset = (float(s.origin[0] - ref.origin[0]), float(s.origin[1] - ref.origin[1]))
        transform = align_session(ref.image, s.image, gsig, offset=offset)
        reg.transforms[s.key] = transform
        fp = to_reference(s.A, s.dims, transform)
        reg.footprints[s.key] = fp
        new_ids = np.full(fp.A.shape[1], -1, np.int64)
        conf = np.full(fp.A.shape[1], np.nan)
        dist = np.full(fp.A.shape[1], np.nan)
        over = np.full(fp.A.shape[1], np.nan)
        if not transform.significance >= MIN_SIGNIFICANCE:
            reg.not_aligned[s.key] = (
                f"its correlation image does not match the reference's (peak z-score "
                f"{transform.significance:.1f} < {MIN_SIGNIFICANCE:g}): another field of view?"
            )
            reg.match_distances[s.key] = np.zeros(0)
        else:
            known = Footprints(known_a, known_c, ref_fp.dims)
            m = match_footprints(known, fp, gsig)
            new_ids[m.mov] = m.ref
            conf[m.mov], dist[m.mov], over[m.mov] = m.confidence, m.distance_px, m.overlap
            reg.match_distances[s.key] = m.candidate_distances
        fresh = np.flatnonzero(new_ids < 0)
        new_ids[fresh] = n + np.arange(len(fresh))
        n += len(fresh)
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
