"""Checks of the MuData a user registers or embeds, with errors that name the problem and the fix."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from mudata import MuData
from scipy import sparse

#: Largest total count of a cell accepted as raw counts (float32 normalisation stays exact far below).
_MAX_TOTAL = 1e12


def _layer(adata, layer: str | None, modality: str):
    if layer is None:
        return adata.X
    if layer not in adata.layers:
        raise KeyError(
            f"Layer {layer!r} is not in mdata[{modality!r}].layers (it has {list(adata.layers)}): pass the layer "
            "that holds the raw counts, or None for .X."
        )
    return adata.layers[layer]


def check_counts(x, modality: str, obs_names, integer: bool = True) -> None:
    """Raise if counts are non-numeric, non-finite, negative, non-integer (unless allowed) or if a cell has none."""
    values = x.data if sparse.issparse(x) else np.asarray(x)
    if not np.issubdtype(values.dtype, np.number):
        raise TypeError(f"The {modality} counts are not numeric ({values.dtype}).")
    if not np.isfinite(values).all():
        raise ValueError(f"The {modality} counts contain NaN or infinite values: register raw counts.")
    if (values < 0).any():
        raise ValueError(
            f"The {modality} counts contain negative values: register raw (non-negative) counts, not normalised or "
            "scaled data."
        )
    if integer and np.issubdtype(values.dtype, np.floating) and (values != np.round(values)).any():
        raise ValueError(
            f"The {modality} counts are not whole numbers (log-normalised or scaled data?): register the raw counts "
            "(e.g. a 'counts' layer). For corrected counts (ambient RNA removal, denoised ADT), pass "
            "allow_non_integer=True to setup_mudata."
        )
    totals = np.asarray(x.sum(1, dtype=np.float64)).ravel()
    empty = np.flatnonzero(totals == 0)
    if len(empty):
        names = ", ".join(map(str, np.asarray(obs_names)[empty[:5]]))
        raise ValueError(
            f"{len(empty)} cells have zero {modality} counts (e.g. {names}); remove them first, e.g. "
            f"mu.pp.filter_obs(mdata, '{modality}:total_counts', lambda x: x > 0) after computing QC metrics, "
            "or subset mdata to cells with counts in both modalities."
        )
    huge = np.flatnonzero(totals > _MAX_TOTAL)
    if len(huge):
        raise ValueError(
            f"Cell {np.asarray(obs_names)[huge[0]]} has {totals[huge[0]]:.3g} {modality} counts in total, beyond what "
            f"a sequencer counts (at most {_MAX_TOTAL:.0e} here): register raw counts."
        )


def _varying(x, block: int = 16384) -> int:
    """Number of features that are not constant across cells."""
    if sparse.issparse(x):  # a block of rows at a time: no column-major copy of all the counts
        x = sparse.csr_matrix(x)
        high, low = np.full(x.shape[1], -np.inf), np.full(x.shape[1], np.inf)
        for start in range(0, x.shape[0], block):
            rows = x[start : start + block]
            high = np.maximum(high, rows.max(0).toarray().ravel())
            low = np.minimum(low, rows.min(0).toarray().ravel())
        return int((high != low).sum())
    x = np.asarray(x)
    return int((x.max(0) != x.min(0)).sum())


def check_cells(mdata: MuData, rna: str, protein: str) -> None:
    """A MuData with both modalities, unique cell names, and every modality's cells among ``mdata.obs_names``."""
    if not isinstance(mdata, MuData):
        raise TypeError(
            f"Expected a MuData object, got {type(mdata).__name__}; indiseek.datasets.from_anndata converts an "
            "AnnData with protein counts in .obsm."
        )
    for name in (rna, protein):
        if name not in mdata.mod:
            raise KeyError(
                f"Modality {name!r} is not in the MuData (it has {list(mdata.mod)}): pass "
                "modalities={'rna_layer': <RNA modality>, 'protein_layer': <protein modality>}."
            )
    if rna == protein:
        raise ValueError("The RNA and protein modalities must differ.")
    if mdata.obs_names.has_duplicates:
        dup = mdata.obs_names[mdata.obs_names.duplicated()][0]
        raise ValueError(f"mdata.obs_names has duplicates (e.g. {dup!r}): call mdata.obs_names_make_unique() first.")
    for name in (rna, protein):
        adata = mdata[name]
        if adata.obs_names.has_duplicates:
            dup = adata.obs_names[adata.obs_names.duplicated()][0]
            raise ValueError(
                f"mdata[{name!r}].obs_names has duplicates (e.g. {dup!r}): call "
                f"mdata[{name!r}].obs_names_make_unique() and mdata.update() first."
            )
        unknown = adata.obs_names[~adata.obs_names.isin(mdata.obs_names)]
        if len(unknown):
            raise ValueError(
                f"{len(unknown)} cells of modality {name!r} are not in mdata.obs_names (e.g. {unknown[0]!r}; a "
                "modality was replaced without an update?): call mdata.update() first."
            )
        if adata.var_names.has_duplicates:
            dup = adata.var_names[adata.var_names.duplicated()][0]
            raise ValueError(
                f"mdata[{name!r}].var_names has duplicates (e.g. {dup!r}): call "
                f"mdata[{name!r}].var_names_make_unique() and mdata.update() first."
            )


def check_mudata(
    mdata: MuData,
    rna: str,
    protein: str,
    rna_layer: str | None,
    protein_layer: str | None,
    integer: bool = True,
) -> np.ndarray:
    """Check that ``mdata`` holds usable RNA and protein counts; return which of its cells have both (a mask).

    The modalities may hold different cells (unpaired cells, as ``muon`` stores them): each modality's cells must
    be cells of ``mdata`` (``mdata.obs_names``).
    """
    check_cells(mdata, rna, protein)
    a, b = mdata[rna], mdata[protein]
    x_rna, x_protein = _layer(a, rna_layer, rna), _layer(b, protein_layer, protein)
    check_counts(x_rna, rna, a.obs_names, integer)
    check_counts(x_protein, protein, b.obs_names, integer)
    for name, x, what in ((rna, x_rna, "genes"), (protein, x_protein, "proteins")):
        if _varying(x) < 2:
            raise ValueError(
                f"The {name!r} modality needs at least 2 {what} that vary across cells; it has {_varying(x)} of "
                f"{x.shape[1]}."
            )
    if a.n_vars < b.n_vars:
        warnings.warn(
            f"The RNA modality {rna!r} has fewer features ({a.n_vars}) than the protein modality {protein!r} "
            f"({b.n_vars}): are they swapped? Pass modalities={{'rna_layer': ..., 'protein_layer': ...}}.",
            UserWarning,
            stacklevel=3,
        )
    return mdata.obs_names.isin(a.obs_names) & mdata.obs_names.isin(b.obs_names)


def is_aligned(mdata: MuData, rna: str, protein: str) -> bool:
    """Whether both modalities hold exactly ``mdata``'s cells in its order (what scvi-tools can register)."""
    return mdata[rna].obs_names.equals(mdata.obs_names) and mdata[protein].obs_names.equals(mdata.obs_names)


def paired_mudata(mdata: MuData, rna: str, protein: str, paired: np.ndarray) -> MuData:
    """A new MuData of the cells in both modalities, in ``mdata``'s order, with ``mdata``'s own obs columns."""
    names = mdata.obs_names[paired]
    out = MuData({rna: mdata[rna][names].copy(), protein: mdata[protein][names].copy()})
    for column in mdata.obs.columns:
        if column not in out.obs.columns:  # columns of mdata itself (e.g. "batch"), not of a modality
            values = mdata.obs.loc[names, column]
            if isinstance(values.dtype, pd.CategoricalDtype):
                values = values.cat.remove_unused_categories()  # e.g. batches of unpaired cells only
            out.obs[column] = values.values
    return out


def _feature_index(present, modality: str, names: list[str]) -> np.ndarray | None:
    """Columns of the registered features ``names`` among ``present`` (``None`` when they are already in order)."""
    if list(present) == list(names):
        return None
    idx = present.get_indexer(names)
    missing = [n for n, i in zip(names, idx, strict=True) if i < 0]
    if missing:
        raise ValueError(
            f"{len(missing)} of the {len(names)} registered features of modality {modality!r} are missing from these "
            f"cells (e.g. {missing[:5]}); the model needs every feature it was trained on (fill absent genes with "
            "zero counts if they were not measured)."
        )
    return idx


def modality_counts(
    mdata: MuData,
    modality: str,
    layer: str | None,
    var_names: list[str],
    integer: bool = True,
) -> tuple[np.ndarray, object]:
    """One modality's checked counts with the registered features in registered order, and their rows in ``mdata``.

    Cells are matched to ``mdata.obs_names`` by name, so rows land on their cells whatever the modality's order.
    """
    adata = mdata[modality]
    x = _layer(adata, layer, modality)
    idx = _feature_index(adata.var_names, modality, var_names)
    if idx is not None:
        x = x[:, idx]
    check_counts(x, modality, adata.obs_names, integer)
    return mdata.obs_names.get_indexer(adata.obs_names), x


def check_batches(mdata: MuData, batch_key: object, paired: np.ndarray) -> None:
    """``mdata.obs[batch_key]`` exists and names the batch of every cell with both modalities."""
    if not isinstance(batch_key, str):
        raise TypeError(f"batch_key must be a column name (a string), got {type(batch_key).__name__}.")
    if batch_key not in mdata.obs.columns:
        raise KeyError(
            f"batch_key {batch_key!r} is not a column of mdata.obs (columns: {list(mdata.obs.columns)}); a column of "
            "a modality's .obs reaches mdata.obs with mdata.update()."
        )
    column = mdata.obs[batch_key]
    if isinstance(column.dtype, pd.CategoricalDtype):
        unused = [c for c in column.cat.categories if c not in set(column.dropna())]
        if unused:
            raise ValueError(
                f"mdata.obs[{batch_key!r}] has batches without cells ({unused[:5]}), left by subsetting: call "
                f"mdata.obs[{batch_key!r}] = mdata.obs[{batch_key!r}].cat.remove_unused_categories() first."
            )
    missing = column.isna().to_numpy() & paired
    if missing.any():
        raise ValueError(
            f"{int(missing.sum())} cells have no batch in mdata.obs[{batch_key!r}] (e.g. "
            f"{mdata.obs_names[missing][0]!r}): fill it in for every cell."
        )


def batch_codes(mdata: MuData, batch_key: str, batches: list[str]) -> np.ndarray:
    """Each cell's position in the model's ``batches`` (matched by name), or an error naming unseen batches."""
    if batch_key not in mdata.obs.columns:
        raise KeyError(
            f"These cells have no batch column {batch_key!r} in mdata.obs (the model was registered with "
            f"batch_key={batch_key!r})."
        )
    names = mdata.obs[batch_key].astype(str).to_numpy()
    codes = pd.Index(batches).get_indexer(names)
    if (codes < 0).any():
        unseen = sorted(set(names[codes < 0]))
        raise ValueError(
            f"Batches {unseen} were not in the training data: map these cells with "
            "IndiSeek.load_query_data(mdata, model), which centres each new batch on its own cells."
        )
    return codes
