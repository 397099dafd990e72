"""Training loops of the two stages on tensors held on the device.

The networks are tiny, so the cost of a step is dominated by overhead: the inputs live on the device as
whole tensors and each batch is one index into them (no per-sample ``DataLoader``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import pandas as pd
import torch
from tqdm.auto import tqdm

from indiseek.module import SharedModule, SpecificModule

logger = logging.getLogger(__name__)

#: Optimisers of the networks, as in scvi-tools' ``TrainingPlan``.
OPTIMIZERS = ("Adam", "AdamW")


def check_optimizer(name: str, weight_decay: float) -> None:
    """Raise a clear error for an unknown optimiser or a negative weight decay."""
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; choose one of {OPTIMIZERS}.")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be non-negative, got {weight_decay}.")


def make_optimizer(params, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` (weight decay as an L2 term in the gradient) or ``AdamW`` (decoupled weight decay).

    With ``AdamW`` every weight shrinks by ``lr * weight_decay`` per step unless the loss holds it up, including
    the weights along input directions the training data never vary. With ``Adam`` the L2 term is rescaled per
    weight with the gradients, so its strength depends on the loss's scale (at ``weight_decay=0.1`` it shrinks the
    simulations' encoders to a constant, where ``AdamW`` at 0.1 trains them).
    """
    check_optimizer(name, weight_decay)
    return getattr(torch.optim, name)(params, lr=lr, weight_decay=weight_decay)


def batches(indices: torch.Tensor, batch_size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    """Shuffle ``indices`` and cut them into full batches (the last, partial batch is dropped).

    Contrastive terms compare each cell with the rest of its batch, so a small remainder batch would make
    the loss noisy; at least one full batch is required.
    """
    n = indices.shape[0]
    if n < batch_size:
        raise ValueError(
            f"{n} training cells are fewer than one batch of {batch_size}: pass a smaller batch_size "
            f"(at most {n}) or use more cells."
        )
    perm = indices[torch.randperm(n, generator=generator).to(indices.device)]
    return list(perm[: (n // batch_size) * batch_size].split(batch_size))


def _check_finite(losses: dict[str, float], stage: str, epoch: int) -> None:
    bad = {k: v for k, v in losses.items() if not math.isfinite(v)}
    if bad:
        raise FloatingPointError(
            f"Non-finite loss in the {stage} stage at epoch {epoch}: {bad}. "
            "Check the inputs for extreme values, or lower the learning rate."
        )


def run_epochs(
    step: Callable[[torch.Tensor], dict[str, float]],
    evaluate: Callable[[], dict[str, float]] | None,
    train_idx: torch.Tensor,
    *,
    stage: str,
    max_epochs: int,
    batch_size: int,
    early_stopping: bool = True,
    patience: int = 45,
    min_delta: float = 0.0,
    generator: torch.Generator | None = None,
    progress_bar: bool = True,
) -> pd.DataFrame:
    """Run ``step`` on shuffled batches for up to ``max_epochs`` epochs, with early stopping on ``evaluate``.

    Parameters
    ----------
    step
        Takes a batch of cell indices, updates the networks and returns the batch's losses.
    evaluate
        Returns validation losses (its ``"loss"`` drives early stopping); ``None`` disables validation.
    train_idx
        Indices of the training cells, on the device of the data.
    stage
        Name used in the progress bar and in error messages.
    max_epochs, batch_size
        Budget and batch size.
    early_stopping, patience, min_delta
        Stop when the monitored loss has not improved by ``min_delta`` for ``patience`` epochs.
    generator
        Random generator of the batch order.
    progress_bar
        Show a progress bar over epochs.

    Returns
    -------
    One row per epoch: mean training losses (``train_<name>``) and validation losses (``validation_<name>``).
    """
    rows = []
    best, since_best = math.inf, 0
    bar = tqdm(range(1, max_epochs + 1), desc=f"{stage}", disable=not progress_bar, leave=False)
    for epoch in bar:
        sums: dict[str, float] = {}
        batch_list = batches(train_idx, batch_size, generator)
        for idx in batch_list:
            for k, v in step(idx).items():
                sums[k] = sums.get(k, 0.0) + v
        row = {"epoch": epoch, **{f"train_{k}": v / len(batch_list) for k, v in sums.items()}}
        if evaluate is not None:
            row.update({f"validation_{k}": v for k, v in evaluate().items()})
        _check_finite({k: v for k, v in row.items() if k != "epoch"}, stage, epoch)
        rows.append(row)
        monitored = row.get("validation_loss", row["train_loss"])
        bar.set_postfix(loss=f"{monitored:.4f}")
        if monitored < best - min_delta:
            best, since_best = monitored, 0
        else:
            since_best += 1
        if early_stopping and evaluate is not None and since_best >= patience:
            logger.info("%s: early stopping at epoch %d (best validation loss %.4f)", stage, epoch, best)
            break
    bar.close()
    return pd.DataFrame(rows).set_index("epoch")


def _mean_over_batches(fn: Callable[[torch.Tensor], dict[str, torch.Tensor]], idx: torch.Tensor, batch_size: int):
    """Average a loss over consecutive batches of ``idx`` (so validation losses match the training scale)."""
    chunks = [c for c in idx.split(batch_size) if c.shape[0] >= 2]
    sums: dict[str, float] = {}
    for chunk in chunks:
        for k, v in fn(chunk).items():
            if v.dim() == 0:
                sums[k] = sums.get(k, 0.0) + float(v)
    return {k: v / len(chunks) for k, v in sums.items()}


def train_shared(
    module: SharedModule,
    x_rna: torch.Tensor,
    x_protein: torch.Tensor,
    train_idx: torch.Tensor,
    validation_idx: torch.Tensor | None,
    *,
    max_epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    optimizer: str = "Adam",
    **loop_kwargs,
) -> pd.DataFrame:
    """Fit the shared encoders with the CLIP loss (optimiser as in :func:`make_optimizer`). Returns the history."""
    opt = make_optimizer(module.parameters(), optimizer, lr, weight_decay)

    def step(idx: torch.Tensor) -> dict[str, float]:
        module.train()
        loss = module.loss(x_rna[idx], x_protein[idx])["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    evaluate = None
    if validation_idx is not None and validation_idx.shape[0] >= 2:

        @torch.no_grad()
        def evaluate() -> dict[str, float]:
            module.eval()
            return _mean_over_batches(lambda i: module.loss(x_rna[i], x_protein[i]), validation_idx, batch_size)

    return run_epochs(
        step, evaluate, train_idx, stage="shared", max_epochs=max_epochs, batch_size=batch_size, **loop_kwargs
    )


def train_specific(
    module: SpecificModule,
    x: torch.Tensor,
    c_own: torch.Tensor,
    c_other: torch.Tensor,
    train_idx: torch.Tensor,
    validation_idx: torch.Tensor | None,
    *,
    max_epochs: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    estimator_lr: float | None = None,
    n_estimator_steps: int = 5,
    weight_decay: float = 0.0,
    optimizer: str = "Adam",
    stage: str = "specific",
    **loop_kwargs,
) -> pd.DataFrame:
    """Fit one modality's specific encoder with its method's objective, the shared features held fixed.

    Each batch takes one step of the encoder (and decoder or critics) on the method's loss, then, for CLUB,
    ``n_estimator_steps`` steps of the Gaussian ``q(z | c)`` on the same batch with its own optimiser and
    the encoder's output detached (the order of CLUB's reference code). Neither optimiser ever steps on the
    other's gradients. ``q`` is first fitted for one epoch on the untrained encoder so that the first
    encoder steps see a meaningful bound.

    Parameters
    ----------
    module
        The modality's specific stage.
    x
        Inputs of the modality, ``(n_cells, n_input)``.
    c_own, c_other
        Shared features of the same cells from this modality and from the other one, ``(n_cells, n_shared)``.
    train_idx, validation_idx
        Cell indices for training and validation (``None``: no validation).
    max_epochs, batch_size, lr, weight_decay
        Budget, batch size, learning rate and weight decay of the encoder.
    optimizer
        ``"Adam"`` or ``"AdamW"`` (:func:`make_optimizer`) for the encoder; CLUB's estimator always uses Adam
        without weight decay.
    estimator_lr
        Learning rate of CLUB's Gaussian (default: ``lr``, as in CLUB's reference code). A higher rate fits the
        Gaussian more tightly, which strengthens the independence term: on the simulations with oracle shared
        features 3x the encoder's rate helps, while on simulated CITE-seq it erases the specific features.
    n_estimator_steps
        Steps of CLUB's Gaussian per encoder step (the paper uses 5).
    stage
        Name in the progress bar and in error messages.
    **loop_kwargs
        Passed to :func:`run_epochs`.
    """
    module.set_input_scale(x[train_idx])
    opt = make_optimizer(module.encoder_parameters(), optimizer, lr, weight_decay)
    estimator = module.estimator
    q_optimizer = None
    if estimator is not None:
        q_optimizer = torch.optim.Adam(estimator.parameters(), lr=estimator_lr or lr)

    def fit_estimator(idx: torch.Tensor, z: torch.Tensor, n_steps: int) -> float:
        z = z.detach()
        for _ in range(n_steps):
            q_loss = module.estimator_loss(z, c_own[idx], c_other[idx])
            q_optimizer.zero_grad(set_to_none=True)
            q_loss.backward()
            q_optimizer.step()
        return q_loss.item()

    def step(idx: torch.Tensor) -> dict[str, float]:
        module.train()
        out = module.loss(x[idx], c_own[idx], c_other[idx])
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        losses = {k: out[k].item() for k in ("loss", "independence", "capture")}
        if q_optimizer is not None:
            losses["estimator"] = fit_estimator(idx, out["z"], n_estimator_steps)
        return losses

    if q_optimizer is not None:
        generator = loop_kwargs.get("generator")
        with torch.no_grad():
            z_all = module.encode(x)
        for idx in batches(train_idx, batch_size, generator):
            fit_estimator(idx, z_all[idx], n_estimator_steps)

    evaluate = None
    if validation_idx is not None and validation_idx.shape[0] >= 2:

        @torch.no_grad()
        def evaluate() -> dict[str, float]:
            module.eval()
            return _mean_over_batches(lambda i: module.loss(x[i], c_own[i], c_other[i]), validation_idx, batch_size)

    return run_epochs(
        step, evaluate, train_idx, stage=stage, max_epochs=max_epochs, batch_size=batch_size, **loop_kwargs
    )
