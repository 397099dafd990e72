import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from mudata import MuData
from scipy.stats import spearmanr

from indiseek._docs import dsp
from indiseek.tl import _wnn, theta_scores, wnn_weights
from indiseek.tl._neighbors import EXACT_MAX_CELLS, knn_indices, neighbor_method


def clusters(n: int = 400, dims: int = 10, n_types: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    types = rng.integers(0, n_types, n)
    return rng.normal(scale=2.0, size=(n_types, dims))[types] + rng.normal(size=(n, dims)), types


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth, strict=True)]))


def test_pynndescent_agrees_with_exact_and_is_deterministic():
    x, _ = clusters()
    exact = knn_indices(x, 10, "exact")
    approx = knn_indices(x, 10, "pynndescent", random_state=3)
    assert approx.shape == (400, 10)
    assert recall(approx, exact) >= 0.9
    assert not (approx == np.arange(400)[:, None]).any()
    np.testing.assert_array_equal(approx, knn_indices(x, 10, "pynndescent", random_state=3))
    dist, idx = knn_indices(x, 10, "pynndescent", random_state=3, return_distance=True)
    np.testing.assert_allclose(dist, np.linalg.norm(x[idx] - x[:, None], axis=2))
    assert (np.diff(dist, axis=1) >= 0).all()


@pytest.mark.parametrize("method", ["exact", "pynndescent"])
def test_own_index_left_out_but_duplicates_kept(method):
    x, _ = clusters(n=100)
    x = np.repeat(x, 3, axis=0)  # every point three times: its two copies are its nearest other points
    idx = knn_indices(x, 2, method)
    own = np.arange(len(x))[:, None]
    assert not (idx == own).any()
    np.testing.assert_array_equal(np.sort(idx // 3, axis=1), np.repeat(own // 3, 2, axis=1))


def test_rows_pynndescent_leaves_short_are_searched_exactly(monkeypatch):
    import pynndescent

    x, _ = clusters(n=60)
    exact = knn_indices(x, 5, "exact")

    class Short:  # the exact graph (self first), with two rows left short as nearest-neighbour descent marks them
        def __init__(self, data, n_neighbors, **kwargs):
            idx = np.column_stack([np.arange(60), knn_indices(x, n_neighbors - 1, "exact")])
            idx[[3, 7], 2:] = -1
            self.neighbor_graph = (idx, np.zeros(idx.shape))

    monkeypatch.setattr(pynndescent, "NNDescent", Short)
    np.testing.assert_array_equal(knn_indices(x, 5, "pynndescent"), exact)


def test_auto_threshold_and_errors():
    assert neighbor_method("auto", EXACT_MAX_CELLS) == "exact"
    assert neighbor_method("auto", EXACT_MAX_CELLS + 1) == "pynndescent"
    assert neighbor_method("pynndescent", 10) == "pynndescent"
    assert f"{EXACT_MAX_CELLS:,}" in dsp.params["param_neighbors"]
    with pytest.raises(ValueError, match="n_neighbors"):
        knn_indices(np.zeros((5, 2)), 5)


def test_theta_with_pynndescent_close_to_exact():
    rng = np.random.default_rng(1)
    x_rna, types = clusters(n=600, dims=20, seed=1)
    x_protein = x_rna[:, ::-1] + rng.normal(scale=2.0, size=x_rna.shape)
    adata = AnnData(obsm={"X_m_specific_rna": x_rna, "X_m_specific_protein": x_protein})
    adata.obs["lab"] = types.astype(str)
    theta_scores(adata, label_key="lab", method="m", key_added="exact", neighbors="exact")
    theta_scores(adata, label_key="lab", method="m", key_added="approx", neighbors="pynndescent")
    assert adata.uns["exact"]["params"]["neighbors"] == "exact"
    assert adata.uns["approx"]["params"]["neighbors"] == "pynndescent"
    assert spearmanr(adata.obs["exact"], adata.obs["approx"]).statistic > 0.9
    theta_scores(adata, label_key="lab", method="m", key_added="auto")
    assert adata.uns["auto"]["params"]["neighbors"] == "exact"
    np.testing.assert_array_equal(adata.obs["auto"], adata.obs["exact"])


def two_views(n: int = 400) -> MuData:
    """The RNA representation separates eight types; the protein one is mostly noise."""
    x, types = clusters(n=n)
    obs = pd.DataFrame(index=[f"c{i}" for i in range(n)])
    rna = AnnData(np.ones((n, 2), np.float32), obs=obs.copy(), obsm={"X_pca": x})
    prot = AnnData(np.ones((n, 2), np.float32), obs=obs.copy())
    prot.var_names = ["CD3", "CD4"]
    prot.obsm["X_pca"] = 0.3 * x[:, :4] + np.random.default_rng(1).normal(size=(n, 4))
    return MuData({"rna": rna, "prot": prot})


@pytest.mark.parametrize("backend", ["exact", pytest.param("muon", marks=pytest.mark.slow)])
def test_wnn_weights_with_pynndescent_close_to_exact(backend):
    mdata = two_views()
    kwargs = {"rna_rep": "X_pca", "protein_rep": "X_pca", "backend": backend}
    wnn_weights(mdata, key_added="exact", neighbors="exact", **kwargs)
    wnn_weights(mdata, key_added="approx", neighbors="pynndescent", **kwargs)
    assert mdata.uns["approx"]["params"]["neighbors"] == "pynndescent"
    assert spearmanr(mdata.obs["exact_rna_weight"], mdata.obs["approx_rna_weight"]).statistic > 0.95


def test_invalid_neighbors_names_the_argument():
    adata = AnnData(obsm={"X_m_specific_rna": np.zeros((20, 2)), "X_m_specific_protein": np.zeros((20, 2))})
    adata.obs["lab"] = ["a", "b"] * 10
    with pytest.raises(ValueError, match="neighbors 'annoy'"):
        theta_scores(adata, label_key="lab", method="m", neighbors="annoy")
    mdata = two_views(n=20)
    with pytest.raises(ValueError, match="neighbors 'annoy'"):
        wnn_weights(mdata, rna_rep="X_pca", protein_rep="X_pca", neighbors="annoy")
    assert "wnn" not in mdata.uns


def test_muon_graph_from_pynndescent_has_scanpys_structure():
    """The graph muon starts from: the 14 nearest other cells per row, sorted by index, no diagonal (as scanpy's)."""
    x, _ = clusters(n=300)
    tmp = AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(300)]), obsm={"X_rep": x.astype(np.float32)})
    _wnn._modality_graph(tmp, 15, "pynndescent", random_state=0)
    graph = tmp.obsp["distances"]
    assert (graph.getnnz(axis=1) == 14).all() and graph.has_sorted_indices and not graph.diagonal().any()
    dist, idx = knn_indices(x.astype(np.float32), 14, "exact", return_distance=True)
    assert recall(graph.tolil().rows, idx) >= 0.9
    nearest = np.minimum.reduceat(graph.data, graph.indptr[:-1])  # muon's distance to the nearest neighbour
    assert np.isclose(nearest, dist[:, 0], rtol=1e-5).mean() > 0.95
    params = tmp.uns["neighbors"]["params"]  # what muon.pp.neighbors reads
    assert params["n_neighbors"] == 15 and params["use_rep"] == "X_rep"
    assert tmp.uns["neighbors"]["distances_key"] == "distances"
