"""Helpers shared by the plotting functions: category colours and the return/save convention."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib.colors as mcolors
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scanpy.plotting import palettes


def category_colors(data, key: str, palette: Mapping[str, str] | None = None) -> dict[str, str]:
    """Colour of each category of ``data.obs[key]``, as scanpy would draw it.

    Uses ``palette`` if given, else ``data.uns[f"{key}_colors"]`` when it fits the categories,
    else scanpy's default palettes.
    """
    values = data.obs[key]
    cats = values.cat.categories if isinstance(values.dtype, pd.CategoricalDtype) else pd.Categorical(values).categories
    categories = [str(c) for c in cats]
    if palette is not None:
        missing = [c for c in categories if c not in palette]
        if missing:
            raise KeyError(f"palette has no colour for {missing}.")
        return {c: palette[c] for c in categories}
    stored = data.uns.get(f"{key}_colors")
    if stored is not None and len(stored) == len(categories):
        return {c: mcolors.to_hex(col) for c, col in zip(categories, stored, strict=True)}
    n = len(categories)
    base = palettes.default_20 if n <= 20 else palettes.default_28 if n <= 28 else palettes.default_102
    return {c: base[i % len(base)] for i, c in enumerate(categories)}


def finish(fig: Figure, ax: Axes | None, save: str | Path | None) -> Figure | Axes:
    """Save the figure if asked; return the axes when the caller gave them, else the figure."""
    if save is not None:
        fig.savefig(save, dpi=150, bbox_inches="tight")
    return ax if ax is not None else fig
