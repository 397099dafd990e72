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
        columns, as :meth:`indiseek.IndiSeek.sweep_lambda` returns it (any modality names: one suffices), or a curve
        this function returned (returned as it is).

    Returns
    -------
    Columns ``completeness`` (held-out R^2 of X_i from (Z_i, C_i)) and ``leak`` (held-out R^2 of C_{3-i} from Z_i;
    a negative R^2, worse than predicting the mean, counts as no leak), indexed by lambda.
    """
    if not isinstance(table, pd.DataFrame) or table.empty:
        raise TypeError("table must be a non-empty DataFrame from IndiSeek.sweep_lambda.")
    if {"completeness", "leak"} <= set(table.columns):  # already a trade-off curve
        return table[["completeness", "leak"]].sort_index()
    joint, leak = "completeness_r2_joint_", "independence_r2_"
    modalities = [c[len(joint) :] for c in table.columns if c.startswith(joint)] or list(MODALITIES)
    missing = [c for m in modalities for c in (joint + m, leak + m) if c not in table.columns]
    if missing:
        raise KeyError(f"table lacks the columns {missing}: pass the DataFrame IndiSeek.sweep_lambda returns.")
    out = pd.DataFrame(
        {
            "completeness": table[[joint + m for m in modalities]].mean(axis=1),
            "leak": table[[leak + m for m in modalities]].clip(lower=0).mean(axis=1),
        }
    )
    return out.sort_index()


def select_lambda(table: pd.DataFrame, keep: float = 0.9) -> tuple[float, str]:
    """The smallest lambda of a sweep that keeps most of the completeness the grid reaches, and why.

    Completeness (held-out R^2 of X_i from (Z_i, C_i), averaged over the modalities) rises with lambda and so does
    the leak (held-out R^2 of C_{3-i} from Z_i). The rule puts the biology first: among the lambdas whose completeness
    gain over the smallest lambda's is at least ``keep`` of the largest gain on the grid, it takes the smallest,
    i.e. the most independent representation that still carries nearly all of what the grid can capture. It needs
    no labels.

    Completeness is expected to grow with lambda (it weighs the reconstruction), so a drop between neighbouring lambdas
    is noise of its estimate. When the grid's whole gain is no larger than the largest such drop, the lambdas do not
    differ in what they keep and the choice rests on noise: the reason says so and a :class:`UserWarning` is issued (on
    small data sets, e.g. a few hundred cells, this happens; a lambda fixed in advance is then the steadier choice).

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
    low, high = completeness.iloc[0], completeness.max()
    gain = (completeness - low) / (high - low) if high > low else pd.Series(1.0, index=curve.index)
    chosen = float(gain.index[(gain >= keep - 1e-12).to_numpy()][0])
    row = curve.loc[chosen]
    reason = (
        f"lambda={chosen:g} is the smallest lambda keeping {keep:.0%} of the completeness gain of the grid: held-out "
        f"R^2 of X_i from (Z_i, C_i) {row['completeness']:.3f} (smallest lambda {low:.3f}, best {high:.3f}) with a "
        f"leak of {row['leak']:.3f} (R^2 of C_(3-i) from Z_i), averaged over the modalities"
    )
    # completeness is expected to grow with lambda, so a drop between neighbouring lambdas is noise
    noise = float(np.nan_to_num(-completeness.diff(), nan=0.0).max(initial=0.0))
    if high - low <= noise:
        flat = (
            f"completeness hardly moves over the grid (its gain, {high - low:.3f}, is no larger than its largest "
            f"drop between neighbouring lambdas, {noise:.3f}), so the choice rests on noise; more cells, or a lambda "
            "fixed in advance, decide it better"
        )
        warnings.warn(f"lambda={chosen:g} was chosen, but {flat}.", UserWarning, stacklevel=2)
        reason += f"; but {flat}"
    return chosen, reason + "."
