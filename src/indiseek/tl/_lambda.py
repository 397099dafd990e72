"""A label-free choice of lambda from the completeness-independence trade-off of a sweep."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from indiseek._checks import check_real
from indiseek._keys import MODALITIES


def lambda_tradeoff(table: pd.DataFrame) -> pd.DataFrame:
    """Completeness and leak per lambda, each averaged over the modalities.

    Parameters
    ----------
    table
        One row per lambda (the index) with ``completeness_r2_joint_<modality>`` and ``independence_r2_<modality>``
        columns, and optionally ``independence_r2_linear_<modality>``, as :meth:`indiseek.IndiSeek.sweep_lambda`
        returns it (any modality names: one suffices), or a curve this function returned (returned as it is).

    Returns
    -------
    Columns ``completeness`` (held-out R^2 of X_i from (Z_i, C_i)) and ``leak`` (held-out R^2 of C_{3-i} from Z_i,
    by the kNN regression or, where the table has it, by the linear one, whichever sees more: each misses what the
    other sees, see :func:`~indiseek.tl.independence`; a negative R^2, worse than predicting the mean, counts as no
    leak), indexed by lambda.
    """
    if not isinstance(table, pd.DataFrame) or table.empty:
        raise TypeError("table must be a non-empty DataFrame from IndiSeek.sweep_lambda.")
    if {"completeness", "leak"} <= set(table.columns):  # already a trade-off curve
        return table[["completeness", "leak"]].sort_index()
    joint, knn, linear = "completeness_r2_joint_", "independence_r2_", "independence_r2_linear_"
    modalities = [c[len(joint) :] for c in table.columns if c.startswith(joint)] or list(MODALITIES)
    missing = [c for m in modalities for c in (joint + m, knn + m) if c not in table.columns]
    if missing:
        raise KeyError(f"table lacks the columns {missing}: pass the DataFrame IndiSeek.sweep_lambda returns.")
    leak = table[[knn + m for m in modalities]].to_numpy()
    if all(linear + m in table.columns for m in modalities):
        leak = np.fmax(leak, table[[linear + m for m in modalities]].to_numpy())
    out = pd.DataFrame(
        {
            "completeness": table[[joint + m for m in modalities]].mean(axis=1),
            "leak": np.clip(leak, 0, None).mean(axis=1),
        },
        index=table.index,
    )
    return out.sort_index()


def select_lambda(table: pd.DataFrame, keep: float = 0.9) -> tuple[float, str]:
    """The smallest lambda of a sweep that keeps most of the completeness the grid reaches, and why.

    Completeness (held-out R^2 of X_i from (Z_i, C_i), averaged over the modalities) rises with lambda and so does
    the leak (held-out R^2 of C_{3-i} from Z_i, by kNN or linear regression, see :func:`lambda_tradeoff`). The rule
    puts the biology first: among the lambdas whose completeness gain over the smallest lambda's is at least ``keep``
    of the largest gain on the grid, it takes the smallest, i.e. the most independent representation that still
    carries nearly all of what the grid can capture. It needs no labels. A sweep of one lambda is its own choice.

    Completeness is expected to grow with lambda (it weighs the reconstruction), so a drop between neighbouring lambdas
    is noise of its estimate. A lambda is not chosen when another lambda leaks less and is as complete up to that noise
    (its completeness is at most the largest drop lower): it would pay in independence for completeness that the grid
    cannot tell apart. Such lambdas are single fits that happened to leak (on small files, e.g. a few hundred cells,
    one lambda in the middle of the grid can leak 0.2 while its neighbours leak nothing). The grid's best completeness
    is taken over the other lambdas, and the reason names those skipped that would have been chosen or were more
    complete than that best. When the grid's whole gain is no larger than the largest drop, the lambdas do not differ
    in what they keep and the choice rests on noise: the reason says so and a :class:`UserWarning` is issued (a lambda
    fixed in advance is then the steadier choice).

    Parameters
    ----------
    table
        The sweep, as :meth:`indiseek.IndiSeek.sweep_lambda` returns it, or its :func:`lambda_tradeoff` curve.
    keep
        Share of the grid's completeness gain to keep, in (0, 1].

    Returns
    -------
    The chosen lambda and a sentence giving the reason with the numbers.
    """
    keep = check_real(keep, "keep", minimum=0, maximum=1, strict=True)
    curve = lambda_tradeoff(table)
    completeness = curve["completeness"]
    if not np.isfinite(completeness).any():
        raise ValueError("Every lambda of the sweep has an undefined completeness (NaN): nothing to choose from.")
    if len(curve) == 1:  # nothing to weigh, and no noise to warn of
        (only,), row = curve.index, curve.iloc[0]
        return float(only), (
            f"lambda={only:g} is the only lambda of the sweep: held-out R^2 of X_i from (Z_i, C_i) "
            f"{row['completeness']:.3f} with a leak of {row['leak']:.3f} (R^2 of C_(3-i) from Z_i, kNN or linear), "
            "averaged over the modalities."
        )
    # completeness is expected to grow with lambda, so a drop between neighbouring lambdas is noise
    noise = float(np.nan_to_num(-completeness.diff(), nan=0.0).max(initial=0.0))
    leak = curve["leak"].to_numpy()
    as_complete = completeness.to_numpy()[None, :] >= completeness.to_numpy()[:, None] - noise  # [a, b]: b vs a
    dominated = ((leak[None, :] < leak[:, None]) & as_complete).any(axis=1)
    low, high = completeness.iloc[0], completeness[~dominated].max()
    gain = (completeness - low) / (high - low) if high > low else pd.Series(1.0, index=curve.index)
    kept = (gain >= keep - 1e-12).to_numpy()
    chosen = float(gain.index[kept & ~dominated][0])
    row = curve.loc[chosen]
    reason = (
        f"lambda={chosen:g} is the smallest lambda keeping {keep:.0%} of the completeness gain of the grid: held-out "
        f"R^2 of X_i from (Z_i, C_i) {row['completeness']:.3f} (smallest lambda {low:.3f}, best {high:.3f}) with a "
        f"leak of {row['leak']:.3f} (R^2 of C_(3-i) from Z_i, kNN or linear), averaged over the modalities"
    )
    passed_over = dominated & kept & ((curve.index < chosen) | (completeness > high).to_numpy())
    skipped = [f"{lam:g} (leak {curve['leak'][lam]:.3f})" for lam in curve.index[passed_over]]
    if skipped:
        reason += (
            f"; skipped lambda {', '.join(skipped)}: another lambda leaks less and is as complete, up to the "
            f"completeness noise of {noise:.3f}"
        )
    grid_gain = completeness.max() - low
    if grid_gain <= noise:
        flat = (
            f"completeness hardly moves over the grid (its gain, {grid_gain:.3f}, is no larger than its largest "
            f"drop between neighbouring lambdas, {noise:.3f}), so the choice rests on noise; more cells, or a lambda "
            "fixed in advance, decide it better"
        )
        warnings.warn(f"lambda={chosen:g} was chosen, but {flat}.", UserWarning, stacklevel=2)
        reason += f"; but {flat}"
    return chosen, reason + "."
