"""UMAPs of the learned representations, one row per representation, one column per label."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scanpy as sc
from anndata import AnnData
from matplotlib.figure import Figure
from mudata import MuData

from indiseek._checks import check_int
from indiseek._keys import embedding_key, umap_key
from indiseek._threads import keep_torch_threads

from ._utils import category_colors, finish

logger = logging.getLogger(__name__)

_ROWS = ("rna", "protein", "all")
#: Most cells :func:`embeddings` lays out by default: a UMAP of more cells takes minutes per panel and draws no more.
MAX_CELLS = 50_000


def _parts(method: str, row: str) -> list[str]:
    if row == "all":
        return [embedding_key(method)]
    return [embedding_key(method, "shared", row), embedding_key(method, "specific", row)]


def _representation(data: MuData | AnnData, method: str, row: str, cells: np.ndarray) -> tuple[np.ndarray | None, str]:
    """The row's matrix (``cells`` x features) and a title; `None` when none of its parts is stored."""
    keys = [k for k in _parts(method, row) if k in data.obsm]
    if row == "all" and not keys:  # no stored concatenation: build it from the parts
        keys = [k for r in ("rna", "protein") for k in _parts(method, r) if k in data.obsm]
    if not keys:
        return None, ""
    x = np.hstack([np.asarray(data.obsm[k][cells], dtype=np.float32) for k in keys])
    letters = {"shared_rna": "C_RNA", "specific_rna": "Z_RNA", "shared_protein": "C_prot", "specific_protein": "Z_prot"}
    named = [v for s, v in letters.items() for k in keys if k.endswith(s)]
    title = f"{row}: ({', '.join(named)})" if named else f"{row}: X_{method}"
    return x, title


def _subsample(labels: pd.Series | None, n: int, max_cells: int, random_state: int = 0) -> np.ndarray:
    """Sorted positions of at most ``max_cells`` of ``n`` cells, drawn at random within each label.

    Each label (missing labels count as one) gets its share of ``max_cells`` in proportion to its cells, rounded by
    largest remainder, so rare types keep their share; with ``labels=None`` the draw is simply random.
    """
    rng = np.random.default_rng(random_state)
    if n <= max_cells:
        return np.arange(n)
    if labels is None:
        return np.sort(rng.choice(n, size=max_cells, replace=False))
    codes = pd.Categorical(labels).codes
    sizes = np.bincount(codes + 1)  # missing labels (code -1) are stratum 0
    share = max_cells * sizes / n
    take = np.floor(share).astype(int)
    rest = max_cells - take.sum()
    take[np.argsort(take - share, kind="stable")[:rest]] += 1  # largest remainders first
    chosen = [rng.choice(np.flatnonzero(codes + 1 == s), size=k, replace=False) for s, k in enumerate(take) if k > 0]
    return np.sort(np.concatenate(chosen))


@keep_torch_threads
def embeddings(
    mdata: MuData | AnnData,
    method: str = "indiseek",
    color: str | Sequence[str] = ("celltype.l1", "celltype.l2"),
    rows: Sequence[str] = _ROWS,
    n_neighbors: int = 15,
    store: bool = False,
    random_state: int = 0,
    max_cells: int | None = MAX_CELLS,
    panel_size: float = 4.0,
    save: str | Path | None = None,
    **kwargs,
) -> Figure:
    """UMAPs of a model's representations coloured by labels (the paper's Figures 18 to 23).

    Rows (those whose embeddings are stored):

    - ``"rna"``: (C_RNA, Z_RNA) = ``X_{method}_shared_rna`` next to ``X_{method}_specific_rna``;
    - ``"protein"``: (C_protein, Z_protein) = ``X_{method}_shared_protein`` next to ``X_{method}_specific_protein``;
    - ``"all"``: ``X_{method}``, the concatenation (C_RNA, C_protein, Z_RNA, Z_protein).

    A method without specific features (CLIP) shows its shared ones alone. Each UMAP is computed with scanpy
    (:func:`scanpy.pp.neighbors` with the scikit-learn transformer, :func:`scanpy.tl.umap`) on a temporary
    AnnData, so ``mdata`` is left as it was unless ``store=True``.

    Above ``max_cells`` cells (default 50,000) a random subsample of ``max_cells`` cells is laid out, the same cells
    in every panel: drawn with ``random_state`` within each category of the categorical ``color`` column with the
    most categories, in proportion to its size (so rare types keep their share). The figure's title then says
    ``"n of N cells"`` and how they were drawn, and a log line says the same. A UMAP's time grows with its cells,
    and a panel of more than some tens of thousands of points shows no more structure.

    Parameters
    ----------
    mdata
        Data with the embeddings in ``.obsm`` (written by the model's ``write_embeddings()``) and labels in ``.obs``.
    method
        Prefix of the embeddings: ``"indiseek"``, ``"factorizedcl"``, ``"infodisen"`` or ``"clip"``.
    color
        ``.obs`` column(s), one column of panels each. Colours come from ``.uns[f"{key}_colors"]`` if present.
    rows
        Which of ``"rna"``, ``"protein"``, ``"all"`` to draw.
    n_neighbors
        Neighbours of the UMAP graph.
    store
        Also write the UMAP coordinates (cells x 2) to ``mdata.obsm[f"X_umap_{method}_{row}"]``; cells left out of
        a subsample get NaN rows.
    random_state
        Seed of the UMAP layout and of the subsample.
    max_cells
        Most cells to lay out (see above); ``None``: every cell, however many.
    panel_size
        Width and height of each panel, inches.
    save
        File to write the figure to.
    **kwargs
        Passed to :func:`scanpy.pl.umap` (e.g. ``legend_loc="on data"``, ``size``).

    Returns
    -------
    The figure.
    """
    colors = [color] if isinstance(color, str) else list(color)
    missing = [c for c in colors if c not in mdata.obs]
    if missing:
        raise KeyError(f"data.obs lacks {missing} (columns: {list(mdata.obs.columns)}).")
    unknown = [r for r in rows if r not in _ROWS]
    if unknown:
        raise ValueError(f"rows must be among {_ROWS}, got {unknown}.")
    if max_cells is not None:
        check_int(max_cells, "max_cells", 2, hint="A UMAP needs at least 2 cells; None lays out every cell.")
    n_cells = mdata.n_obs
    cells, note = np.arange(n_cells), None
    if max_cells is not None and n_cells > max_cells:
        categorical = [c for c in colors if not pd.api.types.is_numeric_dtype(mdata.obs[c])]
        strata = max(categorical, key=lambda c: mdata.obs[c].nunique(), default=None)  # the finest labels
        cells = _subsample(None if strata is None else mdata.obs[strata], n_cells, max_cells, random_state)
        how = f"stratified by {strata}" if strata is not None else "at random"
        note = f"{len(cells):,} of {n_cells:,} cells (random subsample {how}, seed {random_state})"
    reps = [(row, *_representation(mdata, method, row, cells)) for row in rows]
    reps = [r for r in reps if r[1] is not None]
    if not reps:
        raise KeyError(
            f"No X_{method}_* embeddings in data.obsm (keys: {list(mdata.obsm.keys())}). "
            "Write them first with `model.write_embeddings()`."
        )
    if note is not None:
        logger.info("UMAPs of %s; max_cells=None lays out every cell.", note)
    obs = pd.DataFrame({c: mdata.obs[c].values[cells] for c in colors}, index=mdata.obs_names[cells].astype(str))
    palettes = {}
    for c in colors:
        if not pd.api.types.is_numeric_dtype(obs[c]):
            obs[c] = obs[c].astype("category")
            full = category_colors(mdata, c)
            palettes[c] = [full.get(str(cat), "lightgrey") for cat in obs[c].cat.categories]
    fig, axes = plt.subplots(
        len(reps), len(colors), figsize=(panel_size * len(colors) * 1.5, panel_size * len(reps)), squeeze=False
    )
    for i, (row, x, title) in enumerate(reps):
        tmp = AnnData(obs=obs.copy(), obsm={"X_rep": x}, uns={f"{c}_colors": p for c, p in palettes.items()})
        sc.pp.neighbors(
            tmp,
            use_rep="X_rep",
            n_neighbors=min(n_neighbors, tmp.n_obs - 1),
            transformer="sklearn",
            random_state=random_state,
        )
        sc.tl.umap(tmp, random_state=random_state)
        if store:
            coords = tmp.obsm["X_umap"]
            if note is not None:
                coords = np.full((n_cells, 2), np.nan, dtype=coords.dtype)
                coords[cells] = tmp.obsm["X_umap"]
            mdata.obsm[umap_key(method, row)] = coords
        for j, c in enumerate(colors):
            sc.pl.umap(tmp, color=c, ax=axes[i, j], show=False, title=f"{title} - {c}", **kwargs)
    if note is not None:
        fig.suptitle(note)
    fig.tight_layout()
    return finish(fig, None, save)
