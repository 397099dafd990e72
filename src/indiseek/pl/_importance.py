"""Bar charts of masking importance per input coordinate, one panel per simulation record."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from indiseek._docs import dsp
from indiseek.defaults import record_label


def _title(record: Mapping[str, Any]) -> str:
    name = record_label(record)
    return f"{name}, lambda={record['lambda']:g}" if "lambda" in record else name


def _grid(records: Sequence[Mapping[str, Any]]) -> tuple[int, int, list[tuple[int, int]]]:
    """Rows = methods (and settings, if several), columns = lambdas; one row per record if cells collide.

    When every row holds a single panel (one lambda per method), the panels stand side by side instead.
    """
    several = len({r.get("setting") for r in records}) > 1
    row_keys = [(r.get("setting") if several else None, record_label(r)) for r in records]
    col_keys = [None if r.get("lambda") is None else float(r["lambda"]) for r in records]
    rows = list(dict.fromkeys(row_keys))
    cols = sorted(set(col_keys), key=lambda v: (v is None, v or 0.0))
    cells = [(rows.index(rk), cols.index(ck)) for rk, ck in zip(row_keys, col_keys, strict=True)]
    if len(set(cells)) < len(cells):
        return len(records), 1, [(i, 0) for i in range(len(records))]
    if len(rows) == len(records) and len(cols) > 1:
        return 1, len(records), [(0, i) for i in range(len(records))]
    return len(rows), len(cols), cells


def _panel(ax: Axes, record: Mapping[str, Any], ideal_color: str, other_color: str, show_ylabel: bool) -> None:
    values = np.asarray(record["importance"], dtype=float)
    d = len(values)
    ideal = set(int(j) for j in record.get("ideal", ()))
    std = record.get("importance_std")
    colors = [ideal_color if j in ideal else other_color for j in range(d)]
    ax.bar(
        np.arange(d),
        values,
        yerr=None if std is None else np.asarray(std, dtype=float),
        color=colors,
        capsize=2,
        error_kw={"elinewidth": 0.8},
    )
    ax.set_xticks(np.arange(d), [f"x{j + 1}" for j in range(d)])
    ax.set_ylim(0, 1)
    ax.set_title(_title(record), fontsize="medium")
    if ideal:
        share = values[sorted(ideal)].sum()
        ax.text(0.97, 0.95, f"ideal: {share:.2f}", transform=ax.transAxes, ha="right", va="top", fontsize="small")
    if show_ylabel:
        ax.set_ylabel("importance")


@dsp.dedent
def importance(
    results: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    ax: Axes | Sequence[Axes] | np.ndarray | None = None,
    save: str | Path | None = None,
    *,
    ideal_color: str = "tab:orange",
    other_color: str = "tab:gray",
    panel_size: tuple[float, float] = (2.6, 2.2),
    dpi: int = 150,
) -> Figure:
    """Draw the importance of each input coordinate, as in the paper's simulation figures.

    Parameters
    ----------
    results
        One record of :func:`~indiseek.sim.run_setting` or a list of them (e.g. from
        :func:`~indiseek.sim.run_sweep`). A record needs ``importance`` (one value per coordinate) and
        may have ``importance_std`` (error bars), ``ideal`` (0-based indices of the ideal coordinates,
        coloured ``ideal_color``), ``method`` and ``lambda`` (panel title and grid position).
    ax
        Axes to draw on: one per record (a single Axes for a single record). By default a new figure
        with methods as rows and lambdas as columns.
    %(param_save)s
    ideal_color, other_color
        Colours of the bars of ideal and of other coordinates.
    panel_size
        Width and height of one panel in inches, for a new figure.
    dpi
        Resolution when saving to a raster format.

    Returns
    -------
    The matplotlib figure (not shown; no global pyplot state is touched when ``ax`` is None).
    """
    records = [results] if isinstance(results, Mapping) else list(results)
    if not records:
        raise ValueError("`results` is empty.")
    if ax is None:
        n_rows, n_cols, cells = _grid(records)
        fig = Figure(figsize=(panel_size[0] * n_cols, panel_size[1] * n_rows), layout="constrained")
        grid = np.atleast_2d(fig.subplots(n_rows, n_cols, squeeze=False, sharey=True))
        axes = [grid[i, j] for i, j in cells]
        for i, j in np.ndindex(grid.shape):
            if (i, j) not in cells:
                grid[i, j].set_visible(False)
        settings = {r.get("setting") for r in records}
        if len(settings) == 1 and None not in settings:
            fig.suptitle(f"Setting {settings.pop()}")
    else:
        axes = [ax] if isinstance(ax, Axes) else list(np.ravel(np.asarray(ax, dtype=object)))
        if len(axes) < len(records):
            raise ValueError(f"Got {len(axes)} axes for {len(records)} records; give one Axes per record.")
        cells = [(0, k) for k in range(len(records))]
        fig = axes[0].get_figure()
    for k, (record, target) in enumerate(zip(records, axes, strict=False)):
        _panel(target, record, ideal_color, other_color, show_ylabel=cells[k][1] == 0)
    if any(r.get("ideal") for r in records):
        handles = [Patch(color=ideal_color, label="ideal"), Patch(color=other_color, label="other")]
        if ax is None:
            fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False, fontsize="small")
        else:
            axes[0].legend(handles=handles, loc="upper left", frameon=False, fontsize="small")
    if save is not None:
        fig.savefig(save, dpi=dpi)
    return fig
