"""Label-free diagnostics on held-out cells: is Z_i independent of C_{3-i}, and does (Z_i, C_i) keep X_i?"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Literal

import numpy as np
from anndata import AnnData
from mudata import MuData
from scipy.spatial.distance import pdist, squareform
from sklearn.linear_model import RidgeCV
from sklearn.neighbors import KNeighborsRegressor

from indiseek._keys import DIAGNOSTICS_KEY, MODALITIES, embedding_key

from ._checks import check_choice, check_data, check_int, check_real, check_str, matrix

#: Fraction of cells held out for the R^2 scores.
TEST_SIZE = 0.2
#: Neighbours of the kNN regressions.
N_NEIGHBORS = 15
#: Most cells the kernel dependence statistic looks at (its cost grows as the square of this).
MAX_CELLS = 1000
#: Permutations of the dependence test.
N_PERMUTATIONS = 200
#: Ridge penalties searched by leave-one-out on the training cells when ``regressor="ridge"``.
RIDGE_ALPHAS = np.logspace(-3, 3, 13)

logger = logging.getLogger(__name__)

Representation = str | np.ndarray
Regressor = Literal["knn", "ridge"]
Statistic = Literal["hsic", "dcor"]


# ---------------------------------------------------------------------------------------------------- inputs
def _check_settings(test_size: object, n_neighbors: object, seed: object) -> tuple[float, int, int]:
    """The split and kNN settings shared by the diagnostics, checked before any work."""
    test_size = check_real(test_size, "test_size")
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be between 0 and 1 (a fraction of the cells), got {test_size}.")
    return test_size, check_int(n_neighbors, "n_neighbors", 1), check_int(seed, "seed", 0)


def _warn_if_constant(target: np.ndarray, test: np.ndarray, name: str, rep: Representation) -> None:
    """Warn that R^2 is undefined when the held-out cells' target does not vary (SST = 0)."""
    if np.ptp(target[test], axis=0).max() == 0:
        label = f".obsm[{rep!r}]" if isinstance(rep, str) else "the array"
        warnings.warn(
            f"R^2 is undefined (NaN): {label} ({name}, the target of the regression) is the same in every held-out "
            "cell, so there is no variance to explain. "
            "Check that it holds the features you meant, or change the split (seed, test_size).",
            UserWarning,
            stacklevel=3,
        )


def _check_rows(**arrays: np.ndarray) -> int:
    rows = {name: x.shape[0] for name, x in arrays.items()}
    if len(set(rows.values())) != 1:
        raise ValueError(f"The representations must have one row per cell, in the same order; got rows {rows}.")
    return next(iter(rows.values()))


def _split(n: int, test_size: float, n_neighbors: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random train/test indices; the test set has ``round(test_size * n)`` cells (at least 2)."""
    n_test = max(2, int(round(test_size * n)))
    if n - n_test <= n_neighbors:
        raise ValueError(
            f"{n - n_test} training cells for n_neighbors={n_neighbors}: use more cells, a smaller test_size "
            "or fewer neighbours."
        )
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def _standardize(x: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """Centre and scale each column by the mean and standard deviation of the rows ``fit``; constant columns -> 0."""
    mean, std = x[fit].mean(axis=0), x[fit].std(axis=0)
    return (x - mean) / np.where(std > 0, std, 1.0)


# ---------------------------------------------------------------------------------------------------- R^2
def pooled_r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """R^2 pooled over all columns, 1 - SSE/SST, with SST about each column's mean over the rows given.

    Equal to ``sklearn.metrics.r2_score(..., multioutput="variance_weighted")``: the fraction of the targets'
    total variance that is explained. 0 for predicting the mean; negative when worse.
    """
    sse = float(((y_true - y_pred) ** 2).sum())
    sst = float(((y_true - y_true.mean(axis=0)) ** 2).sum())
    return 1.0 - sse / sst if sst > 0 else float("nan")


def _heldout_r2(
    features: np.ndarray, target: np.ndarray, train: np.ndarray, test: np.ndarray, regressor: str, n_neighbors: int
) -> float:
    x = _standardize(features, train)
    if regressor == "knn":
        model = KNeighborsRegressor(n_neighbors=n_neighbors)
    elif regressor == "ridge":
        model = RidgeCV(alphas=RIDGE_ALPHAS)
    else:
        raise ValueError(f"Unknown regressor {regressor!r}: use 'knn' or 'ridge'.")
    model.fit(x[train], target[train])
    return pooled_r2(target[test], np.asarray(model.predict(x[test])).reshape(len(test), -1))


# ---------------------------------------------------------------------------------------------------- dependence
def _centred_gram(x: np.ndarray, statistic: str) -> np.ndarray:
    """Double-centred m x m matrix: Gaussian kernel (median-heuristic bandwidth) for HSIC, distances for dCor."""
    d = pdist(x)
    if statistic == "hsic":
        # median heuristic; with over half the pairs tied at 0, the mean positive distance (any value if none)
        positive = d[d > 0]
        sigma = np.median(d) if np.median(d) > 0 else positive.mean() if positive.size else 1.0
        g = squareform(np.exp(-(d**2) / (2 * sigma**2)))
        np.fill_diagonal(g, 1.0)
    elif statistic == "dcor":
        g = squareform(d)
    else:
        raise ValueError(f"Unknown statistic {statistic!r}: use 'hsic' or 'dcor'.")
    return g - g.mean(axis=0) - g.mean(axis=1)[:, None] + g.mean()


def _dependence(
    z: np.ndarray, c: np.ndarray, statistic: str, n_permutations: int, rng: np.random.Generator
) -> tuple[float, float, float]:
    """(statistic, normalised statistic, permutation p-value) of Z against C, each column standardised first."""
    all_rows = np.arange(len(z))
    k, l_ = _centred_gram(_standardize(z, all_rows), statistic), _centred_gram(_standardize(c, all_rows), statistic)
    m = len(z)
    cross, kk, ll = (k * l_).sum() / m**2, (k * k).sum() / m**2, (l_ * l_).sum() / m**2
    scale = np.sqrt(kk * ll)
    normalised = cross / scale if scale > 0 else 0.0
    if statistic == "hsic":
        value = cross
    else:  # distance correlation: dCor^2 = dCov^2 / sqrt(dVar^2(Z) dVar^2(C))
        value = normalised = float(np.sqrt(max(normalised, 0.0)))
    if n_permutations == 0:
        return float(value), float(normalised), float("nan")
    # sum(K o L_perm) / m^2 is the statistic with the cells of C shuffled; the denominators do not change
    tol = 1e-10 * scale
    exceed = 0
    for _ in range(n_permutations):
        p = rng.permutation(m)
        exceed += (k * l_[np.ix_(p, p)]).sum() / m**2 >= cross - tol
    return float(value), float(normalised), float((1 + exceed) / (1 + n_permutations))


# ---------------------------------------------------------------------------------------------------- public
def independence(
    data: MuData | AnnData,
    specific_key: Representation,
    shared_key: Representation,
    *,
    test_size: float = TEST_SIZE,
    n_neighbors: int = N_NEIGHBORS,
    statistic: Statistic = "hsic",
    n_permutations: int = N_PERMUTATIONS,
    max_cells: int = MAX_CELLS,
    seed: int = 0,
) -> dict[str, float | int]:
    """How much of the other modality's shared features C_{3-i} the specific features Z_i still tell.

    Two views of the dependence between Z_i and C_{3-i}, neither needing labels:

    - **R^2 on held-out cells.** The cells are split at random (``test_size`` of them held out, by ``seed``);
      each column of Z_i is standardised with the training cells' mean and standard deviation; C_{3-i} of a
      held-out cell is predicted as the mean over its ``n_neighbors`` nearest training cells in Z_i (Euclidean);
      R^2 = 1 - SSE/SST pooled over all columns of C_{3-i} (SST about the held-out mean).
      Near 0 (about -1/k when Z_i knows nothing: the mean of k random neighbours is noisier than the mean) means
      C_{3-i} cannot be told from Z_i; near 1, Z_i determines it. With more cells the regression finds more of a
      given dependence, so compare R^2 between data sets on the same number of cells. ``"r2_linear"`` is the same
      with a ridge regression in place of the neighbours (penalty chosen by leave-one-out on the training cells).
      Distances in Z_i are dominated by its directions of largest variance, so the kNN regression misses C_{3-i}
      carried by a direction of little variance; a linear map finds it at any scale. On few cells a linear map can
      also extrapolate far off on held-out cells and read well below 0: no linear leak found.
    - **Kernel dependence test.** On a random subsample of at most ``max_cells`` cells (all cells, training or not,
      as nothing is fitted), each column standardised: with ``statistic="hsic"`` the Hilbert-Schmidt independence
      criterion HSIC = tr(K H L H) / m^2 with Gaussian kernels
      ``K_ab = exp(-||z_a - z_b||^2 / (2 s^2))``, s the median
      pairwise distance (likewise L on C); ``"dcor"``, the distance correlation of Szekely et al. (2007) (V-statistic).
      The p-value is (1 + #{permutations with a statistic >= the observed}) / (1 + n_permutations), shuffling the
      cells of C against Z. It sees dependence that R^2 can miss, e.g. Z = C^2 (the sign of C is lost).

    Parameters
    ----------
    data
        Data with the features in ``.obsm``.
    specific_key
        ``.obsm`` key of Z_i (cells x p_i), e.g. ``"X_indiseek_specific_rna"``; or the array itself.
    shared_key
        ``.obsm`` key of C_{3-i} (cells x d_c), e.g. ``"X_indiseek_shared_protein"``; or the array itself.
    test_size
        Fraction of cells held out for the R^2.
    n_neighbors
        Neighbours of the kNN regression.
    statistic
        ``"hsic"`` or ``"dcor"``.
    n_permutations
        Permutations of the test (0: no p-value, NaN). The smallest p-value it can give is 1 / (1 + n_permutations).
    max_cells
        Most cells in the dependence test; its time and memory grow as ``max_cells**2``.
    seed
        Seed of the split, the subsample and the permutations.

    Returns
    -------
    ``{"r2": float, "r2_linear": float, "hsic" or "dcor": float, "p_value": float, "n_test": int,
    "n_dependence": int}``, with
    ``"hsic_normalized"`` for HSIC: HSIC(Z, C) / sqrt(HSIC(Z, Z) HSIC(C, C)) in [0, 1] (centred kernel alignment),
    readable across data sets where raw HSIC is not (dCor is already on that scale). Both are biased upwards
    (V-statistics): they stay above 0 for independent features, the more so with many dimensions and few cells, so
    read them with the p-value.
    """
    check_data(data, "data")
    test_size, n_neighbors, seed = _check_settings(test_size, n_neighbors, seed)
    statistic = check_choice(statistic, "statistic", ("hsic", "dcor"))
    n_permutations = check_int(n_permutations, "n_permutations", 0)
    max_cells = check_int(max_cells, "max_cells", 2)
    hint = "Write the model's features first, e.g. `model.write_embeddings()`."
    z = matrix(data, specific_key, "specific_key", hint, arrays=True)
    c = matrix(data, shared_key, "shared_key", hint, arrays=True)
    n = _check_rows(specific_key=z, shared_key=c)
    train, test = _split(n, test_size, n_neighbors, seed)
    _warn_if_constant(c, test, "shared_key", shared_key)
    r2 = _heldout_r2(z, c, train, test, "knn", n_neighbors)
    r2_linear = _heldout_r2(z, c, train, test, "ridge", n_neighbors)
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    sub = np.sort(rng.choice(n, size=min(n, max_cells), replace=False))
    value, normalised, p_value = _dependence(z[sub], c[sub], statistic, n_permutations, rng)
    normalised_entry = {"hsic_normalized": normalised} if statistic == "hsic" else {}
    return {
        "r2": r2,
        "r2_linear": r2_linear,
        statistic: value,
        **normalised_entry,
        "p_value": p_value,
        "n_test": len(test),
        "n_dependence": len(sub),
    }


def completeness(
    data: MuData | AnnData,
    input_key: Representation,
    specific_key: Representation,
    shared_key: Representation,
    *,
    regressor: Regressor = "knn",
    test_size: float = TEST_SIZE,
    n_neighbors: int = N_NEIGHBORS,
    seed: int = 0,
) -> dict[str, float | int]:
    """How much of the prepared inputs X_i the features keep: R^2 of X_i from (Z_i, C_i), C_i alone and Z_i alone.

    The cells are split at random (``test_size`` held out, by ``seed``, the same split as :func:`independence`
    with the same arguments); each feature column is standardised with the training cells' mean and standard
    deviation; the regressor is fitted on the training cells and scored on the held-out ones by R^2 = 1 - SSE/SST
    pooled over all columns of X_i (the fraction of X_i's total variance explained, so with RNA
    principal components the leading components weigh most).

    Regressors:

    - ``"knn"`` (default): mean of the ``n_neighbors`` nearest training cells (Euclidean, standardised features).
      Nonparametric, so it credits information a nonlinear decoder g_i(Z_i, C_i) can use (e.g. a product of two
      features), and it is the estimator of :func:`independence`'s R^2, so the two read on one scale. Every
      standardised column weighs the same in the distance: columns of Z_i that carry only noise lower the R^2 from
      (Z_i, C_i) below that from C_i alone, which is worth knowing about the features too.
    - ``"ridge"``: linear ridge regression, penalty chosen among ``RIDGE_ALPHAS`` by leave-one-out on the training
      cells. A lower bound that sees only linear information, steadier than kNN with many features.

    Parameters
    ----------
    data
        Data with the inputs and features in ``.obsm``.
    input_key
        ``.obsm`` key of the prepared inputs X_i (cells x d_i), e.g. RNA principal components or protein CLR; or
        the array itself.
    specific_key
        ``.obsm`` key of Z_i (cells x p_i), or the array.
    shared_key
        ``.obsm`` key of C_i (cells x d_c), the same modality's shared features, or the array.
    regressor
        ``"knn"`` or ``"ridge"``.
    test_size
        Fraction of cells held out.
    n_neighbors
        Neighbours of the kNN regression.
    seed
        Seed of the split.

    Returns
    -------
    ``{"r2_joint": float, "r2_shared": float, "r2_specific": float, "n_test": int}``: R^2 of X_i from (Z_i, C_i),
    from C_i alone and from Z_i alone.
    """
    check_data(data, "data")
    regressor = check_choice(regressor, "regressor", ("knn", "ridge"))
    test_size, n_neighbors, seed = _check_settings(test_size, n_neighbors, seed)
    x = matrix(
        data,
        input_key,
        "input_key",
        "Write the prepared inputs (e.g. RNA PCs, protein CLR) into .obsm first.",
        arrays=True,
    )
    hint = "Write the model's features first, e.g. `model.write_embeddings()`."
    z = matrix(data, specific_key, "specific_key", hint, arrays=True)
    c = matrix(data, shared_key, "shared_key", hint, arrays=True)
    n = _check_rows(input_key=x, specific_key=z, shared_key=c)
    train, test = _split(n, test_size, n_neighbors, seed)
    _warn_if_constant(x, test, "input_key", input_key)
    features = {"joint": np.concatenate([z, c], axis=1), "shared": c, "specific": z}
    result: dict[str, float | int] = {
        f"r2_{name}": _heldout_r2(f, x, train, test, regressor, n_neighbors) for name, f in features.items()
    }
    return {**result, "n_test": len(test)}


def diagnostics(
    mdata: MuData | AnnData,
    method: str = "indiseek",
    input_keys: Mapping[str, Representation] | None = None,
    *,
    regressor: Regressor = "knn",
    statistic: Statistic = "hsic",
    test_size: float = TEST_SIZE,
    n_neighbors: int = N_NEIGHBORS,
    n_permutations: int = N_PERMUTATIONS,
    max_cells: int = MAX_CELLS,
    seed: int = 0,
    key_added: str = DIAGNOSTICS_KEY,
    copy: bool = False,
) -> MuData | AnnData | None:
    """Independence and completeness of a model's features, for both modalities, written to ``.uns[key_added]``.

    For modality i (RNA, then protein), with the cross-modal pairing of the method: :func:`independence` of
    Z_i from C_{3-i} (Z_rna against C_protein, Z_protein against C_rna), and, when ``input_keys`` is given,
    :func:`completeness` of X_i from (Z_i, C_i). Features are read from ``.obsm``:
    ``X_<method>_specific_<modality>`` and ``X_<method>_shared_<modality>``, as the model's ``write_embeddings``
    writes them. Both use the same split of the cells.

    Parameters
    ----------
    mdata
        Data with the features (and the prepared inputs) in ``.obsm``.
    method
        Model whose features are read (``"indiseek"``, ``"factorizedcl"``, ``"infodisen"``).
    input_keys
        ``.obsm`` keys (or arrays) of the prepared inputs X_i by modality, e.g.
        ``{"rna": "X_rna_pcs", "protein": "X_protein_clr"}``. Modalities left out get no completeness entries.
    regressor
        Regressor of :func:`completeness`.
    statistic, n_permutations, max_cells
        Dependence test of :func:`independence`.
    test_size, n_neighbors, seed
        Held-out fraction, kNN neighbours and seed, shared by both diagnostics.
    key_added
        ``.uns`` key of the result.
    copy
        Return a copy with the result instead of writing into ``mdata``.

    Returns
    -------
    The annotated copy if ``copy=True``, else `None`. Writes ``.uns[key_added]``, plain numbers only (h5mu-ready):

    - ``["rna"]``, ``["protein"]``: ``independence_r2``, ``independence_r2_linear``, ``independence_<statistic>``,
      ``independence_hsic_normalized`` (HSIC only), ``independence_p_value``, ``completeness_r2_joint``,
      ``completeness_r2_shared``, ``completeness_r2_specific`` (floats), ``n_test`` and ``n_dependence`` (ints);
    - ``["params"]``: the arguments, with the ``.obsm`` keys used.

    As a table: ``pd.DataFrame({m: mdata.uns["diagnostics"][m] for m in ("rna", "protein")}).T``.
    """
    check_data(mdata)
    method = check_str(method, "method")
    key_added = check_str(key_added, "key_added")
    # the other settings are checked by the first call to independence(), before any work
    regressor = check_choice(regressor, "regressor", ("knn", "ridge"))
    if input_keys is not None and not isinstance(input_keys, Mapping):
        raise TypeError(
            f"input_keys must be a mapping of modality -> .obsm key, e.g. {{'rna': 'X_rna_pcs'}}, "
            f"got {type(input_keys).__name__}."
        )
    input_keys = dict(input_keys or {})
    unknown = set(input_keys) - set(MODALITIES)
    if unknown:
        raise KeyError(f"input_keys has unknown modalities {sorted(unknown)}: use {list(MODALITIES)}.")
    if not input_keys:
        logger.info("No input_keys given: computing independence only.")
    key = {(kind, m): embedding_key(method, kind, m) for kind in ("shared", "specific") for m in MODALITIES}
    result: dict[str, dict] = {}
    for i, m in enumerate(MODALITIES):
        other = MODALITIES[1 - i]
        ind = independence(
            mdata,
            key["specific", m],
            key["shared", other],
            test_size=test_size,
            n_neighbors=n_neighbors,
            statistic=statistic,
            n_permutations=n_permutations,
            max_cells=max_cells,
            seed=seed,
        )
        entry: dict[str, float | int] = {
            f"independence_{name}": float(v) for name, v in ind.items() if name not in ("n_test", "n_dependence")
        }
        if m in input_keys:
            comp = completeness(
                mdata,
                input_keys[m],
                key["specific", m],
                key["shared", m],
                regressor=regressor,
                test_size=test_size,
                n_neighbors=n_neighbors,
                seed=seed,
            )
            entry |= {f"completeness_{name}": float(v) for name, v in comp.items() if name != "n_test"}
        result[m] = entry | {"n_test": int(ind["n_test"]), "n_dependence": int(ind["n_dependence"])}
    result["params"] = {
        "method": method,
        "input_keys": {m: k if isinstance(k, str) else "<array>" for m, k in input_keys.items()},
        "specific_keys": {m: key["specific", m] for m in MODALITIES},
        "shared_keys": {m: key["shared", m] for m in MODALITIES},
        "regressor": regressor,
        "statistic": statistic,
        "test_size": float(test_size),
        "n_neighbors": int(n_neighbors),
        "n_permutations": int(n_permutations),
        "max_cells": int(max_cells),
        "seed": int(seed),
    }
    data = mdata.copy() if copy else mdata
    data.uns[key_added] = result
    return data if copy else None
