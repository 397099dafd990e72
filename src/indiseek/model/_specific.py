"""The specific stage on plain arrays: one modality with given shared features (the paper's simulations)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scvi
import torch
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager, fields
from scvi.dataloaders import DataSplitter
from scvi.model._utils import parse_device_args
from scvi.train import Trainer

from indiseek._docs import dsp
from indiseek.defaults import SIMULATION as S
from indiseek.module import OracleModule, SpecificModule, get_objective
from indiseek.train import SpecificTrainingPlan

from ._utils import quiet_library_notes

_MODALITY = "x"  # OracleModule's name of its one stage, stripped from the history's columns


class SpecificEncoder:
    """A trained specific encoder ``h_i``: call it on an ``(n, d)`` array to get ``(n, n_specific)`` features.

    Attributes
    ----------
    module
        The trained :class:`~indiseek.module.SpecificModule`.
    history
        Per-epoch training (and validation) losses, one column per logged term.
    """

    def __init__(self, module: SpecificModule, history: pd.DataFrame, device: torch.device):
        self.module = module
        self.history = history
        self.device = device

    @torch.no_grad()
    def __call__(self, X: np.ndarray, batch_size: int = 65_536) -> np.ndarray:
        """Specific features of the rows of ``X``, shape ``(n, n_specific)``."""
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2 or X.shape[1] != self.module.encoder.n_input:
            raise ValueError(f"Expected an array of shape (n, {self.module.encoder.n_input}), got {X.shape}.")
        self.module.eval()
        out = [
            self.module.encode(torch.as_tensor(X[i : i + batch_size], device=self.device)).cpu().numpy()
            for i in range(0, len(X), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros((0, self.module.encoder.n_output), dtype=np.float32)


@dsp.dedent
def fit_specific(
    X: np.ndarray,
    shared: np.ndarray,
    method: str = S.method,
    lambda_: float = S.lambda_,
    n_specific: int = S.n_specific,
    n_hidden: int = S.n_hidden,
    n_layers: int = S.n_layers,
    shared_other: np.ndarray | None = None,
    max_epochs: int = S.max_epochs,
    batch_size: int = S.batch_size,
    lr: float = S.lr,
    weight_decay: float = S.weight_decay,
    optimizer: str = S.optimizer,
    estimator_lr: float | None = S.estimator_lr,
    n_estimator_steps: int = S.n_estimator_steps,
    temperature: float = S.capture_temperature,
    club_sample: bool = S.club_sample,
    club_estimator: str = S.club_estimator,
    train_size: float = S.train_size,
    early_stopping: bool = S.early_stopping,
    seed: int = 0,
    accelerator: str = "auto",
    device: int | str = "auto",
    progress_bar: bool = True,
) -> SpecificEncoder:
    """Learn specific features of one modality whose shared features are given.

    The same specific stage that :class:`~indiseek.IndiSeek` runs on each modality, on arrays. With one
    modality the shared features seen by the independence and the capture terms are both ``shared`` unless
    ``shared_other`` (``C_{3-i}``) is given.

    Parameters
    ----------
    X
        Inputs ``X_i``, shape ``(n, d)``.
    shared
        Shared features ``C_i`` of the same rows, shape ``(n, dc)`` (e.g. an oracle).
    method
        ``"indiseek"``, ``"factorizedcl"`` or ``"infodisen"``.
    %(param_lambda)s
    n_specific
        Output dimension ``p_i`` of the specific features.
    %(param_network)s
    shared_other
        Shared features of the other modality ``C_{3-i}``; defaults to ``shared``.
    max_epochs, batch_size, lr
        Training budget and learning rate.
    %(param_optimizer)s
    %(param_estimator)s
    temperature
        Temperature of the InfoNCE capture term of the baselines.
    %(param_club)s
    train_size, early_stopping
        Fraction of rows used for training (the rest validates) and whether to stop early on it.
    seed
        Seed of the weights, the split and the batch order.
    accelerator, device
        Where to train (``"auto"`` uses a GPU when there is one).
    progress_bar
        Show a progress bar over epochs.

    Returns
    -------
    A callable :class:`~indiseek.model.SpecificEncoder`.
    """
    objective = get_objective(method)
    if objective is None:
        raise ValueError("method='clip' learns no specific features; choose 'indiseek', 'factorizedcl' or 'infodisen'.")
    X = np.asarray(X, dtype=np.float32)
    shared = np.asarray(shared, dtype=np.float32)
    shared_other = shared if shared_other is None else np.asarray(shared_other, dtype=np.float32)
    if X.ndim != 2 or shared.ndim != 2 or shared_other.shape != shared.shape or len(X) != len(shared):
        raise ValueError(
            f"X {X.shape} and shared {shared.shape} (and shared_other {shared_other.shape}) must be 2-D with the "
            "same number of rows, shared and shared_other of the same shape."
        )
    for name, arr in (("X", X), ("shared", shared), ("shared_other", shared_other)):
        if not np.isfinite(arr).all():
            raise ValueError(f"{name} contains NaN or infinite values; remove or impute them first.")
    scvi.settings.seed = seed  # the split, the weights and the batch order
    accelerator, devices, torch_device = parse_device_args(accelerator, device, return_device="torch")
    module = OracleModule(
        SpecificModule(
            X.shape[1],
            shared.shape[1],
            n_specific,
            objective,
            lambda_,
            n_hidden,
            n_layers,
            temperature,
            club_sample,
            club_estimator,
        )  # fmt: skip
    )
    manager = AnnDataManager(
        fields=[
            fields.LayerField(REGISTRY_KEYS.X_KEY, None, is_count_data=False),
            fields.ObsmField("shared", "shared"),
            fields.ObsmField("shared_other", "shared_other"),
        ]
    )
    with quiet_library_notes():
        manager.register_fields(ad.AnnData(X, obsm={"shared": shared, "shared_other": shared_other}))
        splitter = DataSplitter(manager, train_size=train_size, batch_size=batch_size, drop_last=True)
        plan = SpecificTrainingPlan(
            module, lr=lr, weight_decay=weight_decay, optimizer=optimizer, estimator_lr=estimator_lr,
            n_estimator_steps=n_estimator_steps,
        )  # fmt: skip
        validate = splitter.n_val > 0
        trainer = Trainer(
            max_epochs=max_epochs, accelerator=accelerator, devices=devices, enable_progress_bar=progress_bar,
            early_stopping=early_stopping and validate, early_stopping_monitor="validation_loss",
            check_val_every_n_epoch=1 if validate else None,
        )  # fmt: skip
        trainer.fit(plan, splitter)
    history = pd.concat(list(trainer.logger.history.values()), axis=1).astype(float)
    history.columns = [c.replace(f"_{_MODALITY}_", "_") for c in history.columns]
    stage = module.specific[_MODALITY].to(torch_device).eval()
    return SpecificEncoder(stage, history, torch_device)
