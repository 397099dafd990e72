"""Figure 4 of the paper: cell types ranked by mean theta, and theta ranks against reference ranks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from anndata import AnnData
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from mudata import MuData
from scipy.stats import spearmanr

from indiseek._docs import dsp

from ._utils import category_colors, finish


def _check_obs(data: MuData | AnnData, *keys: str) -> None:
    missing = [k for k in keys if k not in data.obs]
    if missing:
        raise KeyError(f"data.obs lacks {missing} (columns: {list(data.obs.columns)}).")


@dsp.dedent
def theta_ranking(
    mdata: MuData | AnnData,
    groupby: str = "celltype.l2",
    color_by: str | None = "celltype.l1",
    theta_key: str = "theta",
    palette: Mapping[str, str] | None = None,
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
    title: str | None = None,
    save: str | Path | None = None,
) -> Figure | Axes:
    """Bar chart of groups (e.g. level-2 cell types) ranked by mean theta, bars coloured by a coarser label.

    Parameters
    ----------
    mdata
        Data with ``.obs[theta_key]`` (from :func:`~indiseek.tl.theta_scores`), ``.obs[groupby]`` and
        ``.obs[color_by]``.
    groupby
        The groups to rank.
    color_by
        Coarser label of each group (its most frequent value among the group's cells) that colours the bars;
        `None` for a single colour.
    theta_key
        Per-cell score; NaN values are left out of the means.
    palette
        Colour of each ``color_by`` category; default: ``.uns[f"{color_by}_colors"]`` or scanpy's palette.
    %(param_ax)s
    figsize
        Size of a new figure; default grows with the number of groups.
    title
        Axes title.
    %(param_save)s

    Returns
    -------
    The figure, or ``ax`` when given.
    """
    keys = [theta_key, groupby] + ([color_by] if color_by else [])
    _check_obs(mdata, *keys)
    obs = mdata.obs[keys].dropna(subset=[groupby, theta_key])
    means = obs.groupby(groupby, observed=True)[theta_key].mean().sort_values(ascending=False)
    names = [str(g) for g in means.index]
    if color_by:
        parent = obs.groupby(groupby, observed=True)[color_by].agg(
            lambda s: s.mode().iloc[0] if s.notna().any() else np.nan
        )
        colors = category_colors(mdata, color_by, palette)
        bar_colors = [colors.get(str(parent[g]), "lightgrey") for g in means.index]
    else:
        bar_colors = ["tab:blue"] * len(means)

    if ax is None:
        fig, ax_ = plt.subplots(figsize=figsize or (max(4.0, 0.3 * len(means) + 2.0), 4.0))
    else:
        fig, ax_ = ax.figure, ax
    ax_.bar(np.arange(len(means)), means.to_numpy(), color=bar_colors)
    ax_.axhline(0, color="black", linewidth=0.8)
    ax_.set_xticks(np.arange(len(means)), names, rotation=90)
    ax_.set_xlim(-0.6, len(means) - 0.4)
    ax_.set_ylabel(f"mean {theta_key}")
    ax_.set_xlabel(groupby)
    if title:
        ax_.set_title(title)
    if color_by:
        shown = [c for c in colors if c in {str(parent[g]) for g in means.index}]
        handles = [Patch(color=colors[c], label=c) for c in shown]
        ax_.legend(handles=handles, title=color_by, frameon=False, bbox_to_anchor=(1.0, 1.0), loc="upper left")
    return finish(fig, ax, save)


@dsp.dedent
def rank_scatter(
    table: pd.DataFrame | tuple[float, pd.DataFrame],
    rho: float | None = None,
    score_label: str = "theta",
    reference_label: str = "WNN RNA weight",
    annotate: bool = True,
    ax: Axes | None = None,
    figsize: tuple[float, float] = (4.5, 4.5),
    save: str | Path | None = None,
) -> Figure | Axes:
    """Scatter of the groups' score ranks against their reference ranks, Spearman's rho in the title.

    Parameters
    ----------
    table
        The table returned by :func:`~indiseek.tl.rank_correlation` (columns ``score_rank`` and
        ``reference_rank``, index = groups), or its whole result ``(rho, table)``.
    rho
        Spearman's rho for the title; computed from the ranks when `None`.
    score_label, reference_label
        Names of the score and the reference on the axes.
    annotate
        Write each group's name next to its point.
    %(param_ax)s
    figsize
        Size of a new figure.
    %(param_save)s

    Returns
    -------
    The figure, or ``ax`` when given.
    """
    if isinstance(table, tuple):
        rho_given, table = table
        rho = rho_given if rho is None else rho
    missing = {"score_rank", "reference_rank"} - set(table.columns)
    if missing:
        raise KeyError(f"table lacks columns {sorted(missing)}: pass the table of indiseek.tl.rank_correlation.")
    if rho is None:
        rho = float(spearmanr(table["score_rank"], table["reference_rank"]).statistic)

    if ax is None:
        fig, ax_ = plt.subplots(figsize=figsize)
    else:
        fig, ax_ = ax.figure, ax
    x, y = table["reference_rank"].to_numpy(), table["score_rank"].to_numpy()
    n = len(table)
    ax_.plot([1, n], [1, n], color="lightgrey", linestyle="--", linewidth=1, zorder=0)
    ax_.scatter(x, y, s=20, color="tab:blue")
    if annotate:
        for name, xi, yi in zip(table.index, x, y, strict=True):
            ax_.annotate(str(name), (xi, yi), xytext=(3, 3), textcoords="offset points", fontsize="x-small")
    ax_.set_xlabel(f"rank of mean {reference_label}")
    ax_.set_ylabel(f"rank of mean {score_label}")
    ax_.set_title(f"Spearman's $\\rho$ = {rho:.3f}")
    ax_.set_aspect("equal", adjustable="datalim")
    return finish(fig, ax, save)
