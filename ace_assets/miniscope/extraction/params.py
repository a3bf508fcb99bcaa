"""CNMF-E settings as a validated dataclass, parsed from analysis_parameters.csv cells.

Names follow the CSV columns (CaImAn's names), so a row can be passed as it is; extra
knobs that the CSV does not carry (frame rate, chunk sizes, iteration counts) have
defaults. Values may be raw CSV text (``"(7, 7)"``, ``"TRUE"``, ``"None"``) or already
parsed Python values; empty cells mean "use the default".
"""

from __future__ import annotations

import ast
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ace_assets.errors import AceInputError

_TRUE = {"true", "yes", "1", "t", "y"}
_FALSE = {"false", "no", "0", "f", "n"}


@dataclass
class ExtractionParams:
    """CNMF-E parameters (CSV names) plus engine settings.

    ``max_footprint_elongation``, ``max_footprint_size``, ``min_footprint_size`` and
    ``max_periodic_power`` are CSV columns of this project, not CaImAn's: what a kept
    component must look like (:mod:`.quality`).

    Engine settings not in the CSV: ``fps`` (frames per second; required unless the movie
    metadata carries it), ``chunk_frames`` (frames per streamed block), ``max_init_frames``
    and ``init_memory_mb`` (bounds on the temporally downsampled initialisation movie),
    ``n_iter`` (full-resolution A/C/background passes), ``n_init_iter`` (passes on the
    initialisation movie), ``ring_harmonics`` (angular harmonics of the ring model),
    ``s_min`` (minimum spike size; ``None`` = ``s_min_sd`` x noise), ``thresh_init``,
    ``min_pixel``, ``nan_policy`` (``"error"`` or ``"fill"``) and ``tile_size``.
    """

    decay_time: float = 0.4
    update_background_components: bool = True
    method_deconvolution: str = "oasis"
    method_init: str = "corr_pnr"
    K: int | None = None
    gSig: tuple[int, int] = (3, 3)
    gSiz: tuple[int, int] = (13, 13)
    tsub: int = 2
    ssub: int = 1
    ssub_B: int = 2
    ring_size_factor: float = 1.4
    min_corr: float = 0.8
    min_pnr: float = 10.0
    normalize_init: bool = False
    center_psf: bool = True
    nb: int = 0
    p: int = 1
    del_duplicates: bool = True
    border_pix: int = 0
    low_rank_background: bool | None = None
    rf: int | None = None
    stride: int | None = None
    only_init: bool = True
    nb_patch: int = 0
    min_SNR: float = 2.5
    rval_thr: float = 0.85
    use_cnn: bool = False
    merge_thr: float = 0.7
    # cell-likeness of kept components (see .quality; not CaImAn's)
    max_footprint_elongation: float = 2.5
    max_footprint_size: float = 2.0
    min_footprint_size: float = 0.25
    max_periodic_power: float = 0.5
    # engine settings (not CSV columns)
    fps: float | None = None
    chunk_frames: int = 100
    max_init_frames: int = 3000
    init_memory_mb: float = 1024.0
    n_iter: int = 2
    n_init_iter: int = 1
    ring_harmonics: int = 2
    s_min: float | None = None
    s_min_sd: float = 3.0
    thresh_init: float = 2.0
    min_pixel: int = 3
    nan_policy: str = "error"
    tile_size: int = 128

    # ------------------------------------------------------------------ parsing
    @classmethod
    def from_dict(
        cls,
        values: Mapping[str, Any] | None = None,
        *,
        source: str | Path | None = None,
        line: int | None = None,
        strict: bool = False,
        **overrides: Any,
    ) -> ExtractionParams:
        """Build from a CSV row / config dict; later ``overrides`` win over ``values``.

        Keys that are not parameters are ignored (a CSV row carries many other columns)
        unless ``strict``. Empty cells and ``NaN`` keep the default.
        """
        merged: dict[str, Any] = {}
        for src in (values or {}, overrides):
            for key, val in src.items():
                if _is_empty(val):
                    continue
                merged[str(key).strip()] = val
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(k for k in merged if k not in known)
        if strict and unknown:
            raise AceInputError(
                f"unknown extraction parameter(s) {unknown}; expected some of {sorted(known)}",
                file=source,
                line=line,
            )
        kwargs: dict[str, Any] = {}
        for key, val in merged.items():
            if key not in known:
                continue
            kwargs[key] = _coerce(key, val, source=source, line=line)
        params = cls(**kwargs)
        params.validate(source=source, line=line)
        return params

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists)."""
        out = {}
        for f in fields(self):
            val = getattr(self, f.name)
            out[f.name] = list(val) if isinstance(val, tuple) else val
        return out

    def replace(self, **changes: Any) -> ExtractionParams:
        new = dataclasses.replace(self, **changes)
        new.validate()
        return new

    # --------------------------------------------------------------- validation
    def validate(self, *, source: str | Path | None = None, line: int | None = None) -> None:
        """Check ranges and combinations; raise AceInputError naming the parameter."""

        def fail(col: str, msg: str) -> None:
            raise AceInputError(msg, file=source, line=line, column=col)

        self.gSig = _pair(self.gSig, "gSig", source, line)
        if self.gSiz is None:
            self.gSiz = (4 * self.gSig[0] + 1, 4 * self.gSig[1] + 1)
        self.gSiz = _pair(self.gSiz, "gSiz", source, line)
        self.gSiz = tuple(v if v % 2 == 1 else v + 1 for v in self.gSiz)  # odd, like CNMF-E
        if min(self.gSig) < 1:
            fail("gSig", f"gSig must be >= 1 pixel (expected neuron radius), got {self.gSig}")
        if min(self.gSiz) < 3:
            fail("gSiz", f"gSiz must be >= 3 pixels (expected neuron diameter), got {self.gSiz}")
        if self.gSiz[0] < self.gSig[0] or self.gSiz[1] < self.gSig[1]:
            fail("gSiz", f"gSiz {self.gSiz} must not be smaller than gSig {self.gSig}")
        if not (-1.0 <= self.min_corr <= 1.0):
            fail("min_corr", f"min_corr must be a correlation in [-1, 1], got {self.min_corr}")
        if self.min_pnr < 0 or not math.isfinite(self.min_pnr):
            fail("min_pnr", f"min_pnr must be a non-negative number, got {self.min_pnr}")
        if not (0.0 < self.merge_thr <= 1.0):
            fail("merge_thr", f"merge_thr must be in (0, 1], got {self.merge_thr}")
        if self.ring_size_factor is None or self.ring_size_factor <= 1.0:
            fail(
                "ring_size_factor",
                f"ring_size_factor must be > 1 (ring outside the neuron), got "
                f"{self.ring_size_factor}",
            )
        for name in ("tsub", "ssub", "ssub_B", "chunk_frames", "max_init_frames", "tile_size"):
            val = getattr(self, name)
            if not isinstance(val, int) or val < 1:
                fail(name, f"{name} must be a positive integer, got {val!r}")
        if self.p not in (0, 1, 2):
            fail("p", f"p (AR order) must be 0, 1 or 2, got {self.p}")
        if self.decay_time is not None and self.decay_time <= 0:
            fail("decay_time", f"decay_time must be > 0 seconds, got {self.decay_time}")
        if self.K is not None and self.K < 0:
            fail("K", f"K must be None or >= 0, got {self.K}")
        if self.border_pix < 0:
            fail("border_pix", f"border_pix must be >= 0, got {self.border_pix}")
        if self.rf is not None:
            if self.rf < 1:
                fail("rf", f"rf (patch half-size) must be None or >= 1, got {self.rf}")
            stride = self.stride if self.stride is not None else 0
            if stride < 0 or stride >= 2 * self.rf:
                fail("stride", f"stride (patch overlap) must be in [0, 2*rf), got {stride}")
        if self.fps is not None and not (self.fps > 0 and math.isfinite(self.fps)):
            fail("fps", f"fps must be a positive frame rate, got {self.fps}")
        if self.method_init not in ("corr_pnr",):
            fail(
                "method_init",
                f"method_init {self.method_init!r} is not supported; 1-photon extraction "
                "uses 'corr_pnr'",
            )
        if self.method_deconvolution not in ("oasis", "constrained_foopsi", "cvxpy"):
            fail(
                "method_deconvolution",
                f"method_deconvolution {self.method_deconvolution!r} unknown; use 'oasis'",
            )
        if self.nb is not None and self.nb > 0:
            fail(
                "nb",
                f"nb={self.nb} asks for a low-rank background; only the ring model "
                "(nb <= 0, CNMF-E's 1-photon background) is implemented",
            )
        if self.normalize_init:
            fail("normalize_init", "normalize_init must be FALSE for 1-photon (CNMF-E) data")
        if not (0.0 <= self.rval_thr <= 1.0) and self.rval_thr != -1:
            fail("rval_thr", f"rval_thr must be in [0, 1], got {self.rval_thr}")
        if self.nan_policy not in ("error", "fill"):
            fail("nan_policy", f"nan_policy must be 'error' or 'fill', got {self.nan_policy!r}")
        if self.n_iter < 1:
            fail("n_iter", f"n_iter must be >= 1, got {self.n_iter}")
        if self.n_init_iter < 0:
            fail("n_init_iter", f"n_init_iter must be >= 0, got {self.n_init_iter}")
        if self.ring_harmonics < 0 or self.ring_harmonics > 6:
            fail("ring_harmonics", f"ring_harmonics must be in 0..6, got {self.ring_harmonics}")
        if not (self.max_footprint_elongation >= 1.0):
            fail(
                "max_footprint_elongation",
                f"max_footprint_elongation must be >= 1 (a ratio of footprint axes), got "
                f"{self.max_footprint_elongation}",
            )
        if not (self.max_footprint_size > 0):
            fail(
                "max_footprint_size",
                f"max_footprint_size must be > 0 (a multiple of gSig), got "
                f"{self.max_footprint_size}",
            )
        if not (0 <= self.min_footprint_size < self.max_footprint_size):
            fail(
                "min_footprint_size",
                f"min_footprint_size must be >= 0 and below max_footprint_size "
                f"({self.max_footprint_size}), got {self.min_footprint_size}",
            )
        if not (0.0 < self.max_periodic_power <= 1.0):
            fail(
                "max_periodic_power",
                f"max_periodic_power must be a share of trace power in (0, 1], got "
                f"{self.max_periodic_power}",
            )
        if self.init_memory_mb <= 0:
            fail("init_memory_mb", f"init_memory_mb must be > 0, got {self.init_memory_mb}")

    def validate_for_movie(
        self, shape: tuple[int, ...], *, source: str | Path | None = None
    ) -> None:
        """Checks that need the movie size (e.g. a neuron bigger than the frame)."""
        if len(shape) != 3:
            raise AceInputError(
                f"expected a (frames, height, width) movie, got shape {shape}", file=source
            )
        _, h, w = shape
        if 2 * self.gSig[0] + 1 > h or 2 * self.gSig[1] + 1 > w:
            raise AceInputError(
                f"gSig {self.gSig} describes a neuron larger than the {h}x{w} frame",
                file=source,
                column="gSig",
            )
        if self.gSiz[0] > h or self.gSiz[1] > w:
            raise AceInputError(
                f"gSiz {self.gSiz} is larger than the {h}x{w} frame", file=source, column="gSiz"
            )
        if 2 * self.border_pix >= min(h, w):
            raise AceInputError(
                f"border_pix {self.border_pix} leaves no pixels in the {h}x{w} frame",
                file=source,
                column="border_pix",
            )


# ---------------------------------------------------------------------- helpers
_BOOL = {
    "update_background_components",
    "normalize_init",
    "center_psf",
    "del_duplicates",
    "only_init",
    "use_cnn",
}
_INT = {
    "tsub",
    "ssub",
    "ssub_B",
    "nb",
    "p",
    "border_pix",
    "nb_patch",
    "chunk_frames",
    "max_init_frames",
    "n_iter",
    "n_init_iter",
    "ring_harmonics",
    "min_pixel",
    "tile_size",
}
_OPT_INT = {"K", "rf", "stride"}
_FLOAT = {
    "ring_size_factor",
    "min_corr",
    "min_pnr",
    "min_SNR",
    "rval_thr",
    "merge_thr",
    "init_memory_mb",
    "thresh_init",
    "s_min_sd",
    "max_footprint_elongation",
    "max_footprint_size",
    "min_footprint_size",
    "max_periodic_power",
}
_OPT_FLOAT = {"decay_time", "fps", "s_min"}
_STR = {"method_deconvolution", "method_init", "nan_policy"}
_PAIR = {"gSig", "gSiz"}


def _is_empty(val: Any) -> bool:
    if val is None:
        return False  # an explicit None is meaningful (K=None)
    if isinstance(val, str) and val.strip() == "":
        return True
    if isinstance(val, float) and math.isnan(val):
        return True
    return False


def _literal(text: str) -> Any:
    t = text.strip()
    low = t.lower()
    if low in ("none", "null", "na", "nan"):
        return None
    if low == "true":
        return True
    if low == "false":
        return False
    try:
        return ast.literal_eval(t)
    except (ValueError, SyntaxError):
        return t


def _coerce(key: str, val: Any, *, source: str | Path | None, line: int | None) -> Any:
    raw = val
    if isinstance(val, str):
        val = _literal(val)

    def bad(expected: str) -> AceInputError:
        return AceInputError(
            f"expected {expected}, got {raw!r}", file=source, line=line, column=key
        )

    if key == "low_rank_background":
        return None if val is None else bool(val)
    if key in _BOOL:
        if isinstance(val, bool):
            return val
        if isinstance(val, (int, float)) and val in (0, 1):
            return bool(val)
        if isinstance(val, str) and val.lower() in _TRUE | _FALSE:
            return val.lower() in _TRUE
        raise bad("TRUE or FALSE")
    if key in _INT or key in _OPT_INT:
        if val is None and key in _OPT_INT:
            return None
        if isinstance(val, bool) or not isinstance(val, (int, float)):
            raise bad("an integer" + (" or None" if key in _OPT_INT else ""))
        if float(val) != int(val):
            raise bad("a whole number")
        return int(val)
    if key in _FLOAT or key in _OPT_FLOAT:
        if val is None and key in _OPT_FLOAT:
            return None
        if isinstance(val, bool) or not isinstance(val, (int, float)):
            raise bad("a number" + (" or None" if key in _OPT_FLOAT else ""))
        return float(val)
    if key in _STR:
        if not isinstance(val, str):
            raise bad("a text value")
        return val.strip()
    if key in _PAIR:
        return _pair(val, key, source, line)
    return val


def _pair(val: Any, key: str, source: str | Path | None, line: int | None) -> tuple[int, int]:
    if isinstance(val, str):
        val = _literal(val)
    if isinstance(val, bool):
        val = None
    if isinstance(val, (int, float)) and float(val) == int(val):
        return (int(val), int(val))
    if isinstance(val, (tuple, list)) and len(val) == 2:
        try:
            a, b = (float(v) for v in val)
        except (TypeError, ValueError):
            a = b = float("nan")
        if math.isfinite(a) and math.isfinite(b) and a == int(a) and b == int(b):
            return (int(a), int(b))
    raise AceInputError(
        f"expected an integer or a pair of integers like (7, 7), got {val!r}",
        file=source,
        line=line,
        column=key,
    )
