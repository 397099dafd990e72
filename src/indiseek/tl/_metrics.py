"""Summaries of representations: rank agreement of per-type scores, and clustering agreement with labels."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData
from scipy.stats import spearmanr
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from ._checks import check_data, check_int, labels, matrix, numeric_obs_column

logger = logging.getLogger(__name__)


def _per_group_reference(reference: object, groups: pd.Index) -> np.ndarray:
    """The values of a mapping of group -> number at ``groups`` (NaN where it has none)."""
    if not isinstance(reference, Mapping | pd.Series):
        raise TypeError(
            f"reference must be a mapping of group -> number or a pd.Series, got {type(reference).__name__}."
        )
    try:
        values = pd.Series(dict(reference), dtype=float)
    except (TypeError, ValueError):
        raise TypeError("reference must map each group to a number; some of its values are not numbers.") from None
    values.index = values.index.astype(str)
    if not values.index.isin(groups.astype(str)).any():
        raise ValueError(
            f"reference has no value for any group (its groups: {list(values.index)[:10]}; "
            f"the data's: {list(groups.astype(str))[:10]}): pass a reference keyed by the groups of `groupby`."
        )
    return values.reindex(groups.astype(str)).to_numpy()


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
        Spearman's rank correlation across groups; NaN, with a warning, when the mean score or the mean reference
        is the same in every group (a constant has no ranking).
    table
        One row per group (index), sorted by ``score_rank``, with columns ``mean_score``, ``mean_reference``,
        ``score_rank``, ``reference_rank`` (1 = highest mean; ties share the average rank) and ``n_cells``.
    """
    check_data(mdata)
    groups = labels(mdata, groupby, "groupby")
    score = numeric_obs_column(
        mdata, score_key, "score_key", "Compute the score first, e.g. `indiseek.tl.theta_scores(mdata)`."
    )
    checked = {"score_key": (score_key, score)}
    if reference is None:
        ref = numeric_obs_column(
            mdata, reference_key, "reference_key", "Compute it first, e.g. `indiseek.tl.wnn_weights(mdata)`."
        )
        checked["reference_key"] = (reference_key, ref)
    for name, (key, values) in checked.items():
        n_infinite = int(np.isinf(values).sum())
        if n_infinite:
            warnings.warn(
                f".obs[{key!r}] ({name}) has {n_infinite} infinite values: groups holding them get an infinite "
                "mean, or none (left out) when +inf and -inf meet. Scores of theta_scores(pseudocount=0) are "
                "infinite for cells without a same-label neighbour; use a positive pseudocount.",
                UserWarning,
                stacklevel=2,
            )
    table = pd.DataFrame({"score": score.to_numpy(), "group": groups.to_numpy()}).dropna(subset=["group"])
    by_group = table.groupby("group", observed=True)
    result = pd.DataFrame({"mean_score": by_group["score"].mean(), "n_cells": by_group.size()})
    if reference is None:
        ref_table = pd.DataFrame({"reference": ref.to_numpy(), "group": groups.to_numpy()})
        result["mean_reference"] = ref_table.groupby("group", observed=True)["reference"].mean()
    else:
        result["mean_reference"] = _per_group_reference(reference, result.index)
    lacking = result.index[result[["mean_score", "mean_reference"]].isna().any(axis=1)]
    if len(lacking):
        logger.warning("Leaving out groups without a score or a reference value: %s", list(lacking))
        result = result.drop(index=lacking)
    if len(result) < 2:
        raise ValueError(
            f"Need at least 2 groups of .obs[{groupby!r}] (groupby) with both a mean score and a reference value "
            f"to rank, got {len(result)}: use a column with more groups, or fill in the missing values."
        )
    result["score_rank"] = result["mean_score"].rank(ascending=False)
    result["reference_rank"] = result["mean_reference"].rank(ascending=False)
    result.index = result.index.astype(str)
    result.index.name = groupby
    result = result[["mean_score", "mean_reference", "score_rank", "reference_rank", "n_cells"]]
    constant = [name for name in ("mean_score", "mean_reference") if result[name].nunique() == 1]
    if constant:
        what = " and ".join(f"the {name.replace('_', ' ')}" for name in constant)
        warnings.warn(
            f"Spearman's rho is undefined (NaN): {what} is the same in every group of .obs[{groupby!r}], so it has "
            "no ranking. Check that the score and the reference were computed on these cells and vary across groups.",
            UserWarning,
            stacklevel=2,
        )
        rho = float("nan")
    else:
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
    check_data(mdata)
    n_seeds = check_int(n_seeds, "n_seeds", 1)
    seed = check_int(seed, "seed", 0)
    x = matrix(mdata, rep, "rep", "Write the model's embeddings first, e.g. `model.write_embeddings()`.")
    cell_labels = labels(mdata, label_key, "label_key")
    keep = cell_labels.notna().to_numpy()
    x, cell_labels = x[keep], np.asarray(cell_labels[keep].astype(str))
    k = len(np.unique(cell_labels))
    if k < 2:
        raise ValueError(f".obs[{label_key!r}] (label_key) has {k} distinct label: need at least 2 to cluster.")
    ari, nmi = [], []
    for s in range(seed, seed + n_seeds):
        clusters = KMeans(n_clusters=k, n_init=1, random_state=s).fit_predict(x)
        ari.append(adjusted_rand_score(cell_labels, clusters))
        nmi.append(normalized_mutual_info_score(cell_labels, clusters))
    return {
        "ari": float(np.mean(ari)),
        "nmi": float(np.mean(nmi)),
        "ari_std": float(np.std(ari)),
        "nmi_std": float(np.std(nmi)),
        "k": k,
        "n_cells": int(keep.sum()),
    }
