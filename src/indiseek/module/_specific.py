"""The specific stage of one modality: an encoder ``h_i`` and the objective of the chosen method."""

from __future__ import annotations

import torch
from scvi.module.base import LossOutput
from torch import nn
from torch.nn import functional as F

from indiseek.nn import MLP, CriticCLUB, GaussianCLUB, ReverseRidgeCLUB, RidgeCLUB, clip_loss, orthogonality_loss

from ._objectives import SpecificObjective

#: Estimators of the CLUB independence term.
CLUB_ESTIMATORS = ("gaussian", "gaussian_raw", "ridge", "ridge_reverse", "critic")


def check_club_estimator(name: str) -> None:
    """Raise a clear error for an unknown ``club_estimator``."""
    if name not in CLUB_ESTIMATORS:
        raise ValueError(f"Unknown club_estimator {name!r}; choose one of {CLUB_ESTIMATORS}.")


class SpecificModule(nn.Module):
    """Specific features ``Z_i = h_i(X_i)`` of one modality and the loss that shapes them.

    ``loss = independence(Z_i; C_a) + lambda_ * capture(Z_i, C_b; X_i)`` where the method's
    :class:`~indiseek.module.SpecificObjective` picks the two terms and whether ``C_a`` and ``C_b`` are the
    modality's own shared features or the other modality's. For IndiSeek::

        CLUB(Z_i; C_{3-i}) + lambda / (2 E|X_i|^2) * E|g_i(Z_i, C_i) - X_i|^2

    and for the InfoNCE capture term of the baselines, ``lambda / 2 * InfoNCE(e_i(C, Z_i), e'_i(X_i); tau)``.

    Parameters
    ----------
    n_input
        Dimension of ``X_i`` (after input preparation).
    n_shared
        Dimension of the shared features.
    n_specific
        Dimension ``p_i`` of the specific features.
    objective
        The method's objective.
    lambda_
        Weight of the capture term: small favours independence, large favours completeness.
    n_hidden, n_layers
        Width and depth of every network (encoder, decoder, critics, CLUB's Gaussian).
    temperature
        Temperature of the InfoNCE capture term (baselines only).
    club_sample
        Use the sampled-negative Gaussian CLUB estimator instead of the all-pairs one.
    club_estimator
        ``"gaussian"`` (:class:`~indiseek.nn.GaussianCLUB`, the paper's, on ``Z`` standardised over the batch so
        that shrinking ``Z`` cannot lower it), ``"gaussian_raw"`` (the same on raw ``Z``, as in Cheng et al.'s code),
        ``"ridge"`` (:class:`~indiseek.nn.RidgeCLUB`, a Gaussian whose mean is refitted in closed form on every
        minibatch, so that the encoder cannot outrun it), ``"ridge_reverse"`` (:class:`~indiseek.nn.ReverseRidgeCLUB`,
        the same with ``q(c | z)``, a regression of ``C`` on ``Z`` that sees every linear direction of ``Z``) or
        ``"critic"`` (:class:`~indiseek.nn.CriticCLUB`, which also sees dependence spread over several coordinates of
        ``Z``).
    n_layers_estimator
        Depth of CLUB's estimator (``None``: ``n_layers``).
    activation
        Activation of every network's hidden layers (see :class:`~indiseek.nn.MLP`).
    input_dropout
        Probability with which each feature of ``X_i`` is zeroed (the others scaled up) in the encoder's input in each
        training step; the capture term still reconstructs the whole ``X_i``. ``0`` trains as the paper does.
    """

    def __init__(
        self,
        n_input: int,
        n_shared: int,
        n_specific: int,
        objective: SpecificObjective,
        lambda_: float = 10.0,
        n_hidden: int = 50,
        n_layers: int = 5,
        temperature: float = 0.1,
        club_sample: bool = False,
        club_estimator: str = "gaussian",
        n_layers_estimator: int | None = None,
        activation: str = "relu",
        input_dropout: float = 0.0,
    ):
        super().__init__()
        if lambda_ < 0:
            raise ValueError(f"lambda_ must be non-negative, got {lambda_}.")
        check_club_estimator(club_estimator)
        if not 0 <= input_dropout < 1:
            raise ValueError(f"input_dropout must be in [0, 1), got {input_dropout}.")
        self.input_dropout = input_dropout
        self.objective = objective
        self.lambda_ = lambda_
        self.temperature = temperature
        self.encoder = MLP(n_input, n_specific, n_hidden, n_layers, activation)
        if objective.capture == "reconstruction":
            self.decoder = MLP(n_specific + n_shared, n_input, n_hidden, n_layers, activation)
        else:
            self.joint_embedding = MLP(n_specific + n_shared, n_specific, n_hidden, n_layers, activation)
            self.input_embedding = MLP(n_input, n_specific, n_hidden, n_layers, activation)
        self.estimator: GaussianCLUB | RidgeCLUB | ReverseRidgeCLUB | CriticCLUB | None = None
        n_layers_estimator = n_layers if n_layers_estimator is None else n_layers_estimator
        if objective.independence == "club" and club_estimator == "critic":
            self.estimator = CriticCLUB(n_specific, n_shared, n_hidden, n_layers_estimator, activation)
        elif objective.independence == "club" and club_estimator == "ridge":
            self.estimator = RidgeCLUB(n_specific, n_shared)
        elif objective.independence == "club" and club_estimator == "ridge_reverse":
            self.estimator = ReverseRidgeCLUB(n_specific, n_shared)
        elif objective.independence == "club":
            self.estimator = GaussianCLUB(
                n_specific, n_shared, n_hidden, n_layers_estimator, sample=club_sample,
                standardize=club_estimator == "gaussian", activation=activation,
            )  # fmt: skip
        # E|X_i|^2 over the training inputs: the constant that makes reconstruction scale-free.
        self.register_buffer("input_sq_norm", torch.tensor(1.0))

    def set_input_scale(self, mean_sq_norm: torch.Tensor) -> None:
        """Store ``E|X_i|^2``, the training inputs' mean squared norm (computed once, before training)."""
        value = torch.as_tensor(mean_sq_norm).to(self.input_sq_norm)
        if not torch.isfinite(value) or value <= 0:
            raise ValueError("The training inputs have zero or non-finite mean squared norm.")
        self.input_sq_norm.copy_(value)

    def estimator_parameters(self) -> list[nn.Parameter]:
        """Parameters of CLUB's estimator (Gaussian or critic), fitted by their own optimiser; none without CLUB."""
        return list(self.estimator.parameters()) if self.estimator is not None else []

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Parameters trained by the method's loss: everything except CLUB's estimator."""
        estimator = set(self.estimator_parameters())
        return [p for p in self.parameters() if p not in estimator]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Specific features ``Z_i``, shape ``(batch, n_specific)``."""
        return self.encoder(x)

    def _pick(self, which: str, c_own: torch.Tensor, c_other: torch.Tensor) -> torch.Tensor:
        return c_own if which == "own" else c_other

    def loss(
        self, x: torch.Tensor, c_own: torch.Tensor, c_other: torch.Tensor, lambda_: float | torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """The method's loss on a batch.

        Parameters
        ----------
        x
            Inputs ``X_i``, ``(batch, n_input)``.
        c_own, c_other
            Shared features ``C_i`` and ``C_{3-i}`` of the same cells, ``(batch, n_shared)``.
        lambda_
            Weight of the capture term (default: the stage's ``lambda_``).

        Returns
        -------
        ``loss`` (to minimise), ``independence`` and ``capture`` (unweighted), and ``z``.
        """
        dropped = self.training and self.input_dropout > 0
        z = self.encoder(F.dropout(x, self.input_dropout) if dropped else x)
        c_ind = self._pick(self.objective.independence_shared, c_own, c_other)
        if self.objective.independence == "club":
            independence = self.estimator(z, c_ind)
        else:
            independence = orthogonality_loss(z, c_ind)
        c_cap = self._pick(self.objective.capture_shared, c_own, c_other)
        joint = torch.cat([z, c_cap], dim=1)
        if self.objective.capture == "reconstruction":
            capture = ((self.decoder(joint) - x) ** 2).sum(1).mean() / (2 * self.input_sq_norm)
        else:
            capture = 0.5 * clip_loss(self.joint_embedding(joint), self.input_embedding(x), self.temperature)
        lambda_ = self.lambda_ if lambda_ is None else lambda_
        return {"loss": independence + lambda_ * capture, "independence": independence, "capture": capture, "z": z}

    def estimator_loss(self, z: torch.Tensor, c_own: torch.Tensor, c_other: torch.Tensor) -> torch.Tensor:
        """Loss that fits CLUB's estimator (Gaussian likelihood or critic) on detached ``z``."""
        c_ind = self._pick(self.objective.independence_shared, c_own, c_other)
        return self.estimator.learning_loss(z, c_ind)


#: Per modality, a minibatch's ``(X_i, C_i, C_{3-i})``: inputs and both modalities' shared features.
SpecificInputs = dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def specific_loss(stages: nn.ModuleDict, inputs: SpecificInputs) -> tuple[LossOutput, dict[str, torch.Tensor]]:
    """Losses of independent specific stages on one minibatch, and each stage's ``Z`` for its estimator.

    Parameters
    ----------
    stages
        :class:`SpecificModule` per modality.
    inputs
        ``(X_i, C_i, C_{3-i})`` per modality, ``(batch, .)`` each.

    Returns
    -------
    The loss per modality (summed in ``loss``; the stages share no parameter, so each is minimised on its own)
    with ``independence_<modality>``, ``capture_<modality>`` and ``loss_<modality>`` as extra metrics (and
    ``loss_<modality>_<j>`` per copy ``j`` of a stage that returns its copies' losses as ``copies``), and the
    detached ``Z`` per modality.
    """
    losses, metrics, z = {}, {}, {}
    for modality, (x, c_own, c_other) in inputs.items():
        out = stages[modality].loss(x, c_own, c_other)
        losses[modality] = out["loss"]
        metrics.update({f"{k}_{modality}": out[k].detach() for k in ("loss", "independence", "capture")})
        metrics.update({f"loss_{modality}_{j}": v.detach() for j, v in enumerate(out.get("copies", ()))})
        z[modality] = out["z"].detach()
    n_obs = next(iter(inputs.values()))[0].shape[0]
    return LossOutput(loss=losses, extra_metrics=metrics, n_obs_minibatch=n_obs), z


def estimator_loss(stages: nn.ModuleDict, inputs: SpecificInputs, z: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum over modalities of the loss that fits each CLUB estimator on the detached ``Z`` (0 when none has one)."""
    total = torch.zeros((), device=next(iter(z.values())).device)
    for modality, (_, c_own, c_other) in inputs.items():
        if stages[modality].estimator_parameters():
            total = total + stages[modality].estimator_loss(z[modality], c_own, c_other)
    return total


def estimator_parameters(stages: nn.ModuleDict) -> list[nn.Parameter]:
    """Parameters of the stages' CLUB estimators (fitted by their own optimiser)."""
    return [p for stage in stages.values() for p in stage.estimator_parameters()]


def encoder_parameters(stages: nn.ModuleDict) -> list[nn.Parameter]:
    """Parameters the stages' method loss trains: everything but the CLUB estimators."""
    return [p for stage in stages.values() for p in stage.encoder_parameters()]


class SpecificStages(nn.Module):
    """A module whose ``specific`` :class:`~torch.nn.ModuleDict` holds the specific stages that
    :class:`~indiseek.train.SpecificTrainingPlan` trains; subclasses say how a minibatch becomes their inputs.
    """

    specific: nn.ModuleDict

    def specific_inputs(self, tensors: dict[str, torch.Tensor]) -> SpecificInputs:
        """``(X_i, C_i, C_{3-i})`` per stage from a minibatch."""
        raise NotImplementedError(f"{type(self).__name__} does not say how a minibatch becomes its stages' inputs.")

    def specific_loss(self, inputs: SpecificInputs) -> tuple[LossOutput, dict[str, torch.Tensor]]:
        """Loss of the specific stages and their ``Z`` (see :func:`~indiseek.module.specific_loss`)."""
        return specific_loss(self.specific, inputs)

    def estimator_loss(self, inputs: SpecificInputs, z: dict[str, torch.Tensor]) -> torch.Tensor:
        """Loss fitting the CLUB estimators on detached ``Z``."""
        return estimator_loss(self.specific, inputs, z)

    def loss(self, tensors: dict[str, torch.Tensor]) -> LossOutput:
        """The specific stages' loss on a minibatch."""
        return self.specific_loss(self.specific_inputs(tensors))[0]

    def restorable(self) -> dict[str, tuple[str, nn.Module]]:
        """What can be kept at its best epoch: each stage, with the extra metric of its loss."""
        return {m: (f"loss_{m}", stage) for m, stage in self.specific.items()}
