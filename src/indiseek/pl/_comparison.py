"""Figure 5 of the paper: a metric per method across seeds (and optionally across lambda), mean +- std."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from indiseek._docs import dsp

from ._utils import finish

_METHOD_NAMES = {"indiseek": "IndiSeek", "factorizedcl": "FactorizedCL", "infodisen": "InfoDisen", "clip": "CLIP"}


def _summary(table: pd.DataFrame, by: list[str], metric: str) -> pd.DataFrame:
    grouped = table.groupby(by, sort=False)[metric]
    return pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=1).fillna(0.0), "n": grouped.size()})


@dsp.dedent
def method_comparison(
    results: pd.DataFrame | Sequence[Mapping[str, Any]],
    metric: str = "rho",
    method_key: str = "method",
    x: str | None = None,
    order: Sequence[str] | None = None,
    logx: bool = True,
    show_points: bool = True,
    ax: Axes | None = None,
    figsize: tuple[float, float] = (5.0, 4.0),
    title: str | None = None,
    save: str | Path | None = None,
) -> Figure | Axes:
    """A metric per method over repeated runs: mean with +- one standard deviation error bars.

    Parameters
    ----------
    results
        One row (or dict) per run, with columns ``method_key`` and ``metric`` (and ``x`` if given), e.g.
        ``[{"method": "indiseek", "seed": 0, "lambda": 10.0, "rho": 0.91}, ...]``. NaN metrics are left out.
    metric
        Column to plot (``"rho"``, ``"ari"``, ``"nmi"``, ...).
    method_key
        Column naming the method.
    x
        Optional column for the horizontal axis (e.g. ``"lambda"``): one line per method across its values.
        Without it, one bar per method.
    order
        Order of the methods; default: order of first appearance.
    logx
        Logarithmic horizontal axis when ``x`` is given and all its values are positive.
    show_points
        Also draw the individual runs.
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
    table = pd.DataFrame(list(results)) if not isinstance(results, pd.DataFrame) else results.copy()
    needed = [method_key, metric] + ([x] if x else [])
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise KeyError(f"results lack columns {missing} (columns: {list(table.columns)}).")
    table = table.dropna(subset=[metric])
    table[method_key] = table[method_key].astype(str)
    methods = list(order) if order is not None else list(dict.fromkeys(table[method_key]))
    if not methods:
        raise ValueError("No results to plot.")
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(methods)}
    labels = {m: _METHOD_NAMES.get(m.lower(), m) for m in methods}
    rng = np.random.default_rng(0)

    if ax is None:
        fig, ax_ = plt.subplots(figsize=figsize)
    else:
        fig, ax_ = ax.figure, ax
    if x is None:
        summary = _summary(table, [method_key], metric).reindex(methods)
        pos = np.arange(len(methods))
        ax_.bar(pos, summary["mean"], yerr=summary["std"], capsize=4, color=[colors[m] for m in methods], alpha=0.8)
        if show_points:
            for i, m in enumerate(methods):
                values = table.loc[table[method_key] == m, metric].to_numpy()
                jitter = rng.uniform(-0.15, 0.15, size=len(values))
                ax_.scatter(i + jitter, values, s=10, color="black", zorder=3)
        ax_.set_xticks(pos, [labels[m] for m in methods])
    else:
        summary = _summary(table, [method_key, x], metric)
        for m in methods:
            if m not in summary.index.get_level_values(0):
                continue
            part = summary.loc[m].sort_index()
            xs = part.index.to_numpy(dtype=float)
            ax_.errorbar(xs, part["mean"], yerr=part["std"], marker="o", capsize=3, color=colors[m], label=labels[m])
            if show_points:
                runs = table[table[method_key] == m]
                ax_.scatter(runs[x].astype(float), runs[metric], s=8, color=colors[m], alpha=0.4)
        if logx and (table[x].astype(float) > 0).all():
            ax_.set_xscale("log")
        ax_.set_xlabel(x)
        ax_.legend(frameon=False)
    ax_.set_ylabel(metric)
    if title:
        ax_.set_title(title)
    return finish(fig, ax, save)
