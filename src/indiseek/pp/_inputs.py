"""Input preparation fitted on training cells and replayed on any cells (query cells included).

RNA: counts normalised per cell to 10,000, ``log1p``, highly variable genes, the leading principal components.
Protein (ADT): centred log-ratio per cell, then centred with the training cells' means.
"""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import scanpy as sc
from scipy import sparse
from sklearn.decomposition import PCA

logger = logging.getLogger(__name__)


def log_normalize(counts, target_sum: float = 1e4):
    """``log1p`` of counts scaled to ``target_sum`` per cell; keeps sparse input sparse (CSR, float32)."""
    if sparse.issparse(counts):
        counts = sparse.csr_matrix(counts, dtype=np.float32)
        totals = np.asarray(counts.sum(1)).ravel()
        out = sparse.diags((target_sum / totals).astype(np.float32)) @ counts
        out.data = np.log1p(out.data)
        return out.tocsr()
    counts = np.asarray(counts, dtype=np.float32)
    return np.log1p(counts * (target_sum / counts.sum(1, keepdims=True)))


def clr(counts) -> np.ndarray:
    """Centred log-ratio per cell: ``log1p(x) - mean_j log1p(x_j)``, a dense float32 array."""
    counts = counts.toarray() if sparse.issparse(counts) else np.asarray(counts)
    logged = np.log1p(counts.astype(np.float32))
    return logged - logged.mean(1, keepdims=True)


class RNAInputs:
    """Normalise, ``log1p``, select highly variable genes and project on principal components.

    Parameters
    ----------
    n_top_genes
        Number of highly variable genes (scanpy's ``"seurat"`` flavour; all genes when there are fewer).
    n_pcs
        Number of principal components (capped by the number of training cells and genes minus one).
    seed
        Seed of the randomised PCA.
    """

    def __init__(self, n_top_genes: int = 2000, n_pcs: int = 200, seed: int = 0):
        self.n_top_genes = n_top_genes
        self.n_pcs = n_pcs
        self.seed = seed
        self.genes: np.ndarray | None = None  # indices of the selected genes among the registered ones
        self.mean: np.ndarray | None = None
        self.components: np.ndarray | None = None

    def fit(self, counts) -> RNAInputs:
        """Fit on the training cells' raw counts, ``(n_cells, n_genes)``."""
        logged = log_normalize(counts)
        n_genes = logged.shape[1]
        if n_genes > self.n_top_genes:
            tmp = ad.AnnData(logged)
            sc.pp.highly_variable_genes(tmp, n_top_genes=self.n_top_genes, flavor="seurat")
            self.genes = np.flatnonzero(tmp.var["highly_variable"].to_numpy())
        else:
            self.genes = np.arange(n_genes)
        x = _dense(logged[:, self.genes])
        n_comps = min(self.n_pcs, x.shape[0] - 1, x.shape[1] - 1)
        if n_comps < 1:
            raise ValueError(f"Too few training cells ({x.shape[0]}) or genes ({x.shape[1]}) for a PCA.")
        pca = PCA(n_components=n_comps, svd_solver="randomized", random_state=self.seed).fit(x)
        self.mean = pca.mean_.astype(np.float32)
        self.components = pca.components_.astype(np.float32)
        logger.info("RNA inputs: %d genes, %d principal components", len(self.genes), n_comps)
        return self

    def transform(self, counts) -> np.ndarray:
        """Principal-component scores ``(n_cells, n_pcs)`` of raw counts with the registered genes."""
        x = _dense(log_normalize(counts)[:, self.genes])
        return (x - self.mean) @ self.components.T

    def state_dict(self) -> dict[str, np.ndarray]:
        """Fitted arrays, for saving."""
        return {"genes": self.genes, "mean": self.mean, "components": self.components}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> RNAInputs:
        """Restore fitted arrays."""
        self.genes = np.asarray(state["genes"], dtype=np.int64)
        self.mean = np.asarray(state["mean"], dtype=np.float32)
        self.components = np.asarray(state["components"], dtype=np.float32)
        return self

    @property
    def n_output(self) -> int:
        """Dimension of the prepared inputs."""
        return self.components.shape[0]


class ProteinInputs:
    """Centred log-ratio per cell, centred with the training cells' means."""

    def __init__(self):
        self.mean: np.ndarray | None = None

    def fit(self, counts) -> ProteinInputs:
        """Fit on the training cells' raw counts, ``(n_cells, n_proteins)``."""
        self.mean = clr(counts).mean(0)
        return self

    def transform(self, counts) -> np.ndarray:
        """Centred CLR values ``(n_cells, n_proteins)``."""
        return clr(counts) - self.mean

    def state_dict(self) -> dict[str, np.ndarray]:
        """Fitted arrays, for saving."""
        return {"mean": self.mean}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> ProteinInputs:
        """Restore fitted arrays."""
        self.mean = np.asarray(state["mean"], dtype=np.float32)
        return self

    @property
    def n_output(self) -> int:
        """Dimension of the prepared inputs."""
        return self.mean.shape[0]


def _dense(x) -> np.ndarray:
    return np.asarray(x.toarray() if sparse.issparse(x) else x, dtype=np.float32)
