import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from scipy import sparse

from indiseek.datasets import simulate_citeseq
from indiseek.pp import _inputs, standard_rna_pcs


def _dense_scanpy(x, n_top_genes: int, n_pcs: int) -> tuple[np.ndarray, np.ndarray]:
    """The same steps on the whole matrix with scanpy: the reference the blocked version must match."""
    tmp = ad.AnnData(sparse.csr_matrix(x, dtype=np.float32))
    sc.pp.normalize_total(tmp, target_sum=1e4)
    sc.pp.log1p(tmp)
    sc.pp.highly_variable_genes(tmp, n_top_genes=n_top_genes, flavor="seurat")
    hvg = tmp.var["highly_variable"].to_numpy()
    tmp = tmp[:, hvg].copy()
    tmp.X = tmp.X.toarray().astype(np.float64)
    sc.pp.scale(tmp, max_value=10)
    sc.pp.pca(tmp, n_comps=n_pcs, svd_solver="covariance_eigh")
    return tmp.obsm["X_pca"], hvg


@pytest.fixture(scope="module")
def rna():
    return simulate_citeseq(n_cells=700, n_genes=200, n_types=6, n_lineages=2, seed=3, progress_bar=False)["rna"]


@pytest.mark.parametrize("n_top_genes", [150, 300])  # a selection, and more genes asked for than there are
def test_blocked_pcs_match_scanpy_on_the_whole_matrix(rna, n_top_genes, monkeypatch):
    reference, hvg = _dense_scanpy(rna.X, n_top_genes, 10)
    chosen = {}
    seurat_hvg = _inputs._seurat_hvg
    monkeypatch.setattr(_inputs, "_seurat_hvg", lambda *a: chosen.setdefault("genes", seurat_hvg(*a)))
    monkeypatch.setattr(_inputs, "_BLOCK_ELEMENTS", 37 * rna.n_vars)  # 37 cells per block: 19 blocks
    ours = standard_rna_pcs(rna, n_top_genes=n_top_genes, n_pcs=10)
    np.testing.assert_array_equal(chosen["genes"], hvg)
    assert ours.shape == (700, 10) and ours.dtype == np.float32
    signs = np.sign((ours * reference).sum(0))  # the same scores up to each component's sign
    np.testing.assert_allclose(ours * signs, reference, atol=1e-3 * np.abs(reference).max())


def test_views_dense_counts_and_the_counts_are_untouched(rna):
    before = rna.X.copy()
    cells = rna.obs_names[::2]
    from_view = standard_rna_pcs(rna[cells], n_top_genes=100, n_pcs=5)
    dense = ad.AnnData(rna[cells].X.toarray(), obs=rna[cells].obs)
    np.testing.assert_allclose(standard_rna_pcs(dense, n_top_genes=100, n_pcs=5), from_view, rtol=1e-4, atol=1e-4)
    assert (rna.X != before).nnz == 0


def test_fit_rna_inputs_on_chosen_rows_leaves_the_counts_untouched(rna, monkeypatch):
    from indiseek.pp import fit_rna_inputs

    counts = rna.X.copy()
    rows = np.arange(0, rna.n_obs, 3)
    monkeypatch.setattr(_inputs, "_BLOCK_ELEMENTS", 37 * rna.n_vars)  # several blocks
    fitted = fit_rna_inputs(counts, n_top_genes=100, n_pcs=5, rows=rows)
    assert (counts != rna.X).nnz == 0
    subset = fit_rna_inputs(counts[rows], n_top_genes=100, n_pcs=5)
    for key, value in subset.items():
        np.testing.assert_allclose(fitted[key], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n_batches", [1, 3])
def test_fit_rna_inputs_selects_scanpys_genes(rna, n_batches):
    """The genes are those of scanpy's "seurat" flavour (with batch_key), found without its copies of the counts."""
    from indiseek.pp import fit_rna_inputs

    counts = rna.X.copy().tolil()
    batch = np.arange(rna.n_obs) % n_batches
    counts[np.flatnonzero(batch == n_batches - 1), 5] = 0  # a gene the last batch never detects
    counts = counts.tocsr()
    tmp = ad.AnnData(counts.astype(np.float32))
    sc.pp.normalize_total(tmp, target_sum=1e4)
    sc.pp.log1p(tmp)
    if n_batches > 1:
        tmp.obs["batch"] = pd.Categorical(batch)
    sc.pp.highly_variable_genes(tmp, n_top_genes=120, flavor="seurat", batch_key="batch" if n_batches > 1 else None)
    fitted = fit_rna_inputs(counts, n_top_genes=120, n_pcs=5, batch=batch if n_batches > 1 else None)
    np.testing.assert_array_equal(fitted["genes"], np.flatnonzero(tmp.var["highly_variable"].to_numpy()))


def test_fit_rna_inputs_refuses_genes_that_never_vary():
    from indiseek.pp import fit_rna_inputs

    with pytest.raises(ValueError, match="n_top_genes"):
        fit_rna_inputs(sparse.csr_matrix(np.ones((20, 30), dtype=np.float32)), n_top_genes=10, n_pcs=5)
