"""Label transfer from annotated reference cells to query cells by a distance-weighted kNN vote."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData
from sklearn.neighbors import NearestNeighbors

from ._checks import check_data, check_int, check_str, labels, matrix, obs_key

logger = logging.getLogger(__name__)

_HINT = "Embed both objects in the same space first, e.g. with the same trained model's `write_embeddings()`."


def _votes(distances: np.ndarray, codes: np.ndarray, n_categories: int) -> np.ndarray:
    """Each query cell's total weight per category: 1 / distance per neighbour, or only the exact matches."""
    exact = distances == 0
    with np.errstate(divide="ignore"):
        weights = np.where(exact.any(axis=1, keepdims=True), exact.astype(float), 1 / distances)
    n = len(distances)
    cell_and_category = (np.arange(n)[:, None] * n_categories + codes).ravel()
    votes = np.bincount(cell_and_category, weights=weights.ravel(), minlength=n * n_categories)
    return votes.reshape(n, n_categories)


def transfer_labels(
    reference: MuData | AnnData,
    query: MuData | AnnData,
    label_key: str,
    use_rep: str,
    key_added: str = "transferred_labels",
    n_neighbors: int = 15,
) -> pd.DataFrame:
    """Transfer labels from reference to query cells by a vote of their nearest reference cells.

    Each query cell's ``n_neighbors`` nearest labelled reference cells (Euclidean, in ``.obsm[use_rep]``) vote for
    their labels with weight 1 / distance; a neighbour at distance 0 (the same point) outvotes all others: when a
    query cell has such neighbours only they vote, equally. The cell gets the label with the largest total weight
    (ties go to the label that comes first in the reference's categories), and a confidence equal to that label's
    share of the total weight: 1 when all neighbours agree, about 1/k when k labels share the vote evenly.

    Parameters
    ----------
    reference
        AnnData or MuData with labels in ``.obs[label_key]`` and the representation in ``.obsm[use_rep]``. Cells
        without a label (NaN) or with NaN in their representation row are ignored (their number is logged).
    query
        AnnData or MuData with the representation in ``.obsm[use_rep]``, of the same width as the reference's.
        Cells with NaN in their representation row (e.g. missing the modality it is computed from) get a missing
        label and a missing confidence (NaN), never a label guessed from a partial row.
    label_key
        Column of the reference's ``.obs`` with the labels. In a MuData, ``"celltype"`` also finds a single
        modality's ``"rna:celltype"``.
    use_rep
        Key of ``.obsm`` present in both, e.g. ``"X_indiseek"``: a cells x features matrix (NaN rows allowed,
        infinite values not).
    key_added
        Name of the ``.obs`` columns written to the query.
    n_neighbors
        Number of reference cells voting for each query cell; at most the number of usable reference cells.

    Returns
    -------
    One row per query cell (index ``query.obs_names``) with columns ``key_added`` (categorical, with the reference
    labels' categories; NaN for query cells without a representation) and ``key_added + "_confidence"`` (in
    (0, 1]; NaN likewise). Both columns are also written to ``query.obs``. Nothing is written when an argument is
    wrong.
    """
    check_data(reference, "reference")
    check_data(query, "query")
    key_added = check_str(key_added, "key_added")
    n_neighbors = check_int(n_neighbors, "n_neighbors", 1)
    key = obs_key(reference, label_key, "label_key")
    reference_labels = labels(reference, key, "label_key")
    x_reference = matrix(reference, use_rep, "use_rep (reference)", _HINT, missing_rows=True)
    x_query = matrix(query, use_rep, "use_rep (query)", _HINT, missing_rows=True)
    if x_reference.shape[1] != x_query.shape[1]:
        raise ValueError(
            f"use_rep: .obsm[{use_rep!r}] has {x_reference.shape[1]} columns in the reference but {x_query.shape[1]} "
            f"in the query. {_HINT}"
        )
    categorical = reference_labels.astype("category")
    categories = categorical.cat.categories
    codes = np.asarray(categorical.cat.codes)
    has_rep = ~np.isnan(x_reference).any(axis=1)
    usable = (codes >= 0) & has_rep
    n_usable = int(usable.sum())
    if n_neighbors > n_usable:
        raise ValueError(
            f"n_neighbors ({n_neighbors}) must be at most the number of reference cells with a label and a "
            f"representation ({n_usable}): pass a smaller n_neighbors."
        )
    if n_usable < len(codes):
        logger.info(
            "Ignoring %d of %d reference cells: %d without a label in .obs[%r], %d with NaN in .obsm[%r].",
            len(codes) - n_usable,
            len(codes),
            int((codes < 0).sum()),
            key,
            int((~has_rep).sum()),
            use_rep,
        )

    query_ok = ~np.isnan(x_query).any(axis=1)
    winner = np.full(len(x_query), -1)
    confidence = np.full(len(x_query), np.nan)
    if query_ok.any():
        nn = NearestNeighbors(n_neighbors=n_neighbors).fit(x_reference[usable])
        distances, indices = nn.kneighbors(x_query[query_ok])
        votes = _votes(distances, codes[usable][indices], len(categories))
        winner[query_ok] = votes.argmax(axis=1)
        confidence[query_ok] = votes.max(axis=1) / votes.sum(axis=1)
    if not query_ok.all():
        logger.warning(
            "%d of %d query cells have NaN in .obsm[%r]: their %r and %r are NaN.",
            int((~query_ok).sum()),
            len(x_query),
            use_rep,
            key_added,
            f"{key_added}_confidence",
        )
    transferred = pd.Categorical.from_codes(winner, categories=categories)
    result = pd.DataFrame({key_added: transferred, f"{key_added}_confidence": confidence}, index=query.obs_names.copy())
    query.obs[key_added] = transferred
    query.obs[f"{key_added}_confidence"] = confidence
    return result
