"""The specific stages over a grid of lambda, one shared stage: the label-free trade-off and its choice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scvi
import torch
from scvi.dataloaders import DataSplitter

from indiseek._checks import check_real
from indiseek._keys import MODALITIES
from indiseek.module import LambdaStack
from indiseek.tl import completeness, independence, select_lambda
from indiseek.train import SpecificTrainingPlan

from ._utils import non_finite, stage_epochs

if TYPE_CHECKING:
    from ._indiseek import IndiSeek

#: The paper's sweep, 10^-3 .. 10^3.
LAMBDA_GRID = tuple(10.0**j for j in range(-3, 4))
_OTHER = {"rna": "protein", "protein": "rna"}


def _specific_state(module) -> dict[str, torch.Tensor]:
    """What depends on lambda: the specific networks, the specific blocks' centres and scales, the blocks' weights."""
    keep = ("specific.", "center_specific_", "scale_specific_", "weight_")
    return {k: v.detach().clone() for k, v in module.state_dict().items() if k.startswith(keep)}


def set_lambda(module, lambda_: float) -> None:
    """Set the capture weight of both specific stages."""
    for stage in module.specific.values():
        stage.lambda_ = float(lambda_)


def check_lambdas(lambdas: Sequence[float]) -> list[float]:
    """Sorted, distinct, positive and finite lambdas (at least one)."""
    if isinstance(lambdas, str) or not isinstance(lambdas, Sequence | np.ndarray) or len(lambdas) == 0:
        raise TypeError(f"lambdas must be a non-empty sequence of numbers, e.g. {list(LAMBDA_GRID)}, got {lambdas!r}.")
    return sorted({check_real(v, "lambdas", minimum=0, strict=True) for v in lambdas})


def _fit_copies(
    model: IndiSeek, lambdas: Sequence[float], seeds: Sequence[int], stage: str, settings: dict
) -> tuple[LambdaStack, DataSplitter]:
    """Fit copies of the specific stages side by side on the trained shared stage, each ending with its epoch of
    lowest validation loss after :meth:`IndiSeek.train`'s budget; the model's own networks are not changed.
    """
    batch_size = settings["batch_size"]
    scvi.settings.seed = settings["seed"]
    splitter = DataSplitter(
        model.adata_manager, train_size=settings["train_size"], batch_size=batch_size, drop_last=True
    )
    splitter.setup()
    if splitter.n_train < batch_size:
        raise ValueError(
            f"Only {splitter.n_train} training cells for a batch of {batch_size}: pass a smaller batch_size."
        )
    epochs, min_steps = stage_epochs(settings["max_epochs"], splitter.n_train // batch_size)
    trainer_kwargs = {
        **settings["trainer_kwargs"], "early_stopping": False,
        "check_val_every_n_epoch": 1 if splitter.n_val > 0 else None, **({"min_steps": min_steps} if min_steps else {}),
    }  # fmt: skip
    stack = LambdaStack(model.module, lambdas, seeds)
    plan = SpecificTrainingPlan(stack, n_estimator_steps=settings["n_estimator_steps"], lr=settings["lr"])
    model.is_trained_ = False
    model._run_stage(stage, plan, splitter, epochs["specific"], settings["accelerator"], settings["devices"],
                     trainer_kwargs)  # fmt: skip
    return stack, splitter


def _load_copy(model: IndiSeek, stack: LambdaStack, index: int, lambda_: float, train_idx, batch_size: int) -> None:
    """Make copy ``index`` of ``stack`` the model's specific stages, with its own feature scales and weights."""
    module = model.module
    module.load_state_dict(stack.copy_state(index), strict=False)
    set_lambda(module, lambda_)
    module.eval()
    model._fit_embedding_scale(train_idx, batch_size)
    bad = non_finite(module.state_dict())
    if bad:
        raise FloatingPointError(f"lambda={lambda_:g} left NaN or infinite values in {bad[0]}: try a smaller lr.")
    model.is_trained_ = True


def sweep(model: IndiSeek, lambdas: Sequence[float], settings: dict) -> pd.DataFrame:
    """Fit the specific stages for each lambda on the trained shared stage; see :meth:`IndiSeek.sweep_lambda`."""
    inputs = {m: model.get_prepared_inputs(model.adata, modality=m) for m in MODALITIES}  # the paired cells
    # each lambda from the same fresh start (docs/method: why not warm)
    seed, batch_size = settings["seed"], settings["batch_size"]
    stack, splitter = _fit_copies(model, lambdas, [seed] * len(lambdas), "sweep", settings)
    module = model.module
    rows, states = [], {}
    for index, lambda_ in enumerate(lambdas):
        _load_copy(model, stack, index, lambda_, splitter.train_idx, batch_size)
        emb = model._embed(model.adata, 4096)
        row: dict[str, float] = {"lambda": lambda_}
        for m in MODALITIES:
            z, c, c_other = emb[(m, "specific")], emb[(m, "shared")], emb[(_OTHER[m], "shared")]
            ind = independence(model.adata, z, c_other, seed=seed)
            comp = completeness(model.adata, inputs[m], z, c, seed=seed)
            row |= {
                f"independence_r2_{m}": ind["r2"],
                f"independence_r2_linear_{m}": ind["r2_linear"],
                f"independence_p_value_{m}": ind["p_value"],
                f"completeness_r2_joint_{m}": comp["r2_joint"],
                f"completeness_r2_shared_{m}": comp["r2_shared"],
            }
        rows.append(row)
        states[lambda_] = _specific_state(module)
    table = pd.DataFrame(rows).set_index("lambda").sort_index()
    chosen, reason = select_lambda(table)
    model.lambda_states_ = states
    model.lambda_sweep_ = table
    model.lambda_choice_ = {"lambda": chosen, "reason": reason}
    use(model, chosen)
    return table


def use(model: IndiSeek, lambda_: float) -> None:
    """Load the specific stages fitted at ``lambda_`` by the last sweep."""
    states = getattr(model, "lambda_states_", None) or {}
    match = [v for v in states if np.isclose(v, lambda_)]
    if not match:
        raise KeyError(f"No specific stage was fitted at lambda={lambda_!r}; the sweep fitted {sorted(states)}.")
    model.module.load_state_dict(states[match[0]], strict=False)
    set_lambda(model.module, match[0])


def specific_fits(model: IndiSeek, n_fits: int, settings: dict) -> dict[str, np.ndarray]:
    """The specific features of the model's fit and of ``n_fits - 1`` more, cells x fits x features per modality;
    the model is left with other specific stages loaded (see :meth:`IndiSeek.write_specific_fits`).
    """
    lambda_ = model.lambda_in_use
    own = model._embed(model.mdata, 4096)
    fits = {m: [own[(m, "specific")]] for m in MODALITIES}
    seeds = [settings["seed"] + j for j in range(n_fits - 1)]
    stack, splitter = _fit_copies(model, [lambda_] * len(seeds), seeds, "fits", settings)
    for index in range(len(seeds)):
        _load_copy(model, stack, index, lambda_, splitter.train_idx, settings["batch_size"])
        emb = model._embed(model.mdata, 4096)
        for m in MODALITIES:
            fits[m].append(emb[(m, "specific")])
    return {m: np.stack(v, axis=1) for m, v in fits.items()}
