"""Each cell's nearest other cells: exact (scikit-learn) up to a size, approximate (pynndescent) above it."""

from __future__ import annotations

import logging
import warnings

import numpy as np
from sklearn.neighbors import NearestNeighbors

from indiseek._threads import keep_torch_threads

from ._checks import check_choice, check_int

logger = logging.getLogger(__name__)

#: ``neighbors`` choices of :func:`~indiseek.tl.theta_scores` and :func:`~indiseek.tl.wnn_weights`.
NEIGHBOR_METHODS = ("auto", "exact", "pynndescent")
#: ``neighbors="auto"`` searches exactly up to this many cells and with pynndescent above. Below it an exact search
#: takes seconds, so pynndescent would save little and give up exactness (and its numba compilation, once per
#: process, costs more than it saves); above it the exact search's quadratic time takes over. The crossover is
#: measured by ``benchmarks/bench_neighbors.py`` (documentation: results, "Neighbour search at scale").
EXACT_MAX_CELLS = 20_000
#: pynndescent builds a graph of at least this many neighbours (its own default) and returns the nearest of
#: them: a graph of only the ``n_neighbors`` asked for misses many more true neighbours.
_MIN_GRAPH_NEIGHBORS = 30


def neighbor_method(method: object, n_cells: int, name: str = "neighbors") -> str:
    """The search ``method`` resolves to for ``n_cells`` cells: ``"exact"`` or ``"pynndescent"``."""
    method = check_choice(method, name, NEIGHBOR_METHODS)
    if method == "auto":
        return "exact" if n_cells <= EXACT_MAX_CELLS else "pynndescent"
    return method


def knn_indices(
    x: np.ndarray,
    n_neighbors: int,
    method: str = "auto",
    random_state: int = 0,
    return_distance: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Indices of each row's ``n_neighbors`` nearest other rows (Euclidean), nearest first.

    A row's own index is left out, not every row at distance 0: a duplicated point keeps its copies as
    neighbours, as :meth:`sklearn.neighbors.NearestNeighbors.kneighbors` does when called without query points.

    Parameters
    ----------
    x
        Points, ``(n, d)``, finite.
    n_neighbors
        Neighbours per row, less than ``n``.
    method
        ``"exact"``: scikit-learn's search; ``"pynndescent"``: nearest-neighbour descent (:class:`pynndescent.NNDescent`
        on one thread, so that a seed gives the same neighbours on every machine); ``"auto"``: exact up to
        :data:`EXACT_MAX_CELLS` rows, pynndescent above.
    random_state
        Seed of pynndescent (unused by the exact search).
    return_distance
        Also return the distances, ``(n, n_neighbors)``, in float64 whichever the method.

    Returns
    -------
    Indices ``(n, n_neighbors)``, or ``(distances, indices)`` with ``return_distance``.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    n_neighbors = check_int(n_neighbors, "n_neighbors", 1, n - 1, f"It must be less than the number of points, {n}.")
    method = neighbor_method(method, n, "method")
    if method == "exact":
        return NearestNeighbors(n_neighbors=n_neighbors).fit(x).kneighbors(return_distance=return_distance)
    idx = _pynndescent_indices(x, n_neighbors, random_state)
    if not return_distance:
        return idx
    dist = _distances(x, idx)
    order = np.argsort(dist, axis=1, kind="stable")  # float64 distances may reorder float32 near-ties
    return np.take_along_axis(dist, order, axis=1), np.take_along_axis(idx, order, axis=1)


@keep_torch_threads
def _pynndescent_indices(x: np.ndarray, n_neighbors: int, random_state: int) -> np.ndarray:
    from pynndescent import NNDescent

    n = x.shape[0]
    graph_size = min(max(n_neighbors + 1, _MIN_GRAPH_NEIGHBORS), n)
    logger.info("pynndescent: %d-neighbour graph of %d points.", graph_size, n)
    with warnings.catch_warnings():  # rows it leaves short are searched exactly below
        warnings.filterwarnings("ignore", message="Failed to correctly find n_neighbors", category=UserWarning)
        idx = NNDescent(x, n_neighbors=graph_size, random_state=random_state, n_jobs=1).neighbor_graph[0]
    own = idx == np.arange(n)[:, None]
    # a row whose own index is missing (many duplicates, or a miss) drops its farthest candidate instead
    own[~own.any(axis=1), -1] = True
    idx = idx[~own].reshape(n, graph_size - 1)[:, :n_neighbors]
    failed = (idx < 0).any(axis=1)
    if failed.any():  # pynndescent marks neighbours it could not find with -1: search those rows exactly
        logger.info("pynndescent left %d rows short of neighbours; searching them exactly.", int(failed.sum()))
        rows = np.flatnonzero(failed)
        found = NearestNeighbors(n_neighbors=n_neighbors + 1).fit(x).kneighbors(x[rows], return_distance=False)
        own = found == rows[:, None]
        own[~own.any(axis=1), -1] = True
        idx[rows] = found[~own].reshape(len(rows), n_neighbors)
    return idx


def _distances(x: np.ndarray, idx: np.ndarray, block: int = 8192) -> np.ndarray:
    """Euclidean distance of each row to its listed neighbours, a block of rows at a time to bound memory."""
    dist = np.empty(idx.shape)
    for start in range(0, len(x), block):
        stop = start + block
        dist[start:stop] = np.linalg.norm(x[idx[start:stop]] - x[start:stop, None, :], axis=2)
    return dist
