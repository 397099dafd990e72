"""Training plans of the two stages on scvi-tools' Lightning stack.

The shared (CLIP) stage is a plain :class:`scvi.train.TrainingPlan`. The specific stage optimises by hand, as
scvi-tools' :class:`~scvi.train.AdversarialTrainingPlan` does: per minibatch one step of the encoders (and decoders
or critics) on the method's loss, then ``n_estimator_steps`` steps of CLUB's estimator on the detached ``Z`` with
its own optimiser (the order of CLUB's reference code). Neither optimiser ever steps on the other's gradients.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import torch
from scvi.module.base import LossOutput
from scvi.train import TrainingPlan

from indiseek.module import encoder_parameters, estimator_parameters

logger = logging.getLogger(__name__)

#: Lightning's precision settings without loss scaling or casting.
_FULL_PRECISION = ("32-true", "64-true", "32", "64")
#: Optimisers of the networks, as in scvi-tools' ``TrainingPlan``.
OPTIMIZERS = ("Adam", "AdamW")


def check_optimizer(name: str, weight_decay: float) -> None:
    """Raise a clear error for an unknown optimiser or a negative weight decay."""
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; choose one of {OPTIMIZERS}.")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be non-negative, got {weight_decay}.")


class _Plan(TrainingPlan):
    """A :class:`scvi.train.TrainingPlan` that logs a :class:`~scvi.module.base.LossOutput` term by term.

    Parameters
    ----------
    module
        The module to train.
    stage
        Name in error messages.
    lr, weight_decay, optimizer
        Learning rate, weight decay and optimiser (``"Adam"``: weight decay as an L2 term in the gradient;
        ``"AdamW"``: decoupled, every weight shrinks by ``lr * weight_decay`` per step unless the loss holds it up).
    eps
        Adam's epsilon. scvi-tools' default (0.01) damps small gradients; PyTorch's 1e-8 is kept here.
    restore_best
        With validation cells, end the stage with the weights of each part's (see :meth:`restorable`) epoch of
        lowest validation loss rather than those of its last epoch; with the trainer's ``min_steps``, among the
        epochs that end after them (as early stopping waits for them).
    early_stopping_patience, early_stopping_min_delta
        If a patience is given (and cells are validated), each part stops on its own: once its validation loss has
        not improved by more than ``early_stopping_min_delta`` for ``early_stopping_patience`` validations after
        ``min_steps``, its best epoch so far is final (later epochs no longer change what it keeps), and the stage
        ends when every part has stopped; with ``restore_best`` each part then ends as it would trained alone. Pass
        the trainer's own ``early_stopping=False`` with it.
    **kwargs
        Further arguments of :class:`scvi.train.TrainingPlan` (``reduce_lr_on_plateau``, ``lr_patience``, ...).
    """

    def __init__(
        self,
        module: torch.nn.Module,
        *,
        stage: str,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        optimizer: Literal["Adam", "AdamW"] = "Adam",
        eps: float = 1e-8,
        lr_scheduler_metric: str = "validation_loss",
        restore_best: bool = True,
        early_stopping_patience: int | None = None,
        early_stopping_min_delta: float = 0.0,
        **kwargs,
    ):
        check_optimizer(optimizer, weight_decay)
        super().__init__(
            module, lr=lr, weight_decay=weight_decay, optimizer=optimizer, eps=eps,
            lr_scheduler_metric=lr_scheduler_metric, **kwargs,
        )  # fmt: skip
        self.stage = stage
        self.restore_best = restore_best
        self.early_stopping_patience = early_stopping_patience
        self.early_stopping_min_delta = early_stopping_min_delta
        self._sums: dict[str, dict] = {}
        self._best: dict[str, tuple[float, dict]] = {}
        self._wait: dict[str, tuple[float, int]] = {}  # per part: the loss to beat, validations without beating it

    def _optimizer_creator_fn(self, optimizer_cls: type[torch.optim.Optimizer]):
        """scvi-tools' optimiser, in its multi-tensor form also on CPU (same numbers, fewer kernel calls)."""
        return lambda params: optimizer_cls(
            params, lr=self.lr, eps=self.eps, weight_decay=self.weight_decay, foreach=True
        )

    def log_loss(self, out: LossOutput, mode: str) -> None:
        """Add a minibatch's loss and extra metrics to the epoch's sums (detached tensors: no host sync per step).

        They are logged once per epoch as ``<mode>_loss`` and ``<name>_<mode>`` (cell-weighted means), which keeps
        Lightning's per-call logging overhead off the hot path of networks this small.
        """
        n = out.n_obs_minibatch
        sums = self._sums.setdefault(mode, {})
        for name, value in {"loss": out.loss, **out.extra_metrics}.items():
            sums[name] = sums.get(name, 0.0) + value.detach() * n
        sums[None] = sums.get(None, 0) + n

    def _flush(self, mode: str) -> None:
        sums = self._sums.pop(mode, {})
        n = sums.pop(None, 0)
        for name, total in sums.items():
            key = f"{mode}_loss" if name == "loss" else f"{name}_{mode}"
            self.log(key, total / n, prog_bar=name == "loss", sync_dist=self.use_sync_dist)

    def restorable(self) -> dict[str, tuple[str, torch.nn.Module]]:
        """The parts ``restore_best`` restores, each with the logged validation loss that chooses its epoch."""
        return {}

    def on_validation_epoch_end(self) -> None:
        """Log the validation epoch's means; keep each part's best epoch, and stop the parts that stopped improving."""
        self._flush("validation")
        patience = self.early_stopping_patience
        if not (self.restore_best or patience) or self.trainer.global_step < (self.trainer.min_steps or 0):
            return
        parts = self.restorable()
        for name, (key, part) in parts.items():
            loss = self.trainer.callback_metrics.get(key)
            if loss is None or self.stopped(name):
                continue
            loss = float(loss)
            if self.restore_best and (name not in self._best or loss < self._best[name][0]):
                self._best[name] = (loss, {k: v.detach().clone() for k, v in part.state_dict().items()})
            reference, wait = self._wait.get(name, (math.inf, 0))
            improved = loss < reference - self.early_stopping_min_delta
            self._wait[name] = (loss, 0) if improved else (reference, wait + 1)
            if self.stopped(name):
                logger.info("%s stage: %s stops, its validation loss not improved for %d epochs.", self.stage,
                            name, patience)  # fmt: skip
        if patience and parts and all(self.stopped(name) for name in parts):
            self.trainer.should_stop = True

    def stopped(self, name: str) -> bool:
        """Whether part ``name`` has stopped improving (see ``early_stopping_patience``)."""
        patience = self.early_stopping_patience
        return bool(patience) and self._wait.get(name, (0, 0))[1] >= patience

    def on_train_end(self) -> None:
        """Restore each part's weights of its best validation epoch (nothing without validation)."""
        parts = self.restorable()
        for name, (_, state) in self._best.items():
            parts[name][1].load_state_dict(state)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Record the stage, so that :meth:`indiseek.IndiSeek.train` knows where to resume, and the best weights."""
        checkpoint["indiseek_stage"] = self.stage
        checkpoint["indiseek_best"] = self._best
        checkpoint["indiseek_wait"] = self._wait

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Resume with the best weights, and the epochs without improvement, of the epochs before the checkpoint."""
        self._best = checkpoint.get("indiseek_best", {})
        self._wait = checkpoint.get("indiseek_wait", {})

    def on_train_epoch_end(self) -> None:
        """Log the epoch's means; stop with an error naming the stage as soon as the training loss is not finite."""
        self._flush("train")
        loss = self.trainer.callback_metrics.get("train_loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise FloatingPointError(
                f"Non-finite loss in the {self.stage} stage at epoch {self.current_epoch + 1}. "
                "Check the inputs for extreme values, or lower the learning rate."
            )


class SharedTrainingPlan(_Plan):
    """The shared stage: the CLIP loss of :meth:`IndiSeekModule.loss`, optimised by Lightning.

    CLIP's negatives are the other cells of the minibatch on the same device. Under DDP each process contrasts
    its own minibatch (no gathering across processes): the loss and its gradient are the single-device ones at
    ``batch_size`` cells per device, and averaging the gradients over processes is plain data parallelism. Each
    stage trains part of the module, so DDP needs ``strategy="ddp_find_unused_parameters_true"``.

    With ``restore_best`` (default) and validation cells, the encoders of the epoch with the lowest validation loss
    are restored at the end: on few cells CLIP can memorise the training cells, its validation loss rising while
    its training loss keeps falling.
    """

    def __init__(self, module: torch.nn.Module, **kwargs):
        super().__init__(module, stage="shared", **kwargs)

    def restorable(self) -> dict[str, tuple[str, torch.nn.Module]]:
        """The shared encoders, chosen by the CLIP loss of the validation cells."""
        return {"shared": ("validation_loss", self.module.shared)}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """One CLIP step."""
        out = self.module.loss(batch)
        self.log_loss(out, "train")
        return out.loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """CLIP loss of a validation minibatch."""
        self.log_loss(self.module.loss(batch), "validation")


class SpecificTrainingPlan(_Plan):
    """The specific stages of every modality, with the shared features held fixed.

    Before the first epoch, one pass over the training cells computes each modality's ``E|X_i|^2`` (the constant
    of the scale-free reconstruction term) and a second pass fits CLUB's estimator on the untrained encoder, so
    that the first encoder steps see a meaningful bound.

    With ``restore_best`` (default) and validation cells, each modality's stage ends with the weights (encoder,
    decoder, estimator) of its epoch of lowest validation loss after ``min_steps`` (the results page: "The specific
    stage keeps its best epoch"); with ``early_stopping_patience`` each also stops on that loss, so that it ends as
    it would trained alone.

    Parameters
    ----------
    module
        :class:`~indiseek.module.IndiSeekModule` or :class:`~indiseek.module.OracleModule`.
    estimator_lr
        Learning rate of CLUB's estimator (default ``lr``, as in CLUB's reference code); Adam without weight decay.
    n_estimator_steps
        Estimator steps per encoder step (the paper uses 5).
    **kwargs
        Optimiser arguments of :class:`SharedTrainingPlan`.
    """

    def __init__(
        self, module: torch.nn.Module, *, estimator_lr: float | None = None, n_estimator_steps: int = 5, **kwargs
    ):
        super().__init__(module, stage="specific", **kwargs)
        if n_estimator_steps < 1:
            raise ValueError(f"n_estimator_steps must be at least 1, got {n_estimator_steps}.")
        self.estimator_lr = estimator_lr
        self.n_estimator_steps = n_estimator_steps
        self.has_estimator = bool(estimator_parameters(module.specific))
        self.automatic_optimization = False

    def configure_optimizers(self):
        """The method's optimiser over encoders, decoders and critics; Adam over CLUB's estimators."""
        encoder = self.get_optimizer_creator()(encoder_parameters(self.module.specific))
        if not self.has_estimator:
            return encoder
        estimator = torch.optim.Adam(
            estimator_parameters(self.module.specific), lr=self.estimator_lr or self.lr, foreach=True
        )
        return [encoder, estimator]

    def restorable(self) -> dict[str, tuple[str, torch.nn.Module]]:
        """Each modality's stage (each copy of a lambda sweep's), chosen by its own loss on the validation cells."""
        return {name: (f"{key}_validation", part) for name, (key, part) in self.module.restorable().items()}

    def _optimizers(self, use_pl_optimizer: bool = True) -> list:
        opts = self.optimizers(use_pl_optimizer=use_pl_optimizer)
        return opts if isinstance(opts, list) else [opts]

    def _fit_estimator(self, inputs, z) -> torch.Tensor:
        # On one process at full precision Lightning's wrappers of backward and step have nothing to do, yet add
        # about a fifth to a step of networks this small: the estimator's steps then run in plain torch (same
        # numbers; they no longer count in the trainer's global step, which counts the encoder's steps).
        plain = self.trainer.world_size == 1 and self.trainer.precision in _FULL_PRECISION
        optimizer = self._optimizers(use_pl_optimizer=not plain)[1]
        backward = torch.Tensor.backward if plain else self.manual_backward
        params = estimator_parameters(self.module.specific)
        for _ in range(self.n_estimator_steps):
            loss = self.module.estimator_loss(inputs, z)
            optimizer.zero_grad(set_to_none=True)
            backward(loss)
            if self.trainer.world_size > 1:  # DDP syncs only the backward that follows its forward: average by hand
                for p in params:
                    if p.grad is not None:
                        p.grad = self.trainer.strategy.reduce(p.grad, reduce_op="mean")
            optimizer.step()
        return loss.detach()

    def _training_batches(self):
        for batch in self.trainer.train_dataloader:
            yield self.transfer_batch_to_device(batch, self.device, 0)

    def on_train_start(self) -> None:
        """Set the reconstruction scale and fit the estimator once, unless resuming from a checkpoint."""
        if self.current_epoch > 0:
            return
        sums, n = {}, torch.zeros((), device=self.device)
        with torch.no_grad():
            for batch in self._training_batches():
                for m, (x, _, _) in self.module.specific_inputs(batch).items():
                    sums[m] = sums.get(m, 0.0) + (x.double() ** 2).sum()
                n += x.shape[0]
        n = self.trainer.strategy.reduce(n, reduce_op="sum")
        for m, total in sums.items():
            self.module.specific[m].set_input_scale(self.trainer.strategy.reduce(total, reduce_op="sum") / n)
        if self.has_estimator:
            for batch in self._training_batches():
                inputs = self.module.specific_inputs(batch)
                with torch.no_grad():
                    _, z = self.module.specific_loss(inputs)
                self._fit_estimator(inputs, z)

    def on_train_epoch_start(self) -> None:
        """Keep the shared encoders in evaluation mode: they are fixed in this stage."""
        if hasattr(self.module, "shared"):
            self.module.shared.eval()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """One encoder step, then the estimator's steps on the same minibatch; returns the (detached) loss."""
        inputs = self.module.specific_inputs(batch)
        out, z = self.module.specific_loss(inputs)
        optimizer = self._optimizers()[0]
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(out.loss)
        optimizer.step()
        if self.has_estimator:
            out.extra_metrics["estimator"] = self._fit_estimator(inputs, z)
        self.log_loss(out, "train")
        return out.loss.detach()

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """The method's loss on a validation minibatch."""
        self.log_loss(self.module.specific_loss(self.module.specific_inputs(batch))[0], "validation")
