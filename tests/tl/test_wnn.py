from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from mudata import MuData

from indiseek.datasets._io import from_anndata
from indiseek.tl import _wnn
from indiseek.tl._wnn import wnn_weights

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


@pytest.fixture(scope="module")
def pbmc5k() -> MuData:
    path = REAL / "pbmc5k_cite_200cells.h5ad"
    if not path.exists():
        pytest.skip(f"real data file {path} not available (expected in ../shared/data/real/)")
    return from_anndata(ad.read_h5ad(path))


def test_wnn_weights_on_real_data(pbmc5k):
    mdata = pbmc5k.copy()
    rna_before, prot_before = mdata["rna"].X.copy(), mdata["prot"].X.copy()
    assert wnn_weights(mdata) is None
    w_rna, w_protein = mdata.obs["wnn_rna_weight"], mdata.obs["wnn_protein_weight"]
    assert w_rna.notna().all() and w_rna.between(0, 1).all() and w_protein.between(0, 1).all()
    np.testing.assert_allclose(w_rna + w_protein, 1.0)
    assert w_rna.std() > 0.01
    assert (mdata["rna"].X != rna_before).nnz == 0
    np.testing.assert_array_equal(mdata["prot"].X, prot_before)
    assert not mdata["rna"].obsm and not mdata["rna"].obsp and "neighbors" not in mdata["prot"].uns
    assert mdata.uns["wnn"]["params"]["n_neighbors"] == 20


def _two_views(n_per_type: int = 40, seed: int = 0) -> MuData:
    """RNA representation separates four types; the protein one is noise."""
    rng = np.random.default_rng(seed)
    types = np.repeat(np.arange(4), n_per_type)
    obs = pd.DataFrame(index=[f"c{i}" for i in range(len(types))])
    rna = AnnData(np.ones((len(types), 2), np.float32), obs=obs.copy())
    prot = AnnData(np.ones((len(types), 2), np.float32), obs=obs.copy())
    prot.var_names = ["p0", "p1"]
    rna.obsm["X_pca"] = 8.0 * np.eye(4)[types] + rng.normal(scale=0.5, size=(len(types), 4))
    prot.obsm["X_pca"] = rng.normal(size=(len(types), 4))
    return MuData({"rna": rna, "prot": prot})


def test_wnn_weights_favour_the_informative_modality():
    mdata = _two_views()
    wnn_weights(mdata, rna_rep="X_pca", protein_rep="X_pca", n_neighbors=10, key_added="toy", backend="exact")
    assert mdata.obs["toy_rna_weight"].mean() > 0.7
    np.testing.assert_allclose(mdata.obs["toy_rna_weight"] + mdata.obs["toy_protein_weight"], 1.0)


def test_wnn_weights_error_leaves_mdata_untouched():
    mdata = _two_views()
    with pytest.raises(KeyError, match="X_missing"):
        wnn_weights(mdata, rna_rep="X_pca", protein_rep="X_missing", n_neighbors=10)
    with pytest.raises(KeyError, match="adt"):
        wnn_weights(mdata, protein_mod="adt")
    assert "wnn_rna_weight" not in mdata.obs and "wnn" not in mdata.uns


def test_bandwidths_match_muon_metric():
    """The exact bandwidths equal a brute-force search under muon's own bandwidth metric."""
    from muon._core.preproc import _jaccard_euclidean_metric
    from scipy import sparse

    x = _two_views(n_per_type=15)["rna"].obsm["X_pca"]
    n, k = x.shape[0], 9
    _, idx = _wnn._knn(x, k + 1)
    graph = sparse.csr_matrix((np.ones(n * k), np.sort(idx, axis=1).ravel(), np.arange(0, n * k + 1, k)), (n, n))
    kwargs = {
        "X": x,
        "neighbors_indices": graph.indices,
        "neighbors_indptr": graph.indptr,
        "neighbors_data": graph.data,
        "N": n,
        "bbox_norm": np.linalg.norm(np.ptp(x, axis=0)),
    }
    metric = _jaccard_euclidean_metric.py_func
    full = np.array([[metric(np.array([i]), np.array([j]), **kwargs) for j in range(n)] for i in range(n)])
    full[np.arange(n), np.arange(n)] = -1.0  # muon's search returns each cell first
    chosen = np.argsort(full, axis=1, kind="stable")[:, :10]
    expected = np.linalg.norm(x[chosen] - x[:, None, :], axis=2).mean(axis=1)
    np.testing.assert_allclose(_wnn._bandwidths(x, idx, 10), expected)


@pytest.mark.slow
def test_exact_backend_agrees_with_muon(pbmc5k):
    mdata = pbmc5k.copy()
    wnn_weights(mdata, backend="exact")
    wnn_weights(mdata, key_added="muon")
    exact, reference = mdata.obs["wnn_rna_weight"], mdata.obs["muon_rna_weight"]
    assert np.corrcoef(exact, reference)[0, 1] > 0.95
    assert np.abs(exact - reference).mean() < 0.01
