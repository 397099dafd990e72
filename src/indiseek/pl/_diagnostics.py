"""Bar charts of the label-free diagnostics: completeness and independence R^2 per modality, p-values annotated."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from mudata import MuData

from indiseek._docs import dsp

from ._utils import finish

_MODALITY_NAMES = {"rna": "RNA", "protein": "protein"}
_OTHER = {"rna": "protein", "protein": "rna"}
_COMPLETENESS_COLOR, _INDEPENDENCE_COLOR = "tab:blue", "tab:orange"


def _bars(modality: str, entry: Mapping[str, Any]) -> list[tuple[str, float, str]]:
    """(label, R^2, colour) of each bar present in one modality's entry, completeness first.

    X, Z and C are the panel's modality's; only the independence bar names the other modality's C.
    """
    other = _OTHER.get(modality, "other")
    wanted = [
        ("completeness_r2_shared", "X from\nC", _COMPLETENESS_COLOR),
        ("completeness_r2_specific", "X from\nZ", _COMPLETENESS_COLOR),
        ("completeness_r2_joint", "X from\n(Z, C)", _COMPLETENESS_COLOR),
        ("independence_r2_linear", f"C_{other}\nfrom Z,\nlinear", _INDEPENDENCE_COLOR),
        ("independence_r2", f"C_{other}\nfrom Z", _INDEPENDENCE_COLOR),
    ]
    return [(label, float(entry[k]), color) for k, label, color in wanted if k in entry]


def _panel(ax: Axes, modality: str, entry: Mapping[str, Any], show_ylabel: bool) -> None:
    bars = _bars(modality, entry)
    x = np.arange(len(bars))
    values = np.array([v for _, v, _ in bars])
    ax.bar(x, values, color=[c for _, _, c in bars])
    ax.axhline(0, color="black", linewidth=0.8)
    for xi, v in zip(x, values, strict=True):
        if np.isfinite(v):
            ax.annotate(f"{v:.2f}", (xi, max(v, 0.0)), xytext=(0, 2), textcoords="offset points", ha="center",
                        va="bottom", fontsize="x-small")  # fmt: skip
    p_value = entry.get("independence_p_value")
    if p_value is not None and np.isfinite(p_value):
        y = max(float(values[-1]), 0.0)
        ax.annotate(f"p = {p_value:.2g}", (x[-1], y), xytext=(0, 12), textcoords="offset points", ha="center",
                    va="bottom", fontsize="x-small", color=_INDEPENDENCE_COLOR)  # fmt: skip
    ax.set_xticks(x, [label for label, _, _ in bars], fontsize="x-small")
    ax.set_xlim(-0.6, len(bars) - 0.4)
    ax.set_title(_MODALITY_NAMES.get(modality, modality))
    if show_ylabel:
        ax.set_ylabel("held-out $R^2$")


@dsp.dedent
def diagnostics(
    data: MuData | AnnData | Mapping[str, Any],
    key: str = "diagnostics",
    modalities: Sequence[str] | None = None,
    axes: Sequence[Axes] | None = None,
    figsize: tuple[float, float] | None = None,
    title: str | None = None,
    save: str | Path | None = None,
) -> Figure | Sequence[Axes]:
    """One bar chart per modality: completeness R^2 (blue) and independence R^2 (orange, its p-value above).

    Bars, in the panel of modality i (ticks "X from C", "X from Z", "X from (Z, C)", "C_<other> from Z, linear",
    "C_<other> from Z"): R^2 of the prepared inputs X_i from C_i alone, from Z_i alone and from (Z_i, C_i)
    (completeness: higher is better), then R^2 of C_{3-i} from Z_i by ridge regression and by kNN regression
    (independence: near 0 is better), with the permutation p-value of the kernel dependence test. Bars missing from
    the result (no completeness without prepared inputs) are left out. R^2 can be negative (worse than predicting
    the mean).

    Parameters
    ----------
    data
        Data with the result of :func:`~indiseek.tl.diagnostics` in ``.uns[key]``, or that result itself
        (``{"rna": {...}, "protein": {...}, "params": {...}}``, e.g. read back from a JSON report).
    key
        ``.uns`` key of the result.
    modalities
        Modalities to draw, in order; default: those in the result among ``"rna"``, ``"protein"``.
    axes
        One axes per modality to draw into; a new figure otherwise.
    figsize
        Size of a new figure; default 3.2 inches wide per modality.
    title
        Figure title (e.g. the method's name).
    %(param_save)s

    Returns
    -------
    The figure, or ``axes`` when given.
    """
    if isinstance(data, MuData | AnnData):
        if key not in data.uns:
            raise KeyError(
                f"data.uns[{key!r}] not found (keys: {list(data.uns.keys())}): run `indiseek.tl.diagnostics` first."
            )
        result = data.uns[key]
    else:
        result = data
    if modalities is None:
        modalities = [m for m in _MODALITY_NAMES if m in result]
    missing = [m for m in modalities if m not in result]
    if missing or not modalities:
        raise KeyError(f"The diagnostics lack modalities {missing or ['rna', 'protein']} (keys: {list(result)}).")
    if not all(_bars(m, result[m]) for m in modalities):
        raise KeyError("The diagnostics hold no R^2 values: pass the result of `indiseek.tl.diagnostics`.")
    if axes is None:
        size = figsize or (3.2 * len(modalities), 3.6)
        fig, axes_ = plt.subplots(1, len(modalities), figsize=size, sharey=True, squeeze=False)
        panels = list(axes_[0])
    else:
        panels = list(axes)
        if len(panels) != len(modalities):
            raise ValueError(f"Got {len(panels)} axes for {len(modalities)} modalities.")
        fig = panels[0].figure
    for j, (ax, m) in enumerate(zip(panels, modalities, strict=True)):
        _panel(ax, m, result[m], show_ylabel=j == 0)
    low = min(0.0, *(v for m in modalities for _, v, _ in _bars(m, result[m]) if np.isfinite(v)))
    for ax in panels:
        ax.set_ylim(low - 0.05, 1.15)
    if title:
        fig.suptitle(title)
    return finish(fig, axes, save)


@dsp.dedent
def lambda_tradeoff(
    data: Any,
    chosen: float | None = None,
    ax: Axes | None = None,
    figsize: tuple[float, float] = (4.4, 3.4),
    title: str | None = None,
    save: str | Path | None = None,
) -> Figure | Axes:
    """Completeness (blue) and leak (orange) against lambda, from a sweep, with the chosen lambda marked.

    Completeness is the held-out R^2 of X_i from (Z_i, C_i), the leak the held-out R^2 of C_{3-i} from Z_i (kNN or
    linear, whichever is larger), each averaged over the modalities (:func:`~indiseek.tl.lambda_tradeoff`).

    Parameters
    ----------
    data
        A model after :meth:`~indiseek.IndiSeek.sweep_lambda` (or trained with ``lambda_="auto"``), the table the
        sweep returns, or :func:`~indiseek.tl.lambda_tradeoff`'s result (e.g. read back from a JSON report).
    chosen
        Lambda to mark; default: the model's choice, else :func:`~indiseek.tl.select_lambda`'s.
    %(param_ax)s
    figsize
        Size of a new figure.
    title
        Axes title.
    %(param_save)s

    Returns
    -------
    The figure, or ``ax`` when given.
    """
    from indiseek.tl import lambda_tradeoff as tradeoff
    from indiseek.tl import select_lambda

    table = getattr(data, "lambda_sweep_", data)
    if table is None:
        raise ValueError("The model has no lambda sweep: call model.sweep_lambda() or train with lambda_='auto'.")
    if isinstance(table, Mapping):
        table = pd.DataFrame(table)
        table = table.set_index("lambda") if "lambda" in table.columns else table
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"data must be a model, a sweep table or a trade-off table, got {type(data).__name__}.")
    curve = tradeoff(table)
    if chosen is None:
        choice = getattr(data, "lambda_choice_", None)
        chosen = choice["lambda"] if choice else select_lambda(curve)[0]
    if ax is None:
        fig, ax_ = plt.subplots(figsize=figsize)
    else:
        fig, ax_ = ax.figure, ax
    lambdas = curve.index.to_numpy(dtype=float)
    ax_.plot(lambdas, curve["completeness"], "o-", color=_COMPLETENESS_COLOR, label="completeness: X from (Z, C)")
    ax_.plot(lambdas, curve["leak"], "o-", color=_INDEPENDENCE_COLOR, label="leak: C_other from Z")
    if chosen is not None:
        ax_.axvline(chosen, color="black", linewidth=0.8, linestyle="--")
        ax_.annotate(f"chosen: {chosen:g}", (chosen, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                     textcoords="offset points", fontsize="x-small")  # fmt: skip
    ax_.set_xscale("log")
    ax_.set_xlabel("lambda")
    ax_.set_ylabel("held-out $R^2$ (mean over modalities)")
    ax_.legend(fontsize="x-small", loc="best")
    if title:
        ax_.set_title(title)
    return finish(fig, ax, save)
