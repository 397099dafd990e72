"""Batch-integration metrics of a representation (Luecken et al. 2022; LISI of Korsunsky et al. 2019)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from sklearn.metrics import silhouette_samples
from sklearn.neighbors import NearestNeighbors

from ._checks import check_data, check_int, check_real, check_str, labels, matrix, obs_key

logger = logging.getLogger(__name__)

#: Columns of :func:`integration_metrics`, in order.
METRIC_COLUMNS = ("batch_asw", "ilisi", "ilisi_scaled", "graph_connectivity", "cell_type_asw")
_REP_HINT = "Write the representation first, e.g. `model.write_embeddings()` or `scanpy.pp.pca(adata)`."


def _codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of a label column (-1 where missing) and the labels they stand for."""
    cat = pd.Categorical(column.to_numpy())
    return np.asarray(cat.codes), np.asarray(cat.categories)


def _rep(data: MuData | AnnData, use_rep: object) -> np.ndarray:
    return matrix(data, use_rep, "use_rep", _REP_HINT)


def _neighbors(x: np.ndarray, n_neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices of each cell's ``n_neighbors - 1`` nearest other cells (Euclidean)."""
    # kneighbors() without X leaves each cell out of its own list, even among duplicated points
    return NearestNeighbors(n_neighbors=n_neighbors - 1).fit(x).kneighbors()


def _check_n_neighbors(n_neighbors: int, n_cells: int, name: str, hint: str) -> None:
    if n_neighbors > n_cells:
        raise ValueError(
            f"{name} must be at most the number of cells used ({n_cells}), got {n_neighbors}. {hint}".rstrip()
        )


# ------------------------------------------------------------------------------------------------------- batch ASW
def _batch_asw(x: np.ndarray, batch: np.ndarray, label: np.ndarray) -> float:
    """The scaled batch silhouette of scib's ``silhouette_batch``, on cells with a batch and a label (code >= 0)."""
    keep = (batch >= 0) & (label >= 0)
    x, batch, label = x[keep], batch[keep], label[keep]
    per_label = []
    for group in np.unique(label):
        in_group = label == group
        n_batches = len(np.unique(batch[in_group]))
        # silhouettes are undefined with one batch, and meaningless when every cell is its own batch
        if n_batches == 1 or n_batches == in_group.sum():
            continue
        per_label.append(np.mean(1 - np.abs(silhouette_samples(x[in_group], batch[in_group]))))
    if not per_label:
        warnings.warn(
            "batch ASW is undefined (NaN): no label has cells from at least 2 batches (and fewer batches than cells).",
            UserWarning,
            stacklevel=3,
        )
        return float("nan")
    return float(np.mean(per_label))


def batch_asw(data: MuData | AnnData, batch_key: str, label_key: str, use_rep: str) -> float:
    """Batch ASW: how well batches mix within each cell type, by the silhouette of batch labels.

    As scib's ``silhouette_batch`` with ``scale=True`` (Luecken et al. 2022): within each label, the silhouette
    width s(c) of every cell c with respect to the batches (Euclidean, in ``.obsm[use_rep]``) is turned into
    1 - abs(s(c)); these are averaged over the label's cells, and the per-label means over labels. Labels whose
    cells all come from one batch, or from as many batches as cells, are skipped.

    Parameters
    ----------
    data
        AnnData or MuData with the representation in ``.obsm[use_rep]`` and both columns in ``.obs``.
    batch_key
        Column of ``.obs`` with the batches. In a MuData, ``"batch"`` also finds a single modality's
        ``"rna:batch"``. Cells without a batch (NaN) are left out.
    label_key
        Column of ``.obs`` with the cell types (found as ``batch_key``). Cells without a label are left out.
    use_rep
        Key of ``.obsm``: a cells x features matrix without NaN, e.g. ``"X_pca"`` or ``"X_indiseek"``.

    Returns
    -------
    The batch ASW in [0, 1]: 1 when batches are perfectly mixed (s = 0 in every label), 0 when they are perfectly
    separated (abs(s) = 1); NaN, with a warning, when no label can be scored.
    """
    check_data(data, "data")
    batch = labels(data, obs_key(data, batch_key, "batch_key"), "batch_key")
    label = labels(data, obs_key(data, label_key, "label_key"), "label_key")
    x = _rep(data, use_rep)
    return _batch_asw(x, _codes(batch)[0], _codes(label)[0])


# ----------------------------------------------------------------------------------------------------------- iLISI
def _neighbour_probabilities(distances: np.ndarray, perplexity: float, tol: float = 1e-5, n_tries: int = 50):
    """LISI's per-cell weights of its neighbours, p_j proportional to exp(-beta * d_j), with beta calibrated so that
    the entropy of p is log(perplexity) (the binary search of Korsunsky et al., run for all cells at once).

    The kernel is shifted by each cell's nearest distance, which leaves p and the entropy unchanged but keeps the
    exponentials from underflowing to 0 (where the reference implementation returns a sentinel).
    """
    d = distances - distances[:, :1]  # neighbours come sorted by distance

    def entropy_and_p(beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = np.exp(-d * beta[:, None])
        total = w.sum(axis=1)  # >= 1: the nearest neighbour has weight 1
        p = w / total[:, None]
        return np.log(total) + beta * (d * p).sum(axis=1), p

    n = len(d)
    beta, beta_min, beta_max = np.ones(n), np.full(n, -np.inf), np.full(n, np.inf)
    entropy, p = entropy_and_p(beta)
    diff = entropy - np.log(perplexity)
    for _ in range(n_tries):
        active = np.abs(diff) >= tol
        if not active.any():
            break
        up = active & (diff > 0)  # too flat: sharpen the kernel
        down = active & (diff <= 0)
        beta_min = np.where(up, beta, beta_min)
        beta_max = np.where(down, beta, beta_max)
        beta = np.where(up, np.where(np.isinf(beta_max), beta * 2, (beta + beta_max) / 2), beta)
        beta = np.where(down, np.where(np.isinf(beta_min), beta / 2, (beta + beta_min) / 2), beta)
        new_entropy, new_p = entropy_and_p(beta)
        entropy = np.where(active, new_entropy, entropy)
        p = np.where(active[:, None], new_p, p)
        diff = entropy - np.log(perplexity)
    return p


def _lisi(x: np.ndarray, codes: np.ndarray, n_neighbors: int, perplexity: float) -> np.ndarray:
    """Per-cell LISI: 1 / sum over categories of (weight of the cell's neighbours in that category)^2."""
    distances, indices = _neighbors(x, n_neighbors)
    p = _neighbour_probabilities(distances, perplexity)
    n_categories = int(codes.max()) + 1
    cell_and_category = (np.arange(len(x))[:, None] * n_categories + codes[indices]).ravel()
    per_category = np.bincount(cell_and_category, weights=p.ravel(), minlength=len(x) * n_categories)
    return 1 / (per_category.reshape(len(x), n_categories) ** 2).sum(axis=1)


def _check_lisi_neighbors(perplexity: object, n_neighbors: object) -> tuple[float, int]:
    perplexity = check_real(perplexity, "perplexity", 1)
    if n_neighbors is None:
        n_neighbors = int(3 * perplexity)
    n_neighbors = check_int(n_neighbors, "n_neighbors", 2)
    if perplexity > n_neighbors - 1:
        raise ValueError(
            f"perplexity ({perplexity:g}) must be at most the number of other cells in a neighbourhood "
            f"(n_neighbors - 1 = {n_neighbors - 1}): LISI's default is n_neighbors = 3 x perplexity."
        )
    return perplexity, n_neighbors


def _ilisi(x: np.ndarray, batch: np.ndarray, n_neighbors: int, perplexity: float) -> dict[str, float]:
    keep = batch >= 0
    x, batch = x[keep], batch[keep]
    _check_n_neighbors(
        n_neighbors, len(x), "n_neighbors", "Pass a smaller perplexity (n_neighbors = 3 x perplexity) or n_neighbors."
    )
    per_cell = _lisi(x, batch, n_neighbors, perplexity)
    n_batches = len(np.unique(batch))
    median = float(np.median(per_cell))
    scaled = (median - 1) / (n_batches - 1) if n_batches > 1 else float("nan")
    return {"ilisi": float(np.mean(per_cell)), "ilisi_median": median, "ilisi_scaled": float(scaled)}


def ilisi(
    data: MuData | AnnData,
    batch_key: str,
    use_rep: str,
    perplexity: float = 30,
    n_neighbors: int | None = None,
) -> dict[str, float]:
    """iLISI: the effective number of batches in each cell's neighbourhood (Korsunsky et al. 2019).

    For each cell, its ``n_neighbors`` nearest cells (Euclidean, in ``.obsm[use_rep]``; the cell itself is counted
    among them and then left out, as in LISI and scib-metrics, so 90 means 89 other cells) get weights
    p_j proportional to exp(-beta * d_j) of their distances d_j, with beta found by LISI's binary search so that the
    weights' perplexity exp(-sum_j p_j log p_j) is ``perplexity``. The cell's iLISI is the inverse Simpson's index
    1 / sum_b (sum of p_j over neighbours j in batch b)^2: 1 when all its neighbours share one batch, up to the
    number of batches B when they are spread evenly.

    Parameters
    ----------
    data
        AnnData or MuData with the representation in ``.obsm[use_rep]`` and the batches in ``.obs[batch_key]``.
    batch_key
        Column of ``.obs`` with the batches. In a MuData, ``"batch"`` also finds a single modality's
        ``"rna:batch"``. Cells without a batch (NaN) are left out, also as neighbours.
    use_rep
        Key of ``.obsm``: a cells x features matrix without NaN.
    perplexity
        Effective neighbourhood size (LISI's default 30), between 1 and ``n_neighbors - 1``.
    n_neighbors
        Neighbourhood size, the cell itself included; `None`: 3 x ``perplexity`` (90), as LISI and scib-metrics.
        At most the number of cells.

    Returns
    -------
    ``"ilisi"``: the mean of the per-cell iLISI (in [1, B]); ``"ilisi_median"``: their median;
    ``"ilisi_scaled"``: scib's normalised score (median - 1) / (B - 1) in [0, 1], 1 = well mixed (NaN with a single
    batch). B is the number of batches among the cells used.
    """
    check_data(data, "data")
    perplexity, n_neighbors = _check_lisi_neighbors(perplexity, n_neighbors)
    batch = labels(data, obs_key(data, batch_key, "batch_key"), "batch_key")
    x = _rep(data, use_rep)
    return _ilisi(x, _codes(batch)[0], n_neighbors, perplexity)


# --------------------------------------------------------------------------------------------- graph connectivity
def _graph_connectivity(graph: sparse.spmatrix, label: np.ndarray) -> float:
    fractions = []
    for group in np.unique(label[label >= 0]):
        members = np.flatnonzero(label == group)
        _, component = connected_components(graph[members][:, members], directed=True, connection="weak")
        fractions.append(np.bincount(component).max() / len(members))
    return float(np.mean(fractions))


def _knn_graph(x: np.ndarray, n_neighbors: int) -> sparse.csr_matrix:
    """Directed kNN graph: an edge from each cell to its ``n_neighbors - 1`` nearest other cells."""
    _, indices = _neighbors(x, n_neighbors)
    n, k = indices.shape
    return sparse.csr_matrix((np.ones(n * k), indices.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))


def _obsp_graph(data: MuData | AnnData, obsp_key: object) -> sparse.csr_matrix:
    obsp_key = check_str(obsp_key, "obsp_key")
    if obsp_key not in data.obsp:
        raise KeyError(
            f"obsp_key: .obsp[{obsp_key!r}] not found (keys: {list(data.obsp.keys())}). Compute a neighbours graph "
            "first, e.g. `scanpy.pp.neighbors(adata, use_rep=...)` (key 'connectivities'), or pass use_rep."
        )
    graph = sparse.csr_matrix(data.obsp[obsp_key])
    if graph.shape != (data.n_obs, data.n_obs):
        raise ValueError(f"obsp_key: .obsp[{obsp_key!r}] must be cells x cells, got shape {graph.shape}.")
    graph.eliminate_zeros()
    return graph


def graph_connectivity(
    data: MuData | AnnData,
    label_key: str,
    use_rep: str | None = None,
    n_neighbors: int = 15,
    obsp_key: str | None = None,
) -> float:
    """Graph connectivity: whether each cell type stays one piece in the kNN graph (Luecken et al. 2022).

    For each label, the kNN graph is restricted to the label's cells and the fraction of them in its largest
    connected component is taken; the score is the mean of these fractions over labels. Edges count in both
    directions (components of the graph in which cells are joined when either is a neighbour of the other), as in
    scib, where scanpy's connectivities are symmetric.

    Parameters
    ----------
    data
        AnnData or MuData with the labels in ``.obs[label_key]``.
    label_key
        Column of ``.obs`` with the cell types. In a MuData, ``"celltype"`` also finds a single modality's
        ``"rna:celltype"``. Cells without a label belong to no label's subgraph.
    use_rep
        Key of ``.obsm`` (a cells x features matrix without NaN) to build the kNN graph from (Euclidean, all cells).
        Give this or ``obsp_key``.
    n_neighbors
        Neighbours per cell with ``use_rep``, the cell itself included as in ``scanpy.pp.neighbors`` (default 15,
        scib's); at most the number of cells.
    obsp_key
        Key of ``.obsp`` with an existing neighbours graph (cells x cells, nonzero = edge), e.g. ``"connectivities"``
        from ``scanpy.pp.neighbors``, used instead of building one.

    Returns
    -------
    The graph connectivity in (0, 1]: 1 when every label's cells form one connected component.
    """
    check_data(data, "data")
    if (use_rep is None) == (obsp_key is None):
        raise ValueError("Give exactly one of use_rep (an .obsm key) and obsp_key (an .obsp key of a kNN graph).")
    label = labels(data, obs_key(data, label_key, "label_key"), "label_key")
    if obsp_key is not None:
        graph = _obsp_graph(data, obsp_key)
    else:
        n_neighbors = check_int(n_neighbors, "n_neighbors", 2)
        x = _rep(data, use_rep)
        _check_n_neighbors(n_neighbors, len(x), "n_neighbors", "")
        graph = _knn_graph(x, n_neighbors)
    return _graph_connectivity(graph, _codes(label)[0])


# -------------------------------------------------------------------------------------------------- cell-type ASW
def _check_cell_types(label: np.ndarray, label_key: str) -> None:
    keep = label >= 0
    n_labels = len(np.unique(label[keep]))
    if not 2 <= n_labels < keep.sum():
        raise ValueError(
            f".obs[{label_key!r}] (label_key) has {n_labels} distinct labels among {int(keep.sum())} labelled cells: "
            "the silhouette needs at least 2 labels and fewer labels than cells."
        )


def _cell_type_asw(x: np.ndarray, label: np.ndarray) -> float:
    keep = label >= 0
    return float((np.mean(silhouette_samples(x[keep], label[keep])) + 1) / 2)


def cell_type_asw(data: MuData | AnnData, label_key: str, use_rep: str) -> float:
    """Cell-type ASW: how well cell types separate, as (mean silhouette width of the labels + 1) / 2.

    As scib's ``silhouette`` with ``scale=True`` (Luecken et al. 2022): the silhouette width of every labelled
    cell with respect to the labels (Euclidean, in ``.obsm[use_rep]``), averaged over cells and rescaled to [0, 1].

    Parameters
    ----------
    data
        AnnData or MuData with the representation in ``.obsm[use_rep]`` and the labels in ``.obs[label_key]``.
    label_key
        Column of ``.obs`` with the cell types. In a MuData, ``"celltype"`` also finds a single modality's
        ``"rna:celltype"``. Cells without a label (NaN) are left out. At least 2 labels.
    use_rep
        Key of ``.obsm``: a cells x features matrix without NaN.

    Returns
    -------
    The cell-type ASW in [0, 1]: 1 for tight, well-separated types, 0.5 for overlapping ones.
    """
    check_data(data, "data")
    key = obs_key(data, label_key, "label_key")
    label = labels(data, key, "label_key")
    codes = _codes(label)[0]
    _check_cell_types(codes, key)
    return _cell_type_asw(_rep(data, use_rep), codes)


# -------------------------------------------------------------------------------------------------------- table
def integration_metrics(
    data: MuData | AnnData,
    batch_key: str,
    label_key: str,
    use_rep: str | Sequence[str] = ("X_pca",),
    perplexity: float = 30,
    lisi_neighbors: int | None = None,
    graph_neighbors: int = 15,
) -> pd.DataFrame:
    """All integration metrics of this module for one or more representations, to compare them.

    Parameters
    ----------
    data
        AnnData or MuData with the representations in ``.obsm`` and both columns in ``.obs``.
    batch_key, label_key
        Columns of ``.obs`` with the batches and the cell types (see :func:`batch_asw`).
    use_rep
        One ``.obsm`` key or several, e.g. ``["X_pca", "X_indiseek", "X_totalVI"]``. All are checked before any
        metric is computed.
    perplexity, lisi_neighbors
        ``perplexity`` and ``n_neighbors`` of :func:`ilisi`.
    graph_neighbors
        ``n_neighbors`` of :func:`graph_connectivity`.

    Returns
    -------
    One row per representation (index ``use_rep``, in the order given) with columns ``batch_asw``
    (:func:`batch_asw`), ``ilisi`` (mean per-cell iLISI, in [1, number of batches]), ``ilisi_scaled`` (scib's
    normalised median iLISI, in [0, 1]), ``graph_connectivity`` and ``cell_type_asw``. All but ``ilisi`` lie in
    [0, 1], higher being better: the first three score batch mixing, the last two the conservation of cell types.
    """
    check_data(data, "data")
    reps = [use_rep] if isinstance(use_rep, str) else list(use_rep) if isinstance(use_rep, Sequence) else None
    if not reps:
        raise TypeError(f"use_rep must be an .obsm key or a non-empty list of them, got {use_rep!r}.")
    for rep in reps:
        check_str(rep, "use_rep")
    if len(set(reps)) < len(reps):
        raise ValueError(f"use_rep lists a key more than once: {reps}.")
    perplexity, lisi_neighbors = _check_lisi_neighbors(perplexity, lisi_neighbors)
    graph_neighbors = check_int(graph_neighbors, "graph_neighbors", 2)
    key = obs_key(data, label_key, "label_key")
    batch = _codes(labels(data, obs_key(data, batch_key, "batch_key"), "batch_key"))[0]
    label = _codes(labels(data, key, "label_key"))[0]
    _check_cell_types(label, key)
    xs = {rep: _rep(data, rep) for rep in reps}
    _check_n_neighbors(graph_neighbors, data.n_obs, "graph_neighbors", "")
    _check_n_neighbors(lisi_neighbors, int((batch >= 0).sum()), "lisi_neighbors", "Pass a smaller perplexity.")
    rows = {}
    for rep, x in xs.items():
        lisi = _ilisi(x, batch, lisi_neighbors, perplexity)
        rows[rep] = {
            "batch_asw": _batch_asw(x, batch, label),
            "ilisi": lisi["ilisi"],
            "ilisi_scaled": lisi["ilisi_scaled"],
            "graph_connectivity": _graph_connectivity(_knn_graph(x, graph_neighbors), label),
            "cell_type_asw": _cell_type_asw(x, label),
        }
        logger.info("Integration metrics of .obsm[%r]: %s", rep, rows[rep])
    table = pd.DataFrame.from_dict(rows, orient="index", columns=list(METRIC_COLUMNS))
    table.index.name = "use_rep"
    return table
