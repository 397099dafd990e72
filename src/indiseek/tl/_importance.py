"""Feature importance of a map by masking one input coordinate at a time (the paper's simulations)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from ._checks import check_int, check_real

logger = logging.getLogger(__name__)


def _as_2d(y: object, n: int) -> np.ndarray:
    try:
        out = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`fn` must return numbers, got {type(y).__name__} of dtype {np.asarray(y).dtype}.") from None
    if out.ndim == 1:
        out = out[:, None]
    if out.ndim != 2 or out.shape[0] != n:
        raise ValueError(f"`fn` must return an array of shape (n, p) with n={n}, got shape {out.shape}.")
    return out


def masking_importance(
    fn: Callable[[np.ndarray], np.ndarray],
    d: int,
    n_points: int = 1000,
    low: float = -10.0,
    high: float = 10.0,
    seed: int = 0,
) -> np.ndarray:
    """Normalised importance of each input coordinate of a map, by setting the coordinate to zero.

    For a map ``psi = fn: R^d -> R^p`` and coordinate ``j``,
    ``zeta(j) = mean_x |psi(x) - psi(x_{-j})|^2`` over ``n_points`` points ``x ~ Uniform[low, high]^d``,
    where ``x_{-j}`` is ``x`` with coordinate ``j`` set to 0. The result is ``zeta / sum(zeta)``.

    Parameters
    ----------
    fn
        The map, e.g. a trained specific encoder ``h``: takes a float32 array of shape ``(n, d)`` and
        returns an array of shape ``(n, p)`` (a 1-d output is read as ``p = 1``).
    d
        Input dimension.
    n_points
        Number of random points ``M``.
    low, high
        Bounds of the uniform distribution of the points.
    seed
        Seed of the random generator.

    Returns
    -------
    Array of shape ``(d,)``, non-negative and summing to 1; all zeros (with a logged warning) when
    ``fn`` does not change under any masking.
    """
    if not callable(fn):
        raise TypeError(f"fn must be a callable mapping an (n, d) array to an (n, p) array, got {type(fn).__name__}.")
    d = check_int(d, "d", 1)
    n_points = check_int(n_points, "n_points", 1)
    low, high = check_real(low, "low"), check_real(high, "high")
    seed = check_int(seed, "seed", 0)
    if not low < high:
        raise ValueError(f"Need low < high, got low={low}, high={high}.")
    rng = np.random.default_rng(seed)
    x = rng.uniform(low, high, size=(n_points, d)).astype(np.float32)
    base = _as_2d(fn(x), n_points)
    zeta = np.empty(d)
    for j in range(d):
        masked = x.copy()
        masked[:, j] = 0.0
        zeta[j] = np.mean(np.sum((_as_2d(fn(masked), n_points) - base) ** 2, axis=1))
    total = zeta.sum()
    if not np.isfinite(total):
        raise ValueError("`fn` returned non-finite values; cannot compute the importance.")
    if total == 0:
        logger.warning("The map does not change when any coordinate is masked; returning zero importance.")
        return np.zeros(d)
    return zeta / total
