"""Saving and loading models as tensors (safetensors) and JSON: nothing is pickled, nothing half-written."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from mudata import MuData, read_h5mu
from safetensors.torch import load_file, save_file

if TYPE_CHECKING:
    from ._indiseek import IndiSeek

_WEIGHTS, _INFO, _MDATA = "model.safetensors", "model.json", "mdata.h5mu"
#: Version of the files; 1 (no ``format`` entry) was written by indiseek 0.1.
FORMAT = 2


def _tensors(model: IndiSeek) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.module.state_dict().items()}


def save_model(model: IndiSeek, dir_path: str | Path, overwrite: bool = False, save_mudata: bool = False) -> None:
    """Write ``model`` to ``dir_path`` through a temporary sibling directory moved in place when complete."""
    dest = Path(dir_path)
    if dest.exists() and not overwrite:
        raise FileExistsError(f"{dest} already exists: pass overwrite=True or choose another directory.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
    old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        save_file(_tensors(model), tmp / _WEIGHTS)
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
                "n_proteins": inputs["protein"].n_output,
            },  # fmt: skip
            "train_times": model.train_times_,
            "history": {k: v.reset_index().to_dict(orient="list") for k, v in (model.history_ or {}).items()},
        }
        (tmp / _INFO).write_text(json.dumps(info, indent=1))
        if save_mudata:
            model.adata.write_h5mu(tmp / _MDATA)
        if dest.exists():
            dest.rename(old)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not dest.exists():
            old.rename(dest)
        raise
    shutil.rmtree(old, ignore_errors=True)


def load_model(cls, dir_path: str | Path, mdata: MuData | None, device: torch.device):
    """Rebuild a model saved by :func:`save_model`, registering ``mdata`` with the saved arguments."""
    from indiseek.module import IndiSeekModule

    path = Path(dir_path)
    if not (path / _INFO).is_file() or not (path / _WEIGHTS).is_file():
        raise FileNotFoundError(f"{path} does not hold a saved model ({_INFO} and {_WEIGHTS} expected).")
    info = json.loads((path / _INFO).read_text())
    if info.get("format") != FORMAT:
        raise ValueError(
            f"{path} was saved by an older indiseek (file format {info.get('format', 1)}, this version reads "
            f"{FORMAT}): its protein inputs used another CLR and its preparation lived outside the networks. "
            "Retrain the model with this version (IndiSeek(mdata, **params).train()), or load it with indiseek 0.1."
        )
    if mdata is None:
        if not (path / _MDATA).is_file():
            raise ValueError(f"No MuData was saved in {path}: pass the MuData to load the model with.")
        mdata = read_h5mu(path / _MDATA)
    cls.setup_mudata(mdata, **info["setup_args"])
    model = cls(mdata, **info["init_params"]["non_kwargs"])
    model.var_names_ = info["var_names"]  # the features the networks expect; queries are matched by name
    model.module = IndiSeekModule(**info["shapes"], **model._module_kwargs)
    model.module.load_state_dict(load_file(path / _WEIGHTS))
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
