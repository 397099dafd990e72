"""The paper's four simulation settings: one modality X (n x 6) with oracle shared features C (n x 2)."""

from __future__ import annotations

import numpy as np

#: Allowed setting numbers.
SETTINGS = (1, 2, 3, 4)

#: 0-based indices of the coordinates an ideal specific representation depends on, per setting.
IDEAL_COORDINATES: dict[int, tuple[int, ...]] = {1: (2, 3, 4, 5), 2: (4, 5), 3: (2, 3, 4, 5), 4: (4, 5)}

#: Support of the discrete modality-specific coordinates of Settings 3 and 4 (mean 0, variance 1).
DISCRETE_VALUES = np.array([-np.sqrt(7) / 2, -1.0, -0.5, 0.5, 1.0, np.sqrt(7) / 2])


def _check(setting: int) -> int:
    if setting not in SETTINGS:
        raise ValueError(f"Unknown setting {setting!r}; allowed values are {', '.join(map(str, SETTINGS))}.")
    return int(setting)


def ideal_coordinates(setting: int) -> tuple[int, ...]:
    """0-based indices of the coordinates of X an ideal specific representation depends on.

    Parameters
    ----------
    setting
        Simulation setting, 1 to 4.

    Returns
    -------
    ``(2, 3, 4, 5)`` (x3..x6) for Settings 1 and 3, ``(4, 5)`` (x5, x6) for Settings 2 and 4.
    """
    return IDEAL_COORDINATES[_check(setting)]


def simulate_setting(setting: int, n: int = 10000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Draw one data set of a simulation setting of the paper.

    - Setting 1: ``X ~ N(0, I_6)``; ``C = 0.5 Ax + 0.2 sin(Ax) + 0.2 (Ax)^3`` (entrywise) with
      ``A = (I_2, 0)``, i.e. ``Ax = (x1, x2)``. Ideal specific features depend on x3..x6 only.
    - Setting 2: x1, x2, x5, x6 iid ``N(0, 1)``; ``x3 = 0.2 (x1 + x2)``; ``x4 = x1 x2``;
      ``C = (x1, x2)``. Ideal specific features depend on x5, x6 only.
    - Settings 3 and 4: as 1 and 2, but the modality-specific coordinates (x3..x6, respectively
      x5, x6) are iid uniform on ``{-sqrt(7)/2, -1, -1/2, 1/2, 1, sqrt(7)/2}``.

    Parameters
    ----------
    setting
        Simulation setting, 1 to 4.
    n
        Number of samples.
    seed
        Seed of the random generator.

    Returns
    -------
    ``(X, C)``: the modality, float32 of shape ``(n, 6)``, and its oracle shared features, float32 of
    shape ``(n, 2)``.
    """
    setting = _check(setting)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 6)).astype(np.float32)
    if setting in (1, 3):
        if setting == 3:
            x[:, 2:] = rng.choice(DISCRETE_VALUES, size=(n, 4))
    else:
        if setting == 4:
            x[:, 4:] = rng.choice(DISCRETE_VALUES, size=(n, 2))
        x[:, 2] = 0.2 * (x[:, 0] + x[:, 1])
        x[:, 3] = x[:, 0] * x[:, 1]
    return x, oracle_shared(setting, x)


def oracle_shared(setting: int, X: np.ndarray) -> np.ndarray:
    """The oracle shared features ``C`` of a setting as a function of ``X``, at any points (also off the data).

    Parameters
    ----------
    setting
        Simulation setting, 1 to 4.
    X
        Points, shape ``(n, 6)``.

    Returns
    -------
    float32 array of shape ``(n, 2)``: ``0.5 Ax + 0.2 sin(Ax) + 0.2 (Ax)^3`` with ``Ax = (x1, x2)`` in Settings 1
    and 3, ``(x1, x2)`` in Settings 2 and 4.
    """
    setting = _check(setting)
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != 6:
        raise ValueError(f"Expected points of shape (n, 6), got {X.shape}.")
    ax = X[:, :2].astype(np.float32)
    if setting in (1, 3):
        return 0.5 * ax + 0.2 * np.sin(ax) + 0.2 * ax**3
    return ax.copy()
