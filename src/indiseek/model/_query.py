"""Mapping query cells from batches the model was not trained on: each new batch centred on its own cells."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from mudata import MuData

from indiseek._keys import MODALITIES

from ._data import modality_counts

if TYPE_CHECKING:
    from ._indiseek import IndiSeek


@torch.no_grad()
def extend_batches(model: IndiSeek, mdata: MuData, batch_key: str, new: list[str]) -> None:
    """Give ``model``'s input preparation offsets for the batches ``new`` (already appended to ``model.batches_``).

    A new batch's offset is the mean of its cells' inputs before centring (log-normalised selected genes; CLR)
    minus the training mean: the estimate each training batch got. A batch without cells of a modality (unpaired
    cells) gets no offset for it.
    """
    names = mdata.obs[batch_key].astype(str).to_numpy()
    args = model.setup_args_
    integer = not args.get("allow_non_integer", False)
    for m, key in zip(MODALITIES, model._modality_keys(), strict=True):
        inputs = model.module.inputs[m]
        rows, x = modality_counts(mdata, key, args.get(f"{m}_layer"), model.var_names_[m], integer)
        offsets = []
        for b in new:
            cells = (names[rows] == b).nonzero()[0]
            if len(cells) == 0:  # a batch without this modality never needs its centre
                offsets.append(torch.zeros_like(inputs.mean))
                continue
            total = 0.0
            for chunk, _ in model._chunks(x[cells], None, 4096):
                total = total + inputs.uncentred(chunk).double().sum(0)
            offsets.append((total / len(cells)).float() - inputs.mean)
        inputs.add_batches(torch.stack(offsets))
