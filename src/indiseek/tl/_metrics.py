"""Summaries of representations: rank agreement of per-type scores, and clustering agreement with labels."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData
from scipy.stats import spearmanr
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from ._theta import get_labels, get_representation

logger = logging.getLogger(__name__)


def _obs_column(data: MuData | AnnData, key: str, hint: str) -> pd.Series:
    if key not in data.obs:
        raise KeyError(f"data.obs[{key!r}] not found: {hint} (columns: {list(data.obs.columns)}).")
    return pd.to_numeric(data.obs[key], errors="raise")


def rank_correlation(
    mdata: MuData | AnnData,
    score_key: str = "theta",
    reference_key: str = "wnn_rna_weight",
    groupby: str = "celltype.l2",
    reference: Mapping[str, float] | pd.Series | None = None,
) -> tuple[float, pd.DataFrame]:
    """Spearman's rho between the per-group means of a score and of a reference.

    The paper ranks the level-2 cell types by mean theta and compares the ranks with those of the mean
    WNN RNA weight; with simulated data the reference can be the ground truth instead.

    Parameters
    ----------
    mdata
        Data with ``.obs[score_key]``, ``.obs[groupby]`` and (unless ``reference`` is given) ``.obs[reference_key]``.
    score_key
        Per-cell score (e.g. from :func:`~indiseek.tl.theta_scores`). NaN values are left out of the means.
    reference_key
        Per-cell reference (e.g. from :func:`~indiseek.tl.wnn_weights`).
    groupby
        Column of ``.obs`` with the groups. Cells without a group are left out.
    reference
        Per-group reference values used instead of ``reference_key``, e.g.
        ``mdata.uns["simulation"]["rna_specificity"]``. Groups it lacks are left out, with a warning.

    Returns
    -------
    rho
        Spearman's rank correlation across groups.
    table
        One row per group (index), sorted by ``score_rank``, with columns ``mean_score``, ``mean_reference``,
        ``score_rank``, ``reference_rank`` (1 = highest mean; ties share the average rank) and ``n_cells``.
    """
    groups = get_labels(mdata, groupby)
    score = _obs_column(mdata, score_key, "compute the score first, e.g. `indiseek.tl.theta_scores(mdata)`")
    table = pd.DataFrame({"score": score.to_numpy(), "group": groups.to_numpy()}).dropna(subset=["group"])
    by_group = table.groupby("group", observed=True)
    result = pd.DataFrame({"mean_score": by_group["score"].mean(), "n_cells": by_group.size()})
    if reference is None:
        ref = _obs_column(mdata, reference_key, "compute it first, e.g. `indiseek.tl.wnn_weights(mdata)`")
        ref_table = pd.DataFrame({"reference": ref.to_numpy(), "group": groups.to_numpy()})
        result["mean_reference"] = ref_table.groupby("group", observed=True)["reference"].mean()
    else:
        reference = pd.Series(dict(reference), dtype=float)
        reference.index = reference.index.astype(str)
        result["mean_reference"] = reference.reindex(result.index.astype(str)).to_numpy()
    lacking = result.index[result[["mean_score", "mean_reference"]].isna().any(axis=1)]
    if len(lacking):
        logger.warning("Leaving out groups without a score or a reference value: %s", list(lacking))
        result = result.drop(index=lacking)
    if len(result) < 2:
        raise ValueError(f"Need at least 2 groups with both values to rank, got {len(result)}.")
    result["score_rank"] = result["mean_score"].rank(ascending=False)
    result["reference_rank"] = result["mean_reference"].rank(ascending=False)
    result.index = result.index.astype(str)
    result.index.name = groupby
    result = result[["mean_score", "mean_reference", "score_rank", "reference_rank", "n_cells"]]
    rho = float(spearmanr(result["mean_score"], result["mean_reference"]).statistic)
    return rho, result.sort_values("score_rank")


def cluster_metrics(
    mdata: MuData | AnnData,
    rep: str,
    label_key: str = "celltype.l2",
    n_seeds: int = 5,
    seed: int = 0,
) -> dict[str, float]:
    """Agreement of k-means clusters of a representation with labels, by ARI and NMI.

    k-means (k-means++ initialisation, k = number of distinct labels) runs once per seed
    ``seed, seed + 1, ..., seed + n_seeds - 1``; the scores are averaged over seeds.

    Parameters
    ----------
    mdata
        Data with the representation in ``.obsm[rep]`` and labels in ``.obs[label_key]``.
    rep
        Key of ``.obsm``, e.g. ``"X_indiseek"`` or ``"X_indiseek_specific_rna"``.
    label_key
        Column of ``.obs`` with the labels. Cells without a label (NaN) are left out.
    n_seeds
        Number of k-means runs.
    seed
        First seed.

    Returns
    -------
    ``{"ari", "nmi"}``: means over seeds; ``{"ari_std", "nmi_std"}``: their standard deviations;
    ``"k"``: the number of clusters; ``"n_cells"``: the number of labelled cells used.
    """
    x = get_representation(mdata, rep)
    labels = get_labels(mdata, label_key)
    keep = labels.notna().to_numpy()
    x, labels = x[keep], np.asarray(labels[keep].astype(str))
    k = len(np.unique(labels))
    if k < 2:
        raise ValueError(f"data.obs[{label_key!r}] has {k} distinct label(s): need at least 2.")
    ari, nmi = [], []
    for s in range(seed, seed + n_seeds):
        clusters = KMeans(n_clusters=k, n_init=1, random_state=s).fit_predict(x)
        ari.append(adjusted_rand_score(labels, clusters))
        nmi.append(normalized_mutual_info_score(labels, clusters))
    return {
        "ari": float(np.mean(ari)),
        "nmi": float(np.mean(nmi)),
        "ari_std": float(np.std(ari)),
        "nmi_std": float(np.std(nmi)),
        "k": k,
        "n_cells": int(keep.sum()),
    }
