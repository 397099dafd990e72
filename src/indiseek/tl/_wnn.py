"""Per-cell modality weights of weighted nearest neighbours (Hao et al. 2021), the reference for theta."""

from __future__ import annotations

import logging
from typing import Literal

import muon
import numpy as np
import pandas as pd
import scanpy as sc
from anndata import AnnData
from mudata import MuData
from scipy import sparse
from scipy.special import softmax

from indiseek._docs import dsp
from indiseek._keys import WNN_KEY, wnn_keys
from indiseek._threads import keep_torch_threads
from indiseek.pp import clr, standard_rna_pcs

from ._checks import check_choice, check_data, check_int, check_str, matrix
from ._neighbors import NEIGHBOR_METHODS, knn_indices, neighbor_method

logger = logging.getLogger(__name__)


def _counts(adata: AnnData) -> np.ndarray | sparse.csr_matrix:
    """A float32 copy of the counts, so the user's ``.X`` is never touched."""
    x = adata.X
    return sparse.csr_matrix(x, dtype=np.float32) if sparse.issparse(x) else np.array(x, dtype=np.float32)


def _protein_pca(prot: AnnData, n_pcs: int | None, random_state: int) -> np.ndarray:
    """Seurat's standard protein input: centred log ratio per cell, scale, PCA on at most n_proteins - 1 axes."""
    x = _counts(prot)
    x = x.toarray() if sparse.issparse(x) else x
    tmp = AnnData(clr(x), obs=pd.DataFrame(index=prot.obs_names), var=pd.DataFrame(index=prot.var_names))
    sc.pp.scale(tmp)
    max_comps = min(tmp.n_vars - 1, tmp.n_obs - 1)
    sc.pp.pca(tmp, n_comps=max_comps if n_pcs is None else min(n_pcs, max_comps), random_state=random_state)
    return tmp.obsm["X_pca"]


def _given_rep(mdata: MuData, mod: str, key: object, name: str, cells: pd.Index) -> np.ndarray:
    """A precomputed representation from the modality's ``.obsm`` or, failing that, from ``mdata.obsm``."""
    key = check_str(key, name)
    for data in (mdata[mod], mdata):
        if key in data.obsm:
            return pd.DataFrame(matrix(data, key, name), index=data.obs_names).loc[cells].to_numpy()
    raise KeyError(
        f"{name} {key!r} is in neither mdata[{mod!r}].obsm (keys: {list(mdata[mod].obsm.keys())}) "
        f"nor mdata.obsm (keys: {list(mdata.obsm.keys())})."
    )


def _knn(
    x: np.ndarray, n_neighbors: int, method: str = "exact", random_state: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Distances and indices of each cell's ``n_neighbors - 1`` nearest other cells (scanpy counts the cell itself)."""
    return knn_indices(x, n_neighbors - 1, method, random_state, return_distance=True)


def _bandwidths(x: np.ndarray, idx: np.ndarray, n_bandwidth_neighbors: int, block: int = 256) -> np.ndarray:
    """Kernel widths as in muon: mean distance to the cells whose neighbour sets overlap the cell's least.

    Among the cells sharing at least one neighbour with the cell, those of lowest Jaccard similarity are taken,
    ties going to the farthest; cells sharing none fill up a short list, nearest first. As in muon, whose
    neighbour search returns each cell as its own first neighbour, the cell itself counts as one of the
    ``n_bandwidth_neighbors`` cells, at distance 0.

    Computed ``block`` cells at a time (the overlaps of a block with every cell), so that memory and time stay
    linear in cells.
    """
    n, k = idx.shape
    m = n_bandwidth_neighbors - 1
    graph = sparse.csr_matrix((np.ones(n * k), idx.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n))
    graph_t = graph.T.tocsr()
    sums, counts = np.zeros(n), np.zeros(n, dtype=np.int64)
    for start in range(0, n, block):
        shared = (graph[start : start + block] @ graph_t).tocoo()
        keep = shared.col != shared.row + start
        rows, cols, n_shared = shared.row[keep], shared.col[keep], shared.data[keep].astype(np.int64)
        diff = x[cols] - x[rows + start]
        dist = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        # one sort key: row, then fewest shared neighbours (lowest Jaccard similarity), then farthest first
        scale = dist.max(initial=0.0) * 2 + 1.0
        order = np.argsort((rows * (k + 1) + n_shared) - dist / scale, kind="stable")
        rows, dist = rows[order], dist[order]
        chosen = np.arange(len(rows)) - np.searchsorted(rows, rows) < m  # the first m entries of each row
        sums[start : start + block] = np.bincount(rows[chosen], dist[chosen], minlength=min(block, n - start))
        counts[start : start + block] = np.bincount(rows[chosen], minlength=min(block, n - start))
    for i in np.flatnonzero(counts < m):  # few cells share neighbours with this one: nearest others fill up
        sharing = graph_t[graph[i].indices].indices
        rest = np.setdiff1d(np.arange(n), np.append(sharing, i))
        sums[i] += np.sort(np.linalg.norm(x[rest] - x[i], axis=1))[: m - counts[i]].sum()
    return sums / n_bandwidth_neighbors


def _exact_weights(
    reps: list[np.ndarray],
    n_neighbors: int,
    n_bandwidth_neighbors: int,
    method: str = "exact",
    random_state: int = 0,
    eps: float = 1e-4,
) -> np.ndarray:
    """Modality weights (cells x modalities) by the formulas of :func:`muon.pp.neighbors`.

    Each modality's neighbours come from one search (``method``, see :func:`knn_indices`); the bandwidth
    neighbours are then found exactly among the cells sharing a neighbour with the cell, in time linear in cells.

    A modality's affinity for a cell compares the cell with the mean of its neighbours' representations,
    exp(-max(|x - mean|  - d_nearest, 0) / (sigma - d_nearest)), once with its own neighbours and once with
    the other modality's; the ratio of the two, softmaxed across modalities, is the weight.
    """
    knn = [_knn(x, n_neighbors, method, random_state) for x in reps]
    ratios = np.empty((reps[0].shape[0], len(reps)))
    for m, x in enumerate(reps):
        nearest = knn[m][0][:, 0]
        width = np.maximum(_bandwidths(x, knn[m][1], n_bandwidth_neighbors) - nearest, np.finfo(float).tiny)
        affinity = []
        for _, idx in knn:
            predicted = _neighbour_means(x, idx)
            affinity.append(np.exp(-np.maximum(np.linalg.norm(x - predicted, axis=1) - nearest, 0) / width))
        others = np.max([a for j, a in enumerate(affinity) if j != m], axis=0)
        ratios[:, m] = affinity[m] / (others + eps)
    return softmax(ratios, axis=1)


def _neighbour_means(x: np.ndarray, idx: np.ndarray, block: int = 8192) -> np.ndarray:
    """Mean of each cell's neighbours' rows, a block of cells at a time (``x[idx]`` whole is cells x k x d)."""
    return np.concatenate([x[idx[i : i + block]].mean(axis=1) for i in range(0, len(idx), block)])


def _modality_graph(tmp: AnnData, n_neighbors: int, method: str, random_state: int) -> None:
    """The neighbour graph muon starts from: ``.obsp["distances"]``, each cell's nearest other cells.

    muon's Jaccard overlap of neighbour sets walks the rows as sorted lists, so the rows are sorted by cell index
    (scanpy orders them by distance).

    Exact: :func:`scanpy.pp.neighbors` with scikit-learn, which leaves the cell itself out. pynndescent: the same
    structure written directly (scanpy keeps a transformer's own graph, the cell itself at distance 0 included,
    which would make muon's distance to the nearest neighbour 0), with the entries muon reads in ``.uns``.
    """
    if method == "exact":
        sc.pp.neighbors(tmp, use_rep="X_rep", n_neighbors=n_neighbors, transformer="sklearn", random_state=random_state)
        tmp.obsp["distances"].sort_indices()
        return
    x = tmp.obsm["X_rep"]
    dist, idx = knn_indices(x, n_neighbors - 1, method, random_state, return_distance=True)
    k = n_neighbors - 1
    graph = sparse.csr_matrix((dist.ravel(), idx.ravel(), np.arange(0, len(x) * k + 1, k)), shape=(len(x), len(x)))
    graph.sort_indices()
    tmp.obsp["distances"] = graph
    tmp.uns["neighbors"] = {
        "params": {"n_neighbors": n_neighbors, "use_rep": "X_rep", "metric": "euclidean", "random_state": random_state},
        "distances_key": "distances",
    }


def _muon_weights(
    reps: list[np.ndarray], cells: pd.Index, n_neighbors: int, random_state: int, method: str = "exact"
) -> np.ndarray:
    """Modality weights (cells x modalities) from :func:`muon.pp.neighbors` on a temporary MuData."""
    mods = {}
    for name, x in zip(("rna", "prot"), reps, strict=True):
        tmp = AnnData(obs=pd.DataFrame(index=cells), obsm={"X_rep": x.astype(np.float32)})
        _modality_graph(tmp, n_neighbors, method, random_state)
        mods[name] = tmp
    joint = MuData(mods)
    muon.pp.neighbors(
        joint,
        n_bandwidth_neighbors=min(20, len(cells) - 2),
        n_multineighbors=min(200, len(cells) - 2),
        random_state=random_state,
    )
    return np.column_stack([joint.obs["rna:mod_weight"].to_numpy(), joint.obs["prot:mod_weight"].to_numpy()])


@keep_torch_threads
@dsp.dedent
def wnn_weights(
    mdata: MuData,
    rna_rep: str | None = None,
    protein_rep: str | None = None,
    n_neighbors: int = 20,
    n_pcs_rna: int = 30,
    n_pcs_protein: int | None = None,
    n_top_genes: int = 2000,
    rna_mod: str = "rna",
    protein_mod: str = "prot",
    key_added: str = WNN_KEY,
    backend: Literal["exact", "muon"] = "muon",
    random_state: int = 0,
    neighbors: Literal["auto", "exact", "pynndescent"] = "auto",
) -> None:
    """Per-cell RNA and protein weights of weighted nearest neighbours (WNN; Hao et al. 2021).

    The weights are those of :func:`muon.pp.neighbors` (by default computed by it; ``backend="exact"`` uses its
    formulas with exact neighbour searches), computed from Seurat's standard inputs on copies of the counts (the
    modalities' ``.X`` are never changed):

    - RNA: normalised to 10,000 counts per cell, log1p, ``n_top_genes`` highly variable genes, scaled, PCA;
    - protein: centred log ratio per cell (:func:`muon.prot.pp.clr`), scaled, PCA with at most
      n_proteins - 1 components (the CLR removes one dimension).

    Each modality gets its own ``n_neighbors`` graph (:func:`scanpy.pp.neighbors`) before the weights are
    computed. For a cell, a higher RNA weight means its RNA neighbours predict its profile better. Nothing is
    written to ``mdata`` unless the whole computation succeeds.

    Parameters
    ----------
    mdata
        MuData with raw counts in ``mdata[rna_mod].X`` and ``mdata[protein_mod].X``.
    rna_rep, protein_rep
        Keys of precomputed representations (in the modality's ``.obsm``, else in ``mdata.obsm``) to use
        instead of the standard inputs above.
    n_neighbors
        Neighbours per modality, the cell itself included (Seurat's default is 20); at least 2 and at most the
        number of cells in both modalities minus 2.
    n_pcs_rna
        Principal components of the RNA input.
    n_pcs_protein
        Principal components of the protein input; `None`: n_proteins - 1.
    n_top_genes
        Number of highly variable genes.
    rna_mod, protein_mod
        Names of the modalities.
    key_added
        Prefix of the results: ``.obs[f"{key_added}_rna_weight"]`` and ``.obs[f"{key_added}_protein_weight"]``
        (defaults ``"wnn_rna_weight"``, ``"wnn_protein_weight"``; they sum to 1 per cell; NaN for cells
        missing from a modality); the parameters go to ``.uns[key_added]["params"]``.
    backend
        ``"muon"`` (default): :func:`muon.pp.neighbors` itself (approximate bandwidth neighbours; it compiles a
        numba kernel on each call, which costs tens of seconds even for a few hundred cells, and searches 200
        candidate neighbours per cell and modality for its joint graph, which dominates its time at scale).
        ``"exact"``: muon's formulas computed here, with per-modality neighbours found as ``neighbors`` says and
        exact bandwidth neighbours among the cells sharing a neighbour, much faster; with exact neighbour
        searches it agrees with muon (the results page: "Neighbour search at scale").
    random_state
        Seed of the PCA and of the neighbour searches.
    %(param_neighbors)s
        Here it chooses each modality's ``n_neighbors`` search (for ``backend="muon"``, the graphs muon starts
        from; muon's own bandwidth and candidate searches are always its approximate ones).
    """
    check_data(mdata, mudata_only=True)
    backend = check_choice(backend, "backend", ("exact", "muon"))
    neighbors = check_choice(neighbors, "neighbors", NEIGHBOR_METHODS)
    key_added = check_str(key_added, "key_added")
    n_pcs_rna = check_int(n_pcs_rna, "n_pcs_rna", 1)
    if n_pcs_protein is not None:
        n_pcs_protein = check_int(n_pcs_protein, "n_pcs_protein", 1)
    n_top_genes = check_int(n_top_genes, "n_top_genes", 1)
    random_state = check_int(random_state, "random_state", 0)
    for name, mod in (("rna_mod", rna_mod), ("protein_mod", protein_mod)):
        if check_str(mod, name) not in mdata.mod:
            raise KeyError(f"{name}: modality {mod!r} not found (modalities: {list(mdata.mod)}).")
    rna, prot = mdata[rna_mod], mdata[protein_mod]
    cells = mdata.obs_names[mdata.obs_names.isin(rna.obs_names) & mdata.obs_names.isin(prot.obs_names)]
    n_neighbors = check_int(
        n_neighbors,
        "n_neighbors",
        2,
        len(cells) - 2,
        f"{len(cells)} cells are in both modalities; n_neighbors counts the cell itself and must leave two cells out.",
    )

    # the given representations are read first: a wrong key fails before the PCA
    x_rna = None if rna_rep is None else _given_rep(mdata, rna_mod, rna_rep, "rna_rep", cells)
    x_protein = None if protein_rep is None else _given_rep(mdata, protein_mod, protein_rep, "protein_rep", cells)
    if x_rna is None:
        x_rna = standard_rna_pcs(rna[cells], n_top_genes, n_pcs_rna, random_state)
    if x_protein is None:
        x_protein = _protein_pca(prot[cells], n_pcs_protein, random_state)

    search = neighbor_method(neighbors, len(cells))
    logger.info("Computing WNN modality weights of %d cells (%s backend, %s neighbours).", len(cells), backend, search)
    reps = [np.asarray(x_rna, dtype=np.float64), np.asarray(x_protein, dtype=np.float64)]
    if backend == "exact":
        w = _exact_weights(reps, n_neighbors, min(20, len(cells) - 2), search, random_state)
    else:
        w = _muon_weights(reps, cells, n_neighbors, random_state, search)
    weights = pd.DataFrame(w, index=cells, columns=["rna", "prot"]).reindex(mdata.obs_names)

    rna_key, protein_key = wnn_keys(key_added)
    mdata.obs[rna_key] = weights["rna"].to_numpy()
    mdata.obs[protein_key] = weights["prot"].to_numpy()
    params = {
        "rna_rep": rna_rep,
        "protein_rep": protein_rep,
        "n_neighbors": n_neighbors,
        "n_pcs_rna": n_pcs_rna,
        "n_pcs_protein": n_pcs_protein,
        "n_top_genes": n_top_genes,
        "rna_mod": rna_mod,
        "protein_mod": protein_mod,
        "backend": backend,
        "neighbors": search,
        "random_state": random_state,
    }
    # None cannot be written to .h5mu
    mdata.uns[key_added] = {"params": {k: v for k, v in params.items() if v is not None}}
