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
_INPUTS_PREFIX = "inputs."


def _tensors(model: IndiSeek) -> dict[str, torch.Tensor]:
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.module.state_dict().items()}
    for modality, inputs in model.inputs.items():
        for name, value in inputs.state_dict().items():
            tensors[f"{_INPUTS_PREFIX}{modality}.{name}"] = torch.from_numpy(np.ascontiguousarray(value))
    return tensors


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
        info = {
            "class": type(model).__name__,
            "indiseek_version": _version(),
            "init_params": model.init_params_,
            "setup_args": _jsonable(model.setup_args_),
            "var_names": model.var_names_,
            "n_inputs": {m: int(inp.n_output) for m, inp in model.inputs.items()},
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
    if mdata is None:
        if not (path / _MDATA).is_file():
            raise ValueError(f"No MuData was saved in {path}: pass the MuData to load the model with.")
        mdata = read_h5mu(path / _MDATA)
    cls.setup_mudata(mdata, **info["setup_args"])
    model = cls(mdata, **info["init_params"])
    model.var_names_ = info["var_names"]  # the features the networks expect; queries are matched by name
    tensors = load_file(path / _WEIGHTS)
    for modality, inputs in model.inputs.items():
        prefix = f"{_INPUTS_PREFIX}{modality}."
        inputs.load_state_dict({k[len(prefix) :]: v.numpy() for k, v in tensors.items() if k.startswith(prefix)})
    n_inputs = info["n_inputs"]
    model.module = IndiSeekModule(n_inputs["rna"], n_inputs["protein"], **model._module_kwargs())
    model.module.load_state_dict({k: v for k, v in tensors.items() if not k.startswith(_INPUTS_PREFIX)})
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
