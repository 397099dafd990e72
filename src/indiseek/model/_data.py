"""Checks of the MuData a user registers or embeds, with errors that name the problem and the fix."""

from __future__ import annotations

import warnings

import numpy as np
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


def _varying(x) -> int:
    """Number of features that are not constant across cells."""
    if sparse.issparse(x):
        x = sparse.csc_matrix(x)
        return int((x.max(0).toarray() != x.min(0).toarray()).sum())
    x = np.asarray(x)
    return int((x.max(0) != x.min(0)).sum())


def check_mudata(
    mdata: MuData,
    rna: str,
    protein: str,
    rna_layer: str | None,
    protein_layer: str | None,
    integer: bool = True,
) -> None:
    """Check that ``mdata`` holds usable RNA and protein counts of the same cells in the same order."""
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
    a, b = mdata[rna], mdata[protein]
    if a.n_obs != b.n_obs or not a.obs_names.equals(b.obs_names) or mdata.n_obs != a.n_obs:
        raise ValueError(
            f"Modalities {rna!r} ({a.n_obs} cells) and {protein!r} ({b.n_obs} cells) do not hold the same cells in "
            "the same order: run muon.pp.intersect_obs(mdata) (and mdata.update()) first."
        )
    if not mdata.obs_names.equals(a.obs_names):
        raise ValueError(
            "mdata.obs_names are not the modalities' cells in their order (a modality was replaced without an "
            "update): call mdata.update() first."
        )
    for name, adata in ((rna, a), (protein, b)):
        if adata.var_names.has_duplicates:
            dup = adata.var_names[adata.var_names.duplicated()][0]
            raise ValueError(
                f"mdata[{name!r}].var_names has duplicates (e.g. {dup!r}): call "
                f"mdata[{name!r}].var_names_make_unique() and mdata.update() first."
            )
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


def _reorder(adata, modality: str, names: list[str]):
    """``adata`` with the registered features ``names`` in registered order (itself when they already are)."""
    present = adata.var_names
    if list(present) == list(names):
        return adata
    idx = present.get_indexer(names)
    missing = [n for n, i in zip(names, idx, strict=True) if i < 0]
    if missing:
        raise ValueError(
            f"{len(missing)} of the {len(names)} registered features of modality {modality!r} are missing from these "
            f"cells (e.g. {missing[:5]}); the model needs every feature it was trained on (fill absent genes with "
            "zero counts if they were not measured)."
        )
    return adata[:, idx].copy()


def aligned_mudata(
    mdata: MuData,
    rna: str,
    protein: str,
    rna_layer: str | None,
    protein_layer: str | None,
    var_names: dict[str, list[str]],
    integer: bool = True,
) -> MuData:
    """Checked query cells with the registered features in registered order, matched by name.

    Returns ``mdata`` itself when its features are already in order, else a new MuData of reordered copies (the
    user's object is not modified).
    """
    check_mudata(mdata, rna, protein, rna_layer, protein_layer, integer)
    mods = {
        rna: _reorder(mdata[rna], rna, var_names["rna"]),
        protein: _reorder(mdata[protein], protein, var_names["protein"]),
    }
    if all(mods[m] is mdata[m] for m in mods):
        return mdata
    return MuData(mods)
