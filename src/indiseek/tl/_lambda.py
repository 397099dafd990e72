"""A label-free choice of lambda from the independence-completeness trade-off of a sweep."""

from __future__ import annotations

import numpy as np
import pandas as pd

from indiseek._keys import MODALITIES


def lambda_tradeoff(table: pd.DataFrame) -> pd.DataFrame:
    """Completeness, leak and their difference per lambda, each averaged over the two modalities.

    Parameters
    ----------
    table
        One row per lambda (the index) with ``completeness_r2_joint_<modality>`` and ``independence_r2_<modality>``
        columns, as :meth:`indiseek.IndiSeek.sweep_lambda` returns it (any modality names: one suffices).

    Returns
    -------
    Columns ``completeness`` (held-out R^2 of X_i from (Z_i, C_i)), ``leak`` (held-out R^2 of C_{3-i} from Z_i; a
    negative R^2, worse than predicting the mean, counts as no leak) and ``score`` (``completeness - leak``), indexed
    by lambda.
    """
    if not isinstance(table, pd.DataFrame) or table.empty:
        raise TypeError("table must be a non-empty DataFrame from IndiSeek.sweep_lambda.")
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
    out["score"] = out["completeness"] - out["leak"]
    return out.sort_index()


def select_lambda(table: pd.DataFrame) -> tuple[float, str]:
    """The lambda of a sweep with the most completeness net of leak, and why.

    Both diagnostics are held-out R^2 on the same scale: completeness is the share of the modality's variance that
    (Z_i, C_i) explain, the leak the share of the other modality's shared features that Z_i alone predicts. Raising
    lambda buys completeness and pays in leak; the rule takes the lambda where what (Z_i, C_i) explain, minus what
    Z_i gives away, is largest (averaged over the modalities), i.e. where one more step of lambda would cost more
    independence than it adds completeness. It needs no labels.

    Parameters
    ----------
    table
        The sweep, as :meth:`indiseek.IndiSeek.sweep_lambda` returns it.

    Returns
    -------
    The chosen lambda and a sentence giving the reason with the numbers.
    """
    curve = lambda_tradeoff(table)
    scores = curve["score"].to_numpy()
    if not np.isfinite(scores).any():
        raise ValueError("Every lambda of the sweep has an undefined score (NaN diagnostics): nothing to choose from.")
    best = curve.index[int(np.nanargmax(scores))]
    row = curve.loc[best]
    others = curve.drop(index=best)
    runner_up = others["score"].idxmax() if len(others) and np.isfinite(others["score"]).any() else None
    reason = (
        f"lambda={best:g} has the largest completeness net of leak: held-out R^2 {row['completeness']:.3f} of X_i "
        f"from (Z_i, C_i) minus {row['leak']:.3f} of C_(3-i) from Z_i = {row['score']:.3f}, averaged over the "
        "modalities"
    )
    if runner_up is not None:
        reason += f"; next best lambda={runner_up:g} ({others.loc[runner_up, 'score']:.3f})"
    return float(best), reason + "."
