"""Saving and loading models as tensors (safetensors) and JSON: nothing is pickled, nothing half-written.

A save replaces only this package's files; a load reads nothing edited, damaged or linked from elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from mudata import MuData, read_h5mu
from safetensors.torch import load_file, save_file

from ._sweep import set_lambda
from ._utils import non_finite

if TYPE_CHECKING:
    from ._indiseek import IndiSeek

_WEIGHTS, _INFO, _MDATA = "model.safetensors", "model.json", "mdata.h5mu"
_FILES = (_WEIGHTS, _INFO, _MDATA)
#: Version of the files; 1 (no ``format`` entry) was written by indiseek 0.1.
FORMAT = 2


_SPLIT = "_split."  # prefix of the saved training/validation cell indices (not module state)


def _tensors(model: IndiSeek) -> dict[str, torch.Tensor]:
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.module.state_dict().items()}
    for name in ("train", "validation"):
        indices = getattr(model, f"{name}_indices", None)
        if indices is not None:
            tensors[_SPLIT + name] = torch.as_tensor(np.asarray(indices, dtype=np.int64))
    return tensors


def _digest(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.numpy().tobytes()).hexdigest()


def _names_digest(names) -> str:
    return hashlib.sha256("\n".join(map(str, names)).encode()).hexdigest()


def _checksum(info: dict) -> str:
    """SHA-256 of the JSON record without its own checksum, so that any edit of ``model.json`` is detected."""
    body = {k: v for k, v in info.items() if k != "checksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def check_destination(dest: Path, overwrite: bool) -> None:
    """Refuse a destination that is not a directory of this package's files, or an existing save without overwrite."""
    if dest.is_symlink():
        raise FileExistsError(f"{dest} is a symbolic link: save into a real directory.")
    if dest.exists() and not dest.is_dir():
        raise FileExistsError(f"{dest} exists and is not a directory: choose a directory path.")
    present = sorted(p.name for p in dest.iterdir()) if dest.is_dir() else []
    ours = set(_FILES) | {p.name for f in _FILES for p in dest.glob(f".{f}.tmp-*")} if present else set()
    foreign = [name for name in present if name not in ours]  # an interrupted save's leftovers are ours
    if foreign:
        raise FileExistsError(
            f"{dest} holds files that are not a saved model ({', '.join(foreign[:5])}); save() writes only "
            f"{', '.join(_FILES)} and never deletes other files: choose an empty or new directory."
        )
    if present and not overwrite:
        raise FileExistsError(f"{dest} already holds a saved model: pass overwrite=True or choose another directory.")


def save_model(model: IndiSeek, dir_path: str | Path, overwrite: bool = False, save_mudata: bool = False) -> None:
    """Write ``model``'s files into ``dir_path``, each written beside its destination and moved in place when complete.

    Only this package's files are written or replaced. ``model.json``, moved last, records a SHA-256 digest of every
    tensor, so a save interrupted between two moves is detected on load rather than read as a mixture.
    """
    dest = Path(dir_path)
    check_destination(dest, overwrite)
    tensors = _tensors(model)
    bad = non_finite(tensors)
    if bad:
        raise ValueError(f"The model's weights contain NaN or infinite values ({bad[0]}): not saved. Retrain it.")
    inputs = model.module.inputs
    info = {
        "format": FORMAT,
        "class": type(model).__name__,
        "indiseek_version": _version(),
        "init_params": model.init_params_,
        "setup_args": _jsonable(model.setup_args_),
        "var_names": model.var_names_,
        "shapes": {
            "n_genes": inputs["rna"].n_genes,
            "n_selected_genes": int(inputs["rna"].genes.shape[0]),
            "n_pcs": inputs["rna"].n_output,
            "n_proteins": inputs["protein"].n_proteins,
            "n_protein_pcs": None if inputs["protein"].components is None else inputs["protein"].n_output,
            "n_batches": inputs["rna"].n_batches,
        },
        "batches": model.batches_,
        "registered_cells": _names_digest(model.adata.obs_names),
        "train_times": model.train_times_,
        "history": {k: v.reset_index().to_dict(orient="list") for k, v in (model.history_ or {}).items()},
        "tensors": {k: _digest(v) for k, v in tensors.items()},
        "lambda_in_use": model.lambda_in_use,
        "lambda_sweep": None if model.lambda_sweep_ is None else model.lambda_sweep_.reset_index().to_dict("list"),
        "lambda_choice": model.lambda_choice_,
    }
    info["checksum"] = _checksum(info)
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = {name: dest / f".{name}.tmp-{tag}" for name in _FILES}
    try:
        save_file(tensors, tmp[_WEIGHTS])
        tmp[_INFO].write_text(json.dumps(info, indent=1))
        if save_mudata:
            model.mdata.write_h5mu(tmp[_MDATA])
        for name in (_MDATA, _WEIGHTS, _INFO):  # the record last: it certifies the rest
            if tmp[name].exists():
                os.replace(tmp[name], dest / name)
    except BaseException:
        for path in tmp.values():
            path.unlink(missing_ok=True)
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        raise
    if not save_mudata:
        (dest / _MDATA).unlink(missing_ok=True)  # a MuData of an earlier save would not match this model


def _read_info(path: Path) -> dict:
    """``model.json``, checked: parsed, unedited, of this format, with every field of the expected type."""
    try:
        info = json.loads((path / _INFO).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        msg = f"{path / _INFO} is not valid JSON ({err}): the save is damaged; save the model again."
        raise ValueError(msg) from None
    if not isinstance(info, dict):
        raise ValueError(f"{path / _INFO} does not hold a saved model's record.")
    if info.get("format") != FORMAT:
        raise ValueError(
            f"{path} was saved by an older indiseek (file format {info.get('format', 1)}, this version reads "
            f"{FORMAT}): its protein inputs used another CLR and its preparation lived outside the networks. "
            "Retrain the model with this version (IndiSeek(mdata, **params).train()), or load it with indiseek 0.1."
        )
    if info.get("checksum") != _checksum(info):
        raise ValueError(
            f"{path / _INFO} was modified after it was saved (its checksum does not match): the saved parameters, "
            "features or gene lists cannot be trusted. Save the model again."
        )
    expected = {"init_params": dict, "setup_args": dict, "var_names": dict, "shapes": dict, "tensors": dict}
    for field, kind in expected.items():
        if not isinstance(info.get(field), kind):
            raise ValueError(f"{path / _INFO}: field {field!r} is missing or not a {kind.__name__}.")
    return info


def _read_tensors(path: Path, digests: dict[str, str]) -> dict[str, torch.Tensor]:
    """``model.safetensors``, checked against the digests of ``model.json`` and for finite values."""
    try:
        tensors = load_file(path / _WEIGHTS)
    except Exception as err:  # safetensors raises its own error types for damaged files
        msg = f"{path / _WEIGHTS} cannot be read ({err}): the save is damaged; save the model again."
        raise ValueError(msg) from None
    if set(tensors) != set(digests) or any(_digest(v) != digests[k] for k, v in tensors.items()):
        raise ValueError(
            f"{path / _WEIGHTS} does not match {_INFO} (a tensor was changed, or the save was interrupted): "
            "save the model again."
        )
    bad = non_finite(tensors)
    if bad:
        raise ValueError(f"{path / _WEIGHTS} holds NaN or infinite values ({bad[0]}): save the model again.")
    return tensors


def load_model(cls, dir_path: str | Path, mdata: MuData | None, device: torch.device):
    """Rebuild a model saved by :func:`save_model`, registering ``mdata`` with the saved arguments."""
    from indiseek.module import IndiSeekModule

    path = Path(dir_path)
    links = [p for p in (path, path / _INFO, path / _WEIGHTS, path / _MDATA) if p.is_symlink()]
    if links:
        raise ValueError(f"{links[0]} is a symbolic link: load a model from the directory its files were saved in.")
    if not (path / _INFO).is_file() or not (path / _WEIGHTS).is_file():
        raise FileNotFoundError(f"{path} does not hold a saved model ({_INFO} and {_WEIGHTS} expected).")
    info = _read_info(path)
    tensors = _read_tensors(path, info["tensors"])
    if mdata is None:
        if not (path / _MDATA).is_file():
            raise ValueError(f"No MuData was saved in {path}: pass the MuData to load the model with.")
        mdata = read_h5mu(path / _MDATA)
    cls.setup_mudata(mdata, **info["setup_args"])
    params = info["init_params"]["non_kwargs"]
    params.setdefault("n_layers_shared", params["n_layers"])  # saves before it had its own depth: one for all
    params.setdefault("n_protein_pcs", None)  # saves before protein components: every antibody's CLR
    params.setdefault("n_layers_estimator", params["n_layers"])  # saves before it had its own depth
    params.setdefault("club_estimator", "gaussian")  # saves before it was a setting: the learned Gaussian
    params.setdefault("activation", "relu")  # saves before it was a setting: ReLU
    model = cls(mdata, **params)
    model.var_names_ = info["var_names"]  # the features the networks expect; queries are matched by name
    model.batches_ = info.get("batches")  # a query model's also holds the batches it was given
    model.module = IndiSeekModule(**info["shapes"], **model._module_kwargs)
    split = {k.removeprefix(_SPLIT): tensors.pop(k).numpy() for k in list(tensors) if k.startswith(_SPLIT)}
    for key, value in model.module.state_dict().items():  # saves before the blocks were weighted: equal weights
        if key.startswith("weight_"):
            tensors.setdefault(key, torch.ones_like(value))
    model.module.load_state_dict(tensors)
    if info.get("registered_cells") == _names_digest(model.adata.obs_names):  # the split indexes these cells
        model.train_indices_, model.validation_indices_ = split.get("train"), split.get("validation")
    if info.get("lambda_in_use") is not None:
        set_lambda(model.module, info["lambda_in_use"])
    if info.get("lambda_sweep") is not None:
        model.lambda_sweep_ = pd.DataFrame(info["lambda_sweep"]).set_index("lambda")
    model.lambda_choice_ = info.get("lambda_choice")
    model.module.to(device).eval()
    model.train_times_ = info.get("train_times", {})
    model.history_ = {k: pd.DataFrame(v).set_index("epoch") for k, v in info.get("history", {}).items()}
    model.is_trained_ = True
    return model


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _version() -> str:
    from indiseek import __version__

    return __version__
