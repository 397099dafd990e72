"""The specific stages fitted again on a trained shared stage: over a grid of lambda, and from other initialisations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scvi
import torch
from scvi.dataloaders import DataSplitter

from indiseek._checks import check_int, check_real, per_modality
from indiseek._keys import MODALITIES, fits_key
from indiseek.defaults import CITESEQ
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


def set_lambda(module, lambda_: float | dict[str, float]) -> None:
    """Set the capture weight of both specific stages: one for both, or one per modality."""
    for m, value in per_modality(lambda_, "lambda_").items():
        module.specific[m].lambda_ = float(value)


def check_lambdas(lambdas: Sequence[float]) -> list[float]:
    """Sorted, distinct, positive and finite lambdas (at least one)."""
    if isinstance(lambdas, str) or not isinstance(lambdas, Sequence | np.ndarray) or len(lambdas) == 0:
        raise TypeError(f"lambdas must be a non-empty sequence of numbers, e.g. {list(LAMBDA_GRID)}, got {lambdas!r}.")
    return sorted({check_real(v, "lambdas", minimum=0, strict=True) for v in lambdas})


def _fit_copies(
    model: IndiSeek, lambdas: Sequence[float | dict[str, float]], seeds: Sequence[int], stage: str, settings: dict
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


def _load_copy(
    model: IndiSeek, stack: LambdaStack, index: int, lambda_: float | dict[str, float], train_idx, batch_size: int
) -> None:
    """Make copy ``index`` of ``stack`` the model's specific stages, with its own feature scales and weights."""
    module = model.module
    module.load_state_dict(stack.copy_state(index), strict=False)
    set_lambda(module, lambda_)
    module.eval()
    model._fit_embedding_scale(train_idx, batch_size)
    bad = non_finite(module.state_dict())
    if bad:
        raise FloatingPointError(f"lambda={lambda_} left NaN or infinite values in {bad[0]}: try a smaller lr.")
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


class RefitMixin:
    """Fitting the specific stages of a trained :class:`~indiseek.IndiSeek` again: a lambda sweep, and more fits for
    theta.
    """

    def sweep_lambda(
        self,
        lambdas: Sequence[float] = LAMBDA_GRID,
        max_epochs: int | None = None,
        batch_size: int = CITESEQ.batch_size,
        train_size: float = CITESEQ.train_size,
        lr: float = CITESEQ.lr,
        n_estimator_steps: int = CITESEQ.n_estimator_steps,
        seed: int = 0,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        **trainer_kwargs,
    ) -> pd.DataFrame:
        """Fit the specific stages at each lambda on the trained shared stage and measure the trade-off without labels.

        The shared stage does not depend on lambda: it is kept, and only the specific stages are fitted, with
        :meth:`train`'s networks and budget. Every lambda starts from the same fresh initialisation (drawn from the
        generator ``seed`` sets) and sees the same minibatches: the lambdas are fitted side by side as one vectorised
        network (:class:`~indiseek.module.LambdaStack`), each exactly as it would be fitted alone.
        After each fit, on held-out cells (:func:`~indiseek.tl.independence`, :func:`~indiseek.tl.completeness`):
        the leak, R^2 of C_{3-i} predicted from Z_i, with its permutation p-value, and the completeness, R^2 of X_i
        from (Z_i, C_i) and from C_i alone. The model then uses the lambda
        :func:`~indiseek.tl.select_lambda` chooses (``model.lambda_choice_`` holds it and the reason); every fitted
        lambda stays available through :meth:`use_lambda` until the next sweep (only the one in use is saved).

        Parameters
        ----------
        lambdas
            The grid (default: the paper's, 10^-3 .. 10^3).
        max_epochs
            Epochs of each fit (no early stopping: every lambda gets the same budget, and keeps its epoch of lowest
            validation loss, as :meth:`train` does); ``None``: those of :meth:`train`'s specific stage (300, more
            on fewer than 1,280 training cells).
        batch_size, train_size, lr, n_estimator_steps, seed, accelerator, devices, **trainer_kwargs
            As in :meth:`train`.

        Returns
        -------
        One row per lambda (the index): ``independence_r2_<modality>``, ``independence_r2_linear_<modality>``,
        ``independence_p_value_<modality>``, ``completeness_r2_joint_<modality>`` and
        ``completeness_r2_shared_<modality>`` (:func:`~indiseek.tl.independence`, :func:`~indiseek.tl.completeness`;
        the choice of lambda reads, per modality, the larger of the two leaks); also ``model.lambda_sweep_``
        (the fit's seconds are ``model.train_times_["sweep"]``). :func:`~indiseek.tl.lambda_tradeoff` and
        :func:`~indiseek.pl.lambda_tradeoff` summarise and draw it.
        """
        self._check_if_trained(warn=False)
        if self.module.specific is None:
            raise ValueError("method='clip' has no specific stage, hence no lambda to sweep.")
        lambdas = check_lambdas(lambdas)
        settings = self._refit_settings(max_epochs, batch_size, train_size, lr, n_estimator_steps, seed, accelerator,
                                        devices, trainer_kwargs)  # fmt: skip
        restore = self._specific_snapshot()
        saved = (self.lambda_states_, self.lambda_sweep_, self.lambda_choice_, self.train_times_)
        history = self.history_  # the sweep's stages do not enter the model's training history
        try:
            return sweep(self, lambdas, settings)
        except BaseException:  # a sweep that does not finish leaves the networks as they were
            restore()
            self.lambda_states_, self.lambda_sweep_, self.lambda_choice_, self.train_times_ = saved
            raise
        finally:
            self.history_ = history

    def use_lambda(self, lambda_: float) -> None:
        """Use the specific stages fitted at ``lambda_`` by the last :meth:`sweep_lambda` (embeddings, saves)."""
        use(self, lambda_)

    def write_specific_fits(
        self,
        n_fits: int = 5,
        max_epochs: int | None = None,
        batch_size: int = CITESEQ.batch_size,
        train_size: float = CITESEQ.train_size,
        lr: float = CITESEQ.lr,
        n_estimator_steps: int = CITESEQ.n_estimator_steps,
        seed: int = 1,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        **trainer_kwargs,
    ) -> None:
        """Fit the specific stages again from other initialisations and write every fit's specific features.

        One fit of the specific stages is one draw: fitted again from another initialisation, its features rank the
        cell types by theta differently. :func:`~indiseek.tl.theta_scores` given these features averages each cell's
        same-label neighbour counts over the fits, which takes that noise out of theta (the results page: "theta
        averaged over several fits of the specific stages").
        The ``n_fits - 1`` new fits use the shared stage and the lambda in use, :meth:`train`'s networks and budget,
        and run side by side as one vectorised network, as :meth:`sweep_lambda` runs its lambdas. The model itself
        is not changed: its features stay those of its own fit.

        Writes ``.obsm["X_<method>_specific_rna_fits"]`` and ``.obsm["X_<method>_specific_protein_fits"]`` of the
        registered MuData, cells x ``n_fits`` x features, the model's own fit first (NaN rows for cells without the
        modality); the fits' seconds are ``model.train_times_["fits"]``. Then e.g.
        ``indiseek.tl.theta_scores(mdata, rna_key="X_indiseek_specific_rna_fits",
        protein_key="X_indiseek_specific_protein_fits")``.

        Parameters
        ----------
        n_fits
            Fits in all, the model's own included (at least 2).
        max_epochs, batch_size, train_size, lr, n_estimator_steps, accelerator, devices, **trainer_kwargs
            As in :meth:`sweep_lambda`.
        seed
            Seed of the data split and minibatches; new fit ``j`` (from 0) starts from the initialisation drawn
            from the generator ``seed + j`` sets.
        """
        self._check_if_trained(warn=False)
        if self.module.specific is None:
            raise ValueError("method='clip' has no specific stage to fit again.")
        n_fits = check_int(n_fits, "n_fits", 2, hint="One fit is the model's own: write_embeddings() writes it.")
        settings = self._refit_settings(max_epochs, batch_size, train_size, lr, n_estimator_steps, seed, accelerator,
                                        devices, trainer_kwargs)  # fmt: skip
        restore = self._specific_snapshot()
        try:
            fits = specific_fits(self, n_fits, settings)
        finally:  # the model keeps its own fit, whatever happened
            restore()
        for m, value in fits.items():
            self.mdata.obsm[fits_key(self.method, m)] = value

    @staticmethod
    def _refit_settings(
        max_epochs, batch_size, train_size, lr, n_estimator_steps, seed, accelerator, devices, trainer_kwargs
    ) -> dict:
        """The checked settings of :meth:`sweep_lambda` and :meth:`write_specific_fits`."""
        if max_epochs is not None:
            check_int(max_epochs, "max_epochs", 1)
        check_int(batch_size, "batch_size", 2, hint="The contrastive loss compares each cell with the others.")
        check_real(train_size, "train_size", minimum=0, maximum=1, strict=True)
        check_real(lr, "lr", minimum=0, strict=True)
        check_int(n_estimator_steps, "n_estimator_steps", 1)
        check_int(seed, "seed", 0)
        return {"max_epochs": max_epochs, "batch_size": batch_size, "train_size": train_size, "lr": lr,
                "n_estimator_steps": n_estimator_steps, "seed": seed, "accelerator": accelerator, "devices": devices,
                "trainer_kwargs": trainer_kwargs}  # fmt: skip

    def _specific_snapshot(self):
        """A function that puts the specific stages (networks, lambdas) and the training history back as now."""
        state = {k: v.clone() for k, v in self.module.state_dict().items()}
        lambdas = {m: stage.lambda_ for m, stage in self.module.specific.items()}
        history = self.history_

        def restore() -> None:
            self.module.load_state_dict(state)
            for m, value in lambdas.items():
                self.module.specific[m].lambda_ = value
            self.history_, self.is_trained_ = history, True

        return restore

    @property
    def lambda_in_use(self) -> float | dict[str, float] | None:
        """The capture weight of the specific stages in use: one number, or one per modality where they differ
        (``None`` for CLIP or before training).
        """
        if self.module is None or self.module.specific is None:
            return None
        lambdas = {m: float(stage.lambda_) for m, stage in self.module.specific.items()}
        return lambdas["rna"] if len(set(lambdas.values())) == 1 else lambdas
