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


#: Dense values per block of cells in the blocked computations (float64: 32 MB).
_BLOCK_ELEMENTS = 2**22


def _log_normalise(x) -> None:
    """Normalise each row of float32 counts ``x`` (CSR or dense) to 10,000 in total and take ``log1p``, in place."""
    totals = np.asarray(x.sum(1, dtype=np.float64)).ravel()
    scale = (1e4 / np.where(totals == 0, 1, totals)).astype(np.float32)
    if sparse.issparse(x):
        x.data *= np.repeat(scale, np.diff(x.indptr))
        np.log1p(x.data, out=x.data)
    else:
        x *= scale[:, None]
        np.log1p(x, out=x)


def _log_blocks(counts, rows: np.ndarray | None = None, genes: np.ndarray | None = None):
    """``(start, block)``: log-normalised float32 copies of ``counts``' rows (all, or ``rows``), a block at a time.

    ``counts`` is a matrix (sparse or dense) or an AnnData (its ``.X``; a view or backed). ``start`` is the block's
    position among the rows; ``genes`` keeps those columns after normalisation. ``counts`` is never changed.
    """
    n = counts.shape[0] if rows is None else len(rows)
    step = max(1, _BLOCK_ELEMENTS // counts.shape[1])
    for start in range(0, n, step):
        x = counts[start : start + step] if rows is None else counts[rows[start : start + step]]
        x = x.X if isinstance(x, ad.AnnData) else x
        x = sparse.csr_matrix(x, dtype=np.float32, copy=True) if sparse.issparse(x) else np.array(x, np.float32)
        _log_normalise(x)  # scanpy's normalize_total(target_sum=1e4) and log1p
        yield start, x if genes is None else x[:, genes]


def standard_rna_pcs(rna: ad.AnnData, n_top_genes: int = 2000, n_pcs: int = 50, random_state: int = 0) -> np.ndarray:
    """Seurat's standard RNA input, the no-learning reference: normalise per cell, log1p, HVG, scale, PCA.

    The same steps as :func:`scanpy.pp.normalize_total` (10,000 counts per cell), :func:`scanpy.pp.log1p`,
    :func:`scanpy.pp.highly_variable_genes` (``"seurat"`` flavour), :func:`scanpy.pp.scale` (``max_value=10``) and a
    PCA, computed a block of cells at a time: memory holds ``rna``'s counts, one block and a genes x genes
    covariance, never a copy of the counts or the dense cells x genes matrix (the whole-matrix route held four
    copies and the dense scaled matrix, 8 GB for a million cells and 1,000 genes). ``rna`` may be a view or backed.
    The PCA is the exact eigendecomposition of the covariance (scanpy's ``covariance_eigh``), each component's
    sign making its largest loading positive.

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
    n, n_genes = rna.shape
    sums = np.zeros((4, n_genes))  # of the normalised counts (HVG), their squares, the logs (scale), their squares
    for _, x in _log_blocks(rna):
        logs = x.data if sparse.issparse(x) else x
        for k, values in enumerate((np.expm1(logs), logs)):
            values = values.astype(np.float64)
            if sparse.issparse(x):
                sums[2 * k] += np.bincount(x.indices, weights=values, minlength=n_genes)
                sums[2 * k + 1] += np.bincount(x.indices, weights=values**2, minlength=n_genes)
            else:
                sums[2 * k] += values.sum(0)
                sums[2 * k + 1] += (values**2).sum(0)
    mean, square = sums[0::2] / n, sums[1::2] / n
    var = np.maximum(square - mean**2, 0) * n / max(n - 1, 1)  # scanpy's unbiased variance
    genes = np.flatnonzero(_seurat_hvg(mean[0], var[0], min(n_top_genes, n_genes)))
    std = np.sqrt(var[1, genes])
    std[std == 0] = 1
    n_comps = min(n_pcs, n - 1, len(genes) - 1)
    return _scaled_pcs(lambda: (x for _, x in _log_blocks(rna, genes=genes)), n, mean[1, genes], std, n_comps)


def _seurat_hvg(
    mean: np.ndarray, var: np.ndarray, n_top_genes: int, n_bins: int = 20, return_dispersions: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Scanpy's ``"seurat"`` highly variable genes from per-gene means and variances of the normalised counts.

    With ``return_dispersions``, also the normalised dispersions (scanpy's ``dispersions_norm``).
    """
    mean = np.where(mean == 0, 1e-12, mean)
    dispersion = var / mean
    dispersion[dispersion == 0] = np.nan
    dispersion, mean = np.log(dispersion), np.log1p(mean)
    genes = pd.DataFrame({"dispersions": dispersion, "mean_bin": pd.cut(mean, bins=n_bins)})
    stats = genes.groupby("mean_bin", observed=True)["dispersions"].agg(avg="mean", dev="std")
    alone = stats["dev"].isnull()  # a gene alone in its bin gets a normalised dispersion of 1, as in scanpy
    stats.loc[alone, "dev"] = stats.loc[alone, "avg"]
    stats.loc[alone, "avg"] = 0
    stats = stats.loc[genes["mean_bin"]]
    normalised = (dispersion - stats["avg"].to_numpy()) / stats["dev"].to_numpy()
    finite = np.sort(normalised[~np.isnan(normalised)])[::-1]
    if not len(finite):
        raise ValueError(f"none of the {len(mean)} genes varies between cells")
    chosen = np.nan_to_num(normalised, nan=-np.inf) >= finite[min(n_top_genes, len(finite)) - 1]
    return (chosen, normalised) if return_dispersions else chosen


def _batched_seurat_hvg(blocks, n_genes: int, n_batches: int, n_top_genes: int) -> np.ndarray:
    """Scanpy's ``"seurat"`` highly variable genes (with ``batch_key`` when ``n_batches > 1``) of log-normalised cells.

    ``blocks`` yields ``(batch codes, log-normalised rows)`` a block of cells at a time; the per-batch means and
    variances of ``expm1`` of the rows are summed in float64, with no copy of the whole matrix (scanpy's own function
    holds two). With batches, as in scanpy: each batch ranks the genes it detects, and genes are ordered by the number
    of batches that select them, ties broken by the mean normalised dispersion.
    """
    sums = np.zeros((3, n_batches, n_genes))  # values, squares, detections
    sizes = np.zeros((n_batches, 1))
    for codes, chunk in blocks:
        sizes[:, 0] += np.bincount(codes, minlength=n_batches)
        if sparse.issparse(chunk):
            chunk = chunk.tocoo()
            rows, cols, logs = chunk.row, chunk.col, chunk.data
        else:
            rows, cols = np.nonzero(chunk)
            logs = chunk[rows, cols]
        values = np.expm1(logs).astype(np.float64)
        at = codes[rows] * n_genes + cols
        for k, weights in enumerate((values, values**2, None)):
            sums[k] += np.bincount(at, weights=weights, minlength=n_batches * n_genes).reshape(n_batches, n_genes)
    mean, square = sums[0] / sizes, sums[1] / sizes
    var = np.maximum(square - mean**2, 0) * sizes / np.maximum(sizes - 1, 1)  # scanpy's unbiased variance
    if n_batches == 1:
        return _seurat_hvg(mean[0], var[0], min(n_top_genes, n_genes))
    selected, dispersions = np.zeros((n_batches, n_genes)), np.zeros((n_batches, n_genes))
    for b in range(n_batches):
        detected = sums[2, b] > 0  # scanpy leaves genes a batch does not detect out of its ranking (zeros)
        chosen, normalised = _seurat_hvg(
            mean[b, detected], var[b, detected], min(n_top_genes, int(detected.sum())), return_dispersions=True
        )
        selected[b, detected], dispersions[b, detected] = chosen, normalised
    order = pd.DataFrame({"n": selected.sum(0), "d": np.nanmean(dispersions, axis=0)}).sort_values(
        ["n", "d"], ascending=False, na_position="last"
    )
    chosen = np.zeros(n_genes, dtype=bool)
    chosen[order.index[:n_top_genes]] = True
    return chosen


def _scaled_pcs(blocks, n: int, mean: np.ndarray, std: np.ndarray, n_comps: int, max_value: float = 10.0):
    """PCA scores ``(n, n_comps)`` of genes standardised with ``mean``, ``std`` and clipped to ``+-max_value``.

    ``blocks()`` yields the cells' rows a block at a time (sparse or dense); two passes: the covariance of the
    scaled values, then the projection.
    """

    def scaled(x) -> np.ndarray:
        x = np.asarray(x.toarray() if sparse.issparse(x) else x, dtype=np.float64)
        return np.clip((x - mean) / std, -max_value, max_value)

    total, gram = np.zeros(len(mean)), np.zeros((len(mean), len(mean)))
    for x in blocks():
        x = scaled(x)
        total += x.sum(0)
        gram += x.T @ x
    centre = total / n
    values, vectors = np.linalg.eigh((gram - n * np.outer(centre, centre)) / max(n - 1, 1))
    vectors = vectors[:, np.argsort(values)[::-1][:n_comps]]
    vectors *= np.sign(vectors[np.abs(vectors).argmax(0), np.arange(n_comps)])  # a fixed sign
    return np.concatenate([(scaled(x) - centre) @ vectors for x in blocks()]).astype(np.float32)


def _batch_means(x, batch: np.ndarray, n_batches: int) -> np.ndarray:
    """Mean of the rows of ``x`` (sparse or dense) in each batch, ``(n_batches, n_features)``."""
    indicator = sparse.csr_matrix((np.ones(len(batch)), (batch, np.arange(len(batch)))), shape=(n_batches, len(batch)))
    sizes = np.asarray(indicator.sum(1)).ravel()
    if (sizes == 0).any():
        raise ValueError(f"Batch {int(np.flatnonzero(sizes == 0)[0])} has no training cells.")
    sums = indicator @ x
    sums = sums.toarray() if sparse.issparse(sums) else sums
    return np.asarray(sums, dtype=np.float64) / sizes[:, None]


def _moments(blocks, n_features: int, n_batches: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-batch column sums ``(n_batches, n_features)`` and ``x.T @ x``, in float64, of the rows ``blocks`` yields.

    ``blocks`` yields ``(batch codes, rows)`` (sparse or dense); each block is densified (BLAS is faster than a sparse
    product here): memory holds one block and the features x features matrix.
    """
    sums, gram = np.zeros((n_batches, n_features)), np.zeros((n_features, n_features))
    for codes, chunk in blocks:
        chunk = np.asarray(chunk.toarray() if sparse.issparse(chunk) else chunk, dtype=np.float64)
        gram += chunk.T @ chunk
        rows = sparse.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))), (n_batches, len(codes)))
        sums += rows @ chunk
    return sums, gram


def _within_batch_pca(gram: np.ndarray, means: np.ndarray, sizes: np.ndarray, n_comps: int) -> np.ndarray:
    """Leading eigenvectors ``(n_comps, n_features)`` of the pooled within-batch covariance, from ``x.T @ x``.

    With one batch this is the covariance PCA of scanpy's ``covariance_eigh``, signed as scikit-learn signs it (each
    component's largest loading positive).
    """
    cov = (gram - (means.T * sizes) @ means) / max(int(sizes.sum()) - len(means), 1)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][:n_comps]
    vectors = vectors[:, order].T
    return vectors * np.sign(vectors[np.arange(n_comps), np.abs(vectors).argmax(1)])[:, None]  # a fixed sign


def fit_rna_inputs(
    counts, n_top_genes: int, n_pcs: int, batch: np.ndarray | None = None, rows: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Fit the RNA preparation on the training cells' raw counts.

    Parameters
    ----------
    counts
        Raw counts ``(cells, genes)``, sparse or dense; never copied whole, densified or changed.
    n_top_genes
        Highly variable genes to keep (all genes when there are fewer).
    n_pcs
        Principal components, capped by the number of training cells and genes minus one.
    batch
        Batch codes ``0 .. n_batches - 1`` of the cells, or ``None`` for one batch. With several batches, genes are
        selected per batch (scanpy's ``batch_key``), each batch is centred on its own mean, and the components are
        those of the pooled within-batch covariance: differences between batch means do not enter the inputs.
    rows
        Positions of the cells to fit on (e.g. the training cells), in the order of ``batch``; default all.

    Returns
    -------
    ``genes`` (indices of the kept genes among the registered ones), ``mean`` (``(n_genes_kept,)``) and
    ``components`` (``(n_pcs, n_genes_kept)``), the buffers of :class:`indiseek.module.RNAInputs`; with several
    batches also ``batch_offset`` (``(n_batches, n_genes_kept)``, each batch's mean minus ``mean``). The PCA is
    the exact eigendecomposition of the covariance (scanpy's ``covariance_eigh``), which is deterministic; means and
    covariance are summed in float64 a block of cells at a time, each block normalised on its own: memory holds one
    block and a genes x genes matrix, never a copy of the counts.
    """
    rows = np.arange(counts.shape[0]) if rows is None else np.asarray(rows)
    n_batches = 1 if batch is None else int(batch.max()) + 1
    codes = np.zeros(len(rows), dtype=np.int64) if batch is None else np.asarray(batch, dtype=np.int64)
    sizes = np.bincount(codes, minlength=n_batches)
    if (sizes == 0).any():
        raise ValueError(f"Batch {int(np.flatnonzero(sizes == 0)[0])} has no training cells.")
    n_genes = counts.shape[1]

    def log_blocks(genes: np.ndarray | None = None):
        for start, x in _log_blocks(counts, rows, genes):
            yield codes[start : start + x.shape[0]], x

    genes = np.arange(n_genes)
    if n_genes > n_top_genes:
        try:
            genes = np.flatnonzero(_batched_seurat_hvg(log_blocks(), n_genes, n_batches, n_top_genes))
        except ValueError as err:
            raise ValueError(
                f"Highly variable gene selection failed on the training cells' RNA ({len(rows)} cells, "
                f"{n_genes} genes: {err}). Pass n_top_genes={n_genes} to keep every gene, or use more cells."
            ) from None
    n_comps = min(n_pcs, len(rows) - 1, len(genes) - 1)
    if n_comps < 1:
        raise ValueError(f"Too few training cells ({len(rows)}) or genes ({len(genes)}) for a PCA.")
    logger.info("RNA inputs: %d genes, %d principal components, %d batch(es)", len(genes), n_comps, n_batches)
    sums, gram = _moments(log_blocks(genes), len(genes), n_batches)
    means, mean = sums / sizes[:, None], sums.sum(0) / len(rows)
    out = {
        "genes": genes.astype(np.int64),
        "mean": mean.astype(np.float32),
        "components": _within_batch_pca(gram, means, sizes, n_comps).astype(np.float32),
    }
    if n_batches > 1:
        out["batch_offset"] = (means - mean).astype(np.float32)
    return out


def fit_protein_inputs(counts, batch: np.ndarray | None = None, n_pcs: int | None = None) -> dict[str, np.ndarray]:
    """Fit the protein preparation on raw counts ``(cells, proteins)``: the training cells' mean CLR per protein.

    With batch codes ``batch``, also ``batch_offset``: each batch's mean CLR minus the overall mean. With more
    proteins than ``n_pcs``, also ``components`` ``(n_pcs, proteins)``: the leading principal components of the CLR
    (of the pooled within-batch covariance, as for the RNA; capped by the number of cells minus one).
    """
    values = clr(counts)
    out = {"mean": values.mean(0)}
    codes = np.zeros(len(values), dtype=np.int64) if batch is None else np.asarray(batch, dtype=np.int64)
    means = _batch_means(values, codes, int(codes.max()) + 1)
    if codes.max() > 0:
        out["batch_offset"] = (means - out["mean"]).astype(np.float32)
    if n_pcs is not None and values.shape[1] > n_pcs:
        n_comps = min(n_pcs, len(values) - 1)
        gram = values.T.astype(np.float64) @ values
        sizes = np.bincount(codes, minlength=len(means))
        out["components"] = _within_batch_pca(gram, means, sizes, n_comps).astype(np.float32)
    return out
