"""Input preparation fitted on the training cells, stored in the module's buffers.

RNA: counts normalised per cell to 10,000, ``log1p``, highly variable genes (scanpy's ``"seurat"`` flavour), the
leading principal components; fitted on the sparse counts without densifying them. Protein (ADT): Seurat's centred
log-ratio per cell (:func:`clr`), centred with the training cells' means.
"""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import torch
from scipy import sparse

from indiseek import nn as _nn

logger = logging.getLogger(__name__)


def clr(counts) -> np.ndarray:
    """Seurat's centred log-ratio per cell of raw counts ``(cells, proteins)``, as a float32 array.

    The one CLR of the package (:func:`indiseek.nn.clr`), used by the model and by :func:`indiseek.tl.wnn_weights`.
    """
    counts = counts.toarray() if sparse.issparse(counts) else np.asarray(counts)
    return _nn.clr(torch.as_tensor(counts, dtype=torch.float32)).numpy()


def standard_rna_pcs(rna: ad.AnnData, n_top_genes: int = 2000, n_pcs: int = 50, random_state: int = 0) -> np.ndarray:
    """Seurat's standard RNA input, the no-learning reference: normalise per cell, log1p, HVG, scale, PCA.

    The scaling (each gene centred, divided by its standard deviation and clipped to +-10, as
    :func:`scanpy.pp.scale` with ``max_value=10``) and the PCA are done a block of cells at a time, so memory holds
    the sparse counts and a genes x genes covariance, never the dense cells x genes matrix. The PCA is the exact
    eigendecomposition of that covariance (scanpy's ``covariance_eigh``); each component's sign makes its largest
    loading positive.

    Parameters
    ----------
    rna
        Raw counts in ``.X`` (not modified).
    n_top_genes, n_pcs
        Highly variable genes (scanpy's ``"seurat"`` flavour) and principal components, capped by the data.
    random_state
        Unused (the PCA is deterministic); kept so that callers can pass the seed of their other steps.

    Returns
    -------
    Principal-component scores, ``(cells, n_pcs)``, float32.
    """
    x = rna.X
    x = sparse.csr_matrix(x, dtype=np.float32) if sparse.issparse(x) else np.array(x, dtype=np.float32)
    tmp = ad.AnnData(x)
    sc.pp.normalize_total(tmp, target_sum=1e4)
    sc.pp.log1p(tmp)
    sc.pp.highly_variable_genes(tmp, n_top_genes=min(n_top_genes, tmp.n_vars), flavor="seurat", subset=True)
    return _scaled_pcs(tmp.X, min(n_pcs, tmp.n_obs - 1, tmp.n_vars - 1))


def _blocks(x, block: int):
    """Rows of ``x`` (sparse or dense) as dense float64 blocks of at most ``block`` rows."""
    for start in range(0, x.shape[0], block):
        chunk = x[start : start + block]
        yield np.asarray(chunk.toarray() if sparse.issparse(chunk) else chunk, dtype=np.float64)


def _scaled_pcs(x, n_comps: int, max_value: float = 10.0, block_elements: int = 2**22) -> np.ndarray:
    """PCA scores ``(cells, n_comps)`` of the genes of ``x`` standardised and clipped to ``+-max_value``, by blocks.

    The same numbers as :func:`scanpy.pp.scale` then a PCA of the dense result, with ``block_elements`` dense values
    at a time: three passes over the rows (mean and variance, covariance of the scaled values, projection).
    """
    n, n_genes = x.shape
    block = max(1, block_elements // n_genes)
    mean = np.zeros(n_genes)
    square = np.zeros(n_genes)
    for chunk in _blocks(x, block):
        mean += chunk.sum(0)
        square += (chunk**2).sum(0)
    mean /= n
    std = np.sqrt(np.maximum(square / n - mean**2, 0) * n / max(n - 1, 1))  # scanpy's unbiased variance
    std[std == 0] = 1

    def scaled(chunk: np.ndarray) -> np.ndarray:
        return np.clip((chunk - mean) / std, -max_value, max_value)

    total, gram = np.zeros(n_genes), np.zeros((n_genes, n_genes))
    for chunk in _blocks(x, block):
        chunk = scaled(chunk)
        total += chunk.sum(0)
        gram += chunk.T @ chunk
    centre = total / n
    values, vectors = np.linalg.eigh((gram - n * np.outer(centre, centre)) / max(n - 1, 1))
    vectors = vectors[:, np.argsort(values)[::-1][:n_comps]]
    vectors *= np.sign(vectors[np.abs(vectors).argmax(0), np.arange(n_comps)])  # a fixed sign
    return np.concatenate([(scaled(chunk) - centre) @ vectors for chunk in _blocks(x, block)]).astype(np.float32)


def _batch_means(x, batch: np.ndarray, n_batches: int) -> np.ndarray:
    """Mean of the rows of ``x`` (sparse or dense) in each batch, ``(n_batches, n_features)``."""
    indicator = sparse.csr_matrix((np.ones(len(batch)), (batch, np.arange(len(batch)))), shape=(n_batches, len(batch)))
    sizes = np.asarray(indicator.sum(1)).ravel()
    if (sizes == 0).any():
        raise ValueError(f"Batch {int(np.flatnonzero(sizes == 0)[0])} has no training cells.")
    sums = indicator @ x
    sums = sums.toarray() if sparse.issparse(sums) else sums
    return np.asarray(sums, dtype=np.float64) / sizes[:, None]


def _within_batch_pca(x, batch: np.ndarray, means: np.ndarray, n_comps: int) -> np.ndarray:
    """Leading eigenvectors ``(n_comps, n_features)`` of the pooled within-batch covariance, without densifying."""
    xtx = (x.T @ x).toarray() if sparse.issparse(x) else x.T @ x
    sizes = np.bincount(batch, minlength=len(means))
    cov = (np.asarray(xtx, dtype=np.float64) - (means.T * sizes) @ means) / max(len(batch) - len(means), 1)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:n_comps]
    vectors = vectors[:, order].T
    return vectors * np.sign(vectors[np.arange(n_comps), np.abs(vectors).argmax(1)])[:, None]  # a fixed sign


def fit_rna_inputs(counts, n_top_genes: int, n_pcs: int, batch: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Fit the RNA preparation on the training cells' raw counts.

    Parameters
    ----------
    counts
        Raw counts ``(cells, genes)``, sparse or dense; never densified.
    n_top_genes
        Highly variable genes to keep (all genes when there are fewer).
    n_pcs
        Principal components, capped by the number of training cells and genes minus one.
    batch
        Batch codes ``0 .. n_batches - 1`` of the cells, or ``None`` for one batch. With several batches, genes are
        selected per batch (scanpy's ``batch_key``), each batch is centred on its own mean, and the components are
        those of the pooled within-batch covariance: differences between batch means do not enter the inputs.

    Returns
    -------
    ``genes`` (indices of the kept genes among the registered ones), ``mean`` (``(n_genes_kept,)``) and
    ``components`` (``(n_pcs, n_genes_kept)``), the buffers of :class:`indiseek.module.RNAInputs`; with several
    batches also ``batch_offset`` (``(n_batches, n_genes_kept)``, each batch's mean minus ``mean``). The PCA is
    the exact eigendecomposition of the covariance (scanpy's ``covariance_eigh``), which is deterministic and
    works on sparse data.
    """
    adata = ad.AnnData(sparse.csr_matrix(counts, dtype=np.float32))
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    n_batches = 1 if batch is None else int(batch.max()) + 1
    if n_batches > 1:
        adata.obs["batch"] = pd.Categorical(batch)
    if adata.n_vars > n_top_genes:
        try:
            sc.pp.highly_variable_genes(
                adata, n_top_genes=n_top_genes, flavor="seurat", batch_key="batch" if n_batches > 1 else None
            )
        except (IndexError, ValueError) as err:  # scanpy's binning fails on tiny or nearly empty data
            raise ValueError(
                f"Highly variable gene selection failed on the training cells' RNA ({adata.n_obs} cells, "
                f"{adata.n_vars} genes, {int((adata.X.getnnz(0) > 0).sum())} detected; scanpy: {err}): the data are "
                f"too small or sparse for it. Pass n_top_genes={adata.n_vars} to keep every gene, or use more cells."
            ) from None
        genes = np.flatnonzero(adata.var["highly_variable"].to_numpy())
        adata = adata[:, genes].copy()
    else:
        genes = np.arange(adata.n_vars)
    n_comps = min(n_pcs, adata.n_obs - 1, adata.n_vars - 1)
    if n_comps < 1:
        raise ValueError(f"Too few training cells ({adata.n_obs}) or genes ({adata.n_vars}) for a PCA.")
    mean = np.asarray(adata.X.mean(0), dtype=np.float32).ravel()
    logger.info("RNA inputs: %d genes, %d principal components, %d batch(es)", len(genes), n_comps, n_batches)
    if n_batches == 1:
        sc.pp.pca(adata, n_comps=n_comps, zero_center=True, svd_solver="covariance_eigh")
        return {
            "genes": genes.astype(np.int64),
            "mean": mean,
            "components": np.ascontiguousarray(adata.varm["PCs"].T, dtype=np.float32),
        }
    means = _batch_means(adata.X, batch, n_batches)
    return {
        "genes": genes.astype(np.int64),
        "mean": mean,
        "components": _within_batch_pca(adata.X, batch, means, n_comps).astype(np.float32),
        "batch_offset": (means - mean).astype(np.float32),
    }


def fit_protein_inputs(counts, batch: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Fit the protein preparation on raw counts ``(cells, proteins)``: the training cells' mean CLR per protein.

    With batch codes ``batch``, also ``batch_offset``: each batch's mean CLR minus the overall mean.
    """
    values = clr(counts)
    out = {"mean": values.mean(0)}
    if batch is not None and batch.max() > 0:
        out["batch_offset"] = (_batch_means(values, batch, int(batch.max()) + 1) - out["mean"]).astype(np.float32)
    return out
