import anndata as ad
import numpy as np
import pytest
import scanpy as sc
from scipy import sparse

from indiseek.datasets import simulate_citeseq
from indiseek.pp import standard_rna_pcs
from indiseek.pp._inputs import _scaled_pcs


def _dense_scanpy(x, n_top_genes: int, n_pcs: int) -> np.ndarray:
    """The same steps on the whole dense matrix with scanpy: the reference the blocked version must match."""
    tmp = ad.AnnData(sparse.csr_matrix(x, dtype=np.float32))
    sc.pp.normalize_total(tmp, target_sum=1e4)
    sc.pp.log1p(tmp)
    sc.pp.highly_variable_genes(tmp, n_top_genes=n_top_genes, flavor="seurat", subset=True)
    tmp.X = tmp.X.toarray().astype(np.float64)
    sc.pp.scale(tmp, max_value=10)
    sc.pp.pca(tmp, n_comps=n_pcs, svd_solver="covariance_eigh")
    return tmp.obsm["X_pca"]


@pytest.fixture(scope="module")
def rna():
    return simulate_citeseq(n_cells=700, n_genes=200, n_types=6, n_lineages=2, seed=3, progress_bar=False)["rna"]


def test_blocked_pcs_match_scanpy_on_the_dense_matrix(rna):
    ours = standard_rna_pcs(rna, n_top_genes=150, n_pcs=10)
    reference = _dense_scanpy(rna.X, 150, 10)
    assert ours.shape == (700, 10) and ours.dtype == np.float32
    # the same scores up to each component's sign
    signs = np.sign((ours * reference).sum(0))
    np.testing.assert_allclose(ours * signs, reference, atol=2e-3 * np.abs(reference).max())


def test_blocks_do_not_change_the_scores_and_the_counts_are_untouched(rna):
    before = rna.X.copy()
    x = rna.X[:, :50].toarray()
    whole = _scaled_pcs(x, 5, block_elements=x.size)
    blocked = _scaled_pcs(sparse.csr_matrix(x), 5, block_elements=7 * 50)  # 7 cells per block, 100 blocks
    np.testing.assert_allclose(blocked, whole, rtol=1e-5, atol=1e-5)
    standard_rna_pcs(rna, n_top_genes=100, n_pcs=5)
    assert (rna.X != before).nnz == 0
