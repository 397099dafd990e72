"""Argument checks shared by the tools: each error names the argument, the offending key and what to do."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
from anndata import AnnData
from mudata import MuData

from indiseek._checks import check_choice, check_int, check_real, check_str

__all__ = ["check_choice", "check_int", "check_real", "check_str"]  # re-exported for the tools


def check_data(data: object, name: str = "mdata", mudata_only: bool = False) -> None:
    """A TypeError unless ``data`` is a MuData (or, unless ``mudata_only``, an AnnData)."""
    kinds = (MuData,) if mudata_only else (MuData, AnnData)
    if not isinstance(data, kinds):
        expected = "a MuData" if mudata_only else "a MuData or an AnnData"
        raise TypeError(f"{name} must be {expected}, got {type(data).__name__}.")


def obs_column(data: MuData | AnnData, key: object, name: str, hint: str = "") -> pd.Series:
    """``data.obs[key]``, or a KeyError naming the argument and listing the columns."""
    key = check_str(key, name)
    if key not in data.obs.columns:
        raise KeyError(f"{name} {key!r} is not a column of .obs (columns: {list(data.obs.columns)}). {hint}".rstrip())
    return data.obs[key]


def obs_key(data: MuData | AnnData, key: object, name: str) -> str:
    """The ``.obs`` column meant by ``key``: ``key`` itself or, in a MuData without it, a modality's ``<mod>:key``.

    Modalities that all have the column must agree on it. A KeyError naming the argument when they do not, or
    when only a modality's own ``.obs`` has the column; an absent column is left to :func:`obs_column`'s error.
    """
    key = check_str(key, name)
    if key in data.obs.columns or not isinstance(data, MuData):
        return key
    prefixed = [column for column in data.obs.columns if column.partition(":")[2] == key]
    if prefixed and all(
        data.obs[column].astype(object).equals(data.obs[prefixed[0]].astype(object)) for column in prefixed
    ):
        return prefixed[0]
    if prefixed:
        raise KeyError(
            f"{name} {key!r} is not a column of .obs; the modalities' columns differ: use one of {prefixed}."
        )
    if any(key in data.mod[m].obs.columns for m in data.mod):
        raise KeyError(
            f"{name} {key!r} is a column of a modality's .obs but not of the MuData's: call `mdata.pull_obs()` "
            "(or `mdata.update()`) first."
        )
    return key  # obs_column's error lists the columns


def labels(data: MuData | AnnData, key: object, name: str) -> pd.Series:
    """The labels ``data.obs[key]`` (missing ones stay NaN), or an error when the column is absent or all missing."""
    hint = (
        f"Pass as {name} the column that holds the cells' batches."
        if name == "batch_key"
        else f"Pass as {name} the column that holds the cells' types, or label the cells first (e.g. clusters from "
        "`sc.tl.leiden`) and pass that column."
    )
    column = obs_column(data, key, name, hint)
    if column.isna().all():
        raise ValueError(
            f"The labels in .obs[{key!r}] ({name}) are all missing: fill in the labels or pass another column."
        )
    return column


def numeric_obs_column(data: MuData | AnnData, key: object, name: str, hint: str = "") -> pd.Series:
    """``data.obs[key]`` as floats: a TypeError when it does not hold numbers, a ValueError when all are missing."""
    column = obs_column(data, key, name, hint)
    try:
        values = pd.to_numeric(column, errors="raise").astype(np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f".obs[{key!r}] ({name}) must hold numbers, got dtype {column.dtype}: {err}") from None
    if values.isna().all():
        raise ValueError(f".obs[{key!r}] ({name}) is all missing (NaN). {hint}".rstrip())
    return values


def matrix(
    data: MuData | AnnData,
    rep: object,
    name: str,
    hint: str = "",
    arrays: bool = False,
    missing_rows: bool = False,
    fits: bool = False,
) -> np.ndarray:
    """``data.obsm[rep]`` (or ``rep`` itself, an array, when ``arrays``) as a finite 2-D float64 array.

    With ``fits``, a 3-D array cells x fits x features (several fits of one representation) is returned as it is,
    and a matrix as one fit.

    Errors name the argument: a KeyError listing the ``.obsm`` keys when ``rep`` is not one of them, a TypeError
    when it is neither a key (nor an array) or does not hold numbers, a ValueError for NaN or infinite values.
    With ``missing_rows``, rows holding NaN are allowed (a cell without the representation) and returned as they
    are; infinite values are still an error.
    """
    if isinstance(rep, str):
        if rep not in data.obsm:
            raise KeyError(f"{name}: .obsm[{rep!r}] not found (keys: {list(data.obsm.keys())}). {hint}".rstrip())
        x, label = data.obsm[rep], f".obsm[{rep!r}]"
    elif arrays and not isinstance(rep, numbers.Number):
        x, label = rep, f"the {name} array"
    else:
        kind = "an .obsm key or an array" if arrays else "an .obsm key (a string)"
        raise TypeError(f"{name} must be {kind}, got {type(rep).__name__}.")
    x = x.to_numpy() if isinstance(x, pd.DataFrame) else x.toarray() if hasattr(x, "toarray") else x
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: {label} must hold numbers, got dtype {np.asarray(x).dtype}.") from None
    if x.ndim == 1:
        x = x[:, None]
    if fits and x.ndim == 2:
        x = x[:, None]
    if x.ndim != (3 if fits else 2) or 0 in x.shape[1:]:
        kind = "cells x fits x features array" if fits else "cells x features matrix"
        raise ValueError(f"{name}: {label} must be a {kind}, got shape {x.shape}.")
    rows = x.reshape(len(x), -1)
    bad = np.isinf(rows).any(axis=1) if missing_rows else ~np.isfinite(rows).all(axis=1)
    if bad.any():
        if missing_rows:
            raise ValueError(
                f"{name}: {label} contains infinite values (in {int(bad.sum())} of {len(x)} cells); "
                "remove them or mark a missing representation with NaN."
            )
        raise ValueError(
            f"{name}: {label} contains NaN or infinite values (in {int(bad.sum())} of {len(x)} cells); "
            "remove or impute them first."
        )
    return x
