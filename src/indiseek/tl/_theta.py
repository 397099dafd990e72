"""theta scores: does a cell's type show more in its RNA-specific or its protein-specific features?"""

from __future__ import annotations

import logging
import warnings
from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from indiseek._docs import dsp
from indiseek._keys import MODALITIES, THETA_KEY, embedding_key, theta_keys

from ._checks import check_choice, check_data, check_int, check_real, check_str, labels, matrix
from ._neighbors import NEIGHBOR_METHODS, knn_indices, neighbor_method

logger = logging.getLogger(__name__)


def _same_label_counts(
    x: np.ndarray, codes: np.ndarray, n_neighbors: int, method: str, random_state: int
) -> np.ndarray:
    """Number of each cell's ``n_neighbors`` nearest neighbours (itself excluded) carrying its label."""
    idx = knn_indices(x, n_neighbors, method, random_state)
    same = (codes[idx] == codes[:, None]) & (codes[:, None] >= 0)
    return same.sum(axis=1)


#: Below this gain over chance in both modalities, :func:`theta_scores` warns that theta compares noise; in one, that
#: theta follows the other modality alone.
MIN_SEPARATION = 0.1


def _separation(
    beta_rna: np.ndarray, beta_protein: np.ndarray, codes: np.ndarray, scored: np.ndarray, n_searched: int
) -> dict:
    """Mean same-label neighbour fractions, their value by chance, and each modality's gain over chance.

    By chance a cell's neighbour shares its label with probability (n_t - 1) / (n - 1), for a label held by n_t
    scored cells among the n searched; the gain is (mean beta - chance) / (1 - chance): 0 at chance, 1 when every
    neighbour matches.
    """
    n = int(scored.sum())
    if n < 2:
        return dict.fromkeys(("beta_rna", "beta_protein", "chance", "rna", "protein"), float("nan"))
    sizes = np.bincount(codes[scored])
    chance = float((sizes * (sizes - 1)).sum() / (n * (n_searched - 1)))
    out = {"beta_rna": float(beta_rna[scored].mean()), "beta_protein": float(beta_protein[scored].mean())}
    out["chance"] = chance
    for m in ("rna", "protein"):
        out[m] = (out[f"beta_{m}"] - chance) / (1 - chance) if chance < 1 else float("nan")
    return out


@dsp.dedent
def theta_scores(
    mdata: MuData | AnnData,
    label_key: str = "celltype.l2",
    n_neighbors: int = 10,
    pseudocount: float = 0.5,
    method: str = "indiseek",
    rna_key: str | None = None,
    protein_key: str | None = None,
    key_added: str = THETA_KEY,
    copy: bool = False,
    neighbors: Literal["auto", "exact", "pynndescent"] = "auto",
    random_state: int = 0,
) -> MuData | AnnData | None:
    """Per-cell theta score: log ratio of same-label neighbours in the RNA- and the protein-specific features.

    For each cell c and modality m, beta_m(c) is the fraction of its ``n_neighbors`` nearest neighbours
    (Euclidean, in the specific features Z_m, the cell itself excluded) that share its label. Writing
    k_m(c) = n_neighbors * beta_m(c) for the number of such neighbours,

        theta(c) = log((k_RNA(c) + pseudocount) / (k_protein(c) + pseudocount)).

    The pseudocount is added to the neighbour counts so that a cell with no same-label neighbour in one
    modality gets a finite score; 0.5 is the usual continuity correction of a ratio of counts, and
    ``pseudocount=0`` gives the paper's log(beta_RNA / beta_protein) (infinite when a count is 0, with a warning).
    theta > 0: the cell's type shows more in its RNA-specific features; theta < 0: more in its protein-specific.

    Parameters
    ----------
    mdata
        Data with the specific features in ``.obsm`` and labels in ``.obs``.
    label_key
        Column of ``.obs`` with the labels (the paper uses level-2 cell types). Cells without both modalities'
        features (NaN rows, e.g. unpaired cells) get NaN scores and are left out of the neighbour search. Cells
        without a label (NaN)
        get NaN scores, stay in the neighbour search, and never count as a match for other cells. A column
        without any label is an error; one with a single label gives theta = 0 everywhere, with a warning.
    n_neighbors
        Number of neighbours (paper: 10), less than the number of cells.
    pseudocount
        Added to both same-label neighbour counts (>= 0).
    method
        Name of the model whose embeddings are used when ``rna_key``/``protein_key`` are `None`:
        ``X_{method}_specific_rna`` and ``X_{method}_specific_protein``.
    rna_key, protein_key
        ``.obsm`` keys of the RNA-specific (Z_RNA, cells x p1) and protein-specific (Z_protein, cells x p2) features.
        Either may hold several fits, cells x fits x features (:meth:`~indiseek.IndiSeek.write_specific_fits`):
        the same-label counts k_m(c) are then averaged over the fits.
    key_added
        Name of the score. With the default ``"theta"``, writes ``.obs["beta_rna"]``, ``.obs["beta_protein"]``
        and ``.obs["theta"]``; otherwise ``.obs[f"{key_added}_beta_rna"]``, ``.obs[f"{key_added}_beta_protein"]``
        and ``.obs[key_added]``. The parameters go to ``.uns[key_added]["params"]``, with the neighbour search
        used under ``"neighbors"``; ``.uns[key_added]["separation"]`` holds the mean same-label fractions
        (``"beta_rna"``, ``"beta_protein"``), their value by chance (``"chance"``) and each modality's gain over
        chance, ``(beta - chance) / (1 - chance)`` (``"rna"``, ``"protein"``). When both gains are below 0.1, the
        specific features hardly separate the labels and theta compares noise: a warning says so. When only one is,
        theta ranks the labels by the other modality alone, and a warning says that.
    copy
        Return a copy with the results instead of writing into ``mdata``.
    %(param_neighbors)s
    random_state
        Seed of pynndescent.

    Returns
    -------
    The annotated copy if ``copy=True``, else `None`.
    """
    check_data(mdata)
    n_obs = mdata.n_obs
    n_neighbors = check_int(
        n_neighbors, "n_neighbors", 1, n_obs - 1, f"It must be less than the number of cells, {n_obs}."
    )
    pseudocount = check_real(pseudocount, "pseudocount", minimum=0)
    key_added = check_str(key_added, "key_added")
    method = check_str(method, "method")
    random_state = check_int(random_state, "random_state", 0)
    neighbors = check_choice(neighbors, "neighbors", NEIGHBOR_METHODS)
    rna_key = rna_key or embedding_key(method, "specific", "rna")
    protein_key = protein_key or embedding_key(method, "specific", "protein")
    hint = "Write the model's embeddings first, e.g. `model.write_embeddings()`."
    cell_labels = labels(mdata, label_key, "label_key")
    z_rna = matrix(mdata, rna_key, "rna_key", hint, missing_rows=True, fits=True)
    z_protein = matrix(mdata, protein_key, "protein_key", hint, missing_rows=True, fits=True)
    both = ~np.isnan(z_rna).any(axis=(1, 2)) & ~np.isnan(z_protein).any(axis=(1, 2))
    if both.sum() <= n_neighbors:
        raise ValueError(
            f"Only {int(both.sum())} cells have both {rna_key!r} and {protein_key!r}; theta needs more than "
            f"n_neighbors={n_neighbors}."
        )
    if not both.all():
        logger.info("%d cells without both modalities' features get NaN theta scores.", int((~both).sum()))
    if cell_labels.nunique() < 2:
        warnings.warn(
            f".obs[{label_key!r}] (label_key) holds a single label, so every neighbour shares it and theta is 0 "
            "for every labelled cell: pass a column with at least two labels.",
            UserWarning,
            stacklevel=2,
        )

    search = neighbor_method(neighbors, int(both.sum()))
    codes = pd.Categorical(cell_labels).codes.astype(np.int64)  # -1 for NaN
    k_rna = np.full(n_obs, np.nan)
    k_protein = np.full(n_obs, np.nan)
    for k, z in ((k_rna, z_rna), (k_protein, z_protein)):  # each fit's counts, averaged over the fits
        k[both] = np.mean([_same_label_counts(fit, codes[both], n_neighbors, search, random_state)
                           for fit in z[both].transpose(1, 0, 2)], axis=0)  # fmt: skip
    missing = (codes < 0) & both
    k_rna[missing] = np.nan
    k_protein[missing] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.log((k_rna + pseudocount) / (k_protein + pseudocount))
    if missing.any():
        logger.info("%d cells without a %r label get NaN theta scores.", int(missing.sum()), label_key)
    undefined = ~missing & both & ~np.isfinite(theta)
    if undefined.any():
        warnings.warn(
            f"pseudocount=0: {int(undefined.sum())} cells have no same-label neighbour in one or both modalities, "
            "so their theta is infinite or undefined (NaN). Use a positive pseudocount (default 0.5) for finite "
            "scores.",
            UserWarning,
            stacklevel=2,
        )

    beta_rna, beta_protein = k_rna / n_neighbors, k_protein / n_neighbors
    separation = _separation(beta_rna, beta_protein, codes, both & ~missing, int(both.sum()))
    if max(separation["rna"], separation["protein"]) < MIN_SEPARATION:
        warnings.warn(
            f"Neither modality's specific features group the {label_key!r} labels much better than chance "
            f"(mean same-label neighbour fraction {separation['beta_rna']:.3f} in {rna_key!r} and "
            f"{separation['beta_protein']:.3f} in {protein_key!r}, {separation['chance']:.3f} by chance), so theta "
            "compares noise and its ranking of the labels says little. Such labels are most likely carried by what the "
            "modalities share: compare them on the shared features instead.",
            UserWarning,
            stacklevel=2,
        )
    elif min(separation["rna"], separation["protein"]) < MIN_SEPARATION:
        weak, strong = sorted(MODALITIES, key=lambda m: separation[m])
        keys, names = {"rna": rna_key, "protein": protein_key}, {"rna": "RNA", "protein": "protein"}
        warnings.warn(
            f"The {names[weak]} side of theta is close to chance: the specific features in {keys[weak]!r} group the "
            f"{label_key!r} labels little better than chance (mean same-label neighbour fraction "
            f"{separation[f'beta_{weak}']:.3f}, {separation['chance']:.3f} by chance; {names[strong]}: "
            f"{separation[f'beta_{strong}']:.3f}). Theta then ranks the labels by how well the "
            f"{names[strong]}-specific features alone group them, not by which modality explains them.",
            UserWarning,
            stacklevel=2,
        )

    data = mdata.copy() if copy else mdata
    beta_rna_key, beta_protein_key, theta_key = theta_keys(key_added)
    data.obs[beta_rna_key] = beta_rna
    data.obs[beta_protein_key] = beta_protein
    data.obs[theta_key] = theta
    data.uns[key_added] = {
        "params": {
            "label_key": label_key,
            "n_neighbors": n_neighbors,
            "pseudocount": pseudocount,
            "rna_key": rna_key,
            "protein_key": protein_key,
            "neighbors": search,
            "random_state": random_state,
        },
        "separation": separation,
    }
    return data if copy else None
