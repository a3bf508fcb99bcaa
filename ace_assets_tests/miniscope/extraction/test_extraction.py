"""CNMF-E extraction against ground truth on synthetic 1-photon movies."""

from __future__ import annotations

import numpy as np
import pytest

from ace_assets.errors import AceInputError
from ace_assets.io.store import load_npz, write_array
from ace_assets.miniscope.extraction import (
    ExtractionParams,
    apply_rejections,
    evaluate_against_truth,
    extract,
    load_result,
    save_result,
)
from ace_assets_tests.helpers.synth_cnmfe import empty_movie, make_movie

# small neurons, whole-frame initialisation (no patches): the settings these small movies
# were made for, not the catalog defaults (gSig 7, gSiz 29, rf 40, stride 20)
PARAMS = dict(
    gSig=(3, 3), gSiz=(13, 13), rf=None, stride=None, min_corr=0.8, min_pnr=6, tsub=2, fps=30.0
)


@pytest.fixture(scope="module")
def synth():
    # strong smooth fluctuating background, flicker, bleaching, sensor noise, plus a few
    # active out-of-focus cells; motion and bands already removed (earlier stages)
    return make_movie(
        height=112,
        width=112,
        n_frames=800,
        n_neurons=36,
        seed=22,
        amplitude_range=(8.0, 20.0),
        blurred_cells=6,
        blurred_amplitude=8.0,
    )


@pytest.fixture(scope="module")
def result(synth):
    return extract(synth.movie, ExtractionParams(**PARAMS))


def test_recovers_neurons_traces_and_events(synth, result):
    m = evaluate_against_truth(result, synth.centers, synth.C, synth.S)
    assert m["recall"] >= 0.9, m
    assert m["precision"] >= 0.9, m
    assert m["median_trace_corr"] >= 0.9, m
    assert m["event_f1"] >= 0.8, m
    assert result.warnings == []


def test_result_shapes_and_invariants(synth, result):
    t, h, w = synth.movie.shape
    n = result.n_components
    assert result.A.shape == (h * w, n)
    assert result.C.shape == result.S.shape == result.C_raw.shape == (n, t)
    assert result.centers.shape == (n, 2) and result.snr.shape == (n,)
    assert np.all(result.S >= 0) and np.all(result.C >= 0)
    assert np.all(result.A.data >= 0)
    norms = np.sqrt(np.asarray(result.A.multiply(result.A).sum(axis=0)).ravel())
    np.testing.assert_allclose(norms, 1.0, rtol=1e-4)
    assert len(np.unique(result.ids)) == n
    assert result.correlation_image.shape == result.pnr_image.shape == (h, w)
    assert len(result.contours) == n and all(len(c) >= 3 for c in result.contours)
    img = result.contour_image()
    assert img.max() == n
    # the constant background must look like the movie's mean image minus the neurons
    assert abs(float(result.b0.mean()) - float(synth.movie.mean())) < 5.0


def test_save_load_round_trip_without_pickle(result, tmp_path):
    save_result(result, tmp_path)
    raw = load_npz(tmp_path / "extraction.npz")  # allow_pickle=False inside
    assert "A_data" in raw and raw["meta_json"].dtype.kind == "U"
    back = load_result(tmp_path)
    assert back.n_components == result.n_components
    assert (back.A != result.A).nnz == 0
    for name in ("C", "S", "C_raw", "sn", "centers", "snr", "ids", "b0", "pnr_image"):
        np.testing.assert_array_equal(getattr(back, name), getattr(result, name))
    np.testing.assert_array_equal(back.r_values, result.r_values)
    assert back.dims == result.dims and back.fps == result.fps
    assert all(np.array_equal(a, b) for a, b in zip(back.contours, result.contours, strict=False))
    assert back.params["gSig"] == [3, 3]


def test_curation_keeps_ids_stable(result):
    ids = result.ids.tolist()
    drop = [ids[0], ids[3]]
    cur = apply_rejections(result, drop)
    assert cur.n_components == result.n_components - 2
    assert set(cur.ids.tolist()) == set(ids) - set(drop)
    k = ids.index(cur.ids[0])
    np.testing.assert_array_equal(cur.C[0], result.C[k])
    # applying the same list again is harmless; unknown ids are an error
    again = apply_rejections(cur, drop)
    assert again.n_components == cur.n_components
    with pytest.raises(AceInputError, match="do not exist"):
        apply_rejections(result, [max(ids) + 1000])


def test_patches_and_array_store_input(tmp_path, monkeypatch):
    syn = make_movie(
        height=96, width=96, n_frames=500, n_neurons=30, seed=5, amplitude_range=(10.0, 25.0)
    )
    store = write_array(tmp_path / "mc.npyd", syn.movie, {"fps": syn.fps})
    prm = ExtractionParams.from_dict({**PARAMS, "rf": 24, "stride": 12, "fps": None})
    monkeypatch.setenv("ACE_THREADS", "3")
    res = extract(store, prm)  # fps from the store's metadata
    assert res.info["n_patches"] > 1 and res.fps == syn.fps
    m = evaluate_against_truth(res, syn.centers, syn.C, syn.S)
    assert m["recall"] >= 0.9 and m["precision"] >= 0.9, m
    assert m["median_trace_corr"] >= 0.9, m
    # patches seeded and ring features transformed on several threads: the same result
    monkeypatch.setenv("ACE_THREADS", "1")
    one = extract(store, prm)
    np.testing.assert_array_equal(one.ids, res.ids)
    assert (one.A != res.A).nnz == 0
    np.testing.assert_array_equal(one.C, res.C)


def test_movie_without_cells_gives_empty_result_with_warning():
    res = extract(empty_movie(), ExtractionParams(**PARAMS))
    assert res.n_components == 0
    assert res.C.shape == (0, 300)
    assert any("no neurons found" in w for w in res.warnings)


def test_constant_movie_gives_empty_result_with_warning():
    res = extract(np.full((50, 40, 40), 17, np.uint8), ExtractionParams(**PARAMS))
    assert res.n_components == 0
    assert any("constant" in w for w in res.warnings)


def test_nan_frames_are_reported_or_filled(tmp_path):
    """Non-finite frames are found in the read that bins the initialisation movie: an error
    leaves no cache behind, and a fill bins the movie again, filled."""
    mov = empty_movie(n_frames=120).astype(np.float32)
    mov[[5, 77]] = np.nan
    mov[90, 3, 3] = np.inf
    with pytest.raises(AceInputError, match=r"3 frame\(s\).*5, 77, 90"):
        extract(mov, ExtractionParams(**PARAMS), workdir=tmp_path)
    assert not any(tmp_path.iterdir())
    res = extract(mov, ExtractionParams(**PARAMS, nan_policy="fill"), workdir=tmp_path)
    assert any("NaN" in w for w in res.warnings)
    assert not any(tmp_path.iterdir())
    assert np.isfinite(res.b0).all() and np.isfinite(res.correlation_image).all()


def test_bad_inputs_raise_clear_errors():
    mov = np.zeros((30, 20, 20), np.uint8)
    with pytest.raises(AceInputError, match="gSig"):
        extract(mov, ExtractionParams(**{**PARAMS, "gSig": (15, 15), "gSiz": (15, 15)}))
    with pytest.raises(AceInputError, match="frame rate"):
        extract(np.ones((30, 40, 40), np.uint8), {k: v for k, v in PARAMS.items() if k != "fps"})
    with pytest.raises(AceInputError, match="frames, height, width"):
        extract(np.zeros((10, 10)), ExtractionParams(**PARAMS))
