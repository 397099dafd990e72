"""The specific stages at several lambdas, trained side by side as one vectorised network."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from indiseek._checks import per_modality

from ._specific import SpecificInputs, SpecificModule, SpecificStages

_PREFIX = "stage."
_ESTIMATOR = "stage/estimator/"  # parameter names hold "/" for "."


class _Method(nn.Module):
    """Calls a method of ``stage`` by name (:func:`torch.func.functional_call` calls ``forward``)."""

    def __init__(self, stage: SpecificModule):
        super().__init__()
        self.stage = stage

    def forward(self, method: str, *args):
        return getattr(self.stage, method)(*args)


def reset_parameters(module: nn.Module, seed: int) -> None:
    """Draw every layer of ``module`` afresh from the generator ``seed`` sets, the global one left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for layer in module.modules():
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()


class StackedStage(nn.Module):
    """Copies of one :class:`~indiseek.module.SpecificModule`, one per lambda, stacked along a first axis.

    :meth:`loss` and :meth:`estimator_loss` run the stage's own methods on every copy at once
    (:func:`torch.func.vmap`): each layer becomes one batched product instead of one product per lambda. The copies
    share no parameter and their losses are summed, so each copy's gradient is its own loss's; Adam and AdamW act
    element by element, so one optimiser over the stacked parameters steps each copy as its own optimiser would.

    Parameters
    ----------
    stage
        The stage to copy (its networks, objective and estimator); it is not changed.
    lambdas
        Capture weight of each copy.
    seeds
        Seed of each copy's initialisation, drawn from the generator it sets (copies with the same seed start
        alike).
    """

    def __init__(self, stage: SpecificModule, lambdas: Sequence[float], seeds: Sequence[int]):
        super().__init__()
        if len(seeds) != len(lambdas):
            raise ValueError(f"One seed per copy: got {len(seeds)} seeds for {len(lambdas)} lambdas.")
        starts = {}
        for seed in dict.fromkeys(seeds):
            starts[seed] = _Method(copy.deepcopy(stage))
            reset_parameters(starts[seed], seed)
        self._template = [starts[seeds[0]]]  # in a list: not a submodule, its own tensors are never used
        params, buffers = stack_module_state([starts[seed] for seed in seeds])
        self.params = nn.ParameterDict({k.replace(".", "/"): nn.Parameter(v) for k, v in params.items()})
        self.buffer_names = list(buffers)
        for i, v in enumerate(buffers.values()):
            self.register_buffer(f"buffer_{i}", v)
        self.register_buffer("lambdas", torch.tensor([float(v) for v in lambdas]))

    def _state(self) -> dict[str, torch.Tensor]:
        state = {k.replace("/", "."): v for k, v in self.params.items()}
        return state | {k: getattr(self, f"buffer_{i}") for i, k in enumerate(self.buffer_names)}

    def encoder_parameters(self) -> list[nn.Parameter]:
        """Stacked parameters trained by the method's loss."""
        return [v for k, v in self.params.items() if not k.startswith(_ESTIMATOR)]

    def estimator_parameters(self) -> list[nn.Parameter]:
        """Stacked parameters of CLUB's estimators."""
        return [v for k, v in self.params.items() if k.startswith(_ESTIMATOR)]

    def set_input_scale(self, mean_sq_norm: torch.Tensor) -> None:
        """Store ``E|X_i|^2`` in every copy (checked as :meth:`SpecificModule.set_input_scale` checks it)."""
        stage = self._template[0].stage
        stage.set_input_scale(mean_sq_norm)
        i = self.buffer_names.index(f"{_PREFIX}input_sq_norm")
        getattr(self, f"buffer_{i}").copy_(stage.input_sq_norm.to(self.lambdas.device).expand(len(self.lambdas)))

    def loss(self, x: torch.Tensor, c_own: torch.Tensor, c_other: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`SpecificModule.loss` of every copy: ``loss`` summed over copies (each copy's in ``copies``), the
        terms averaged, ``z`` stacked.

        ``z`` has shape ``(n_lambdas, batch, n_specific)``.
        """

        def one(state, lambda_):
            return functional_call(self._template[0], state, ("loss", x, c_own, c_other, lambda_))

        # the copied stage is not a submodule, so it follows this one's mode here (Lightning sets each module's flag)
        self._template[0].train(self.training)

        out = vmap(one, randomness="different")(self._state(), self.lambdas)
        return {"loss": out["loss"].sum(), "copies": out["loss"], "independence": out["independence"].mean(),
                "capture": out["capture"].mean(), "z": out["z"]}  # fmt: skip

    def estimator_loss(self, z: torch.Tensor, c_own: torch.Tensor, c_other: torch.Tensor) -> torch.Tensor:
        """Sum over copies of :meth:`SpecificModule.estimator_loss`, each on its own ``z`` (stacked as :meth:`loss`)."""

        def one(state, z_copy):
            return functional_call(self._template[0], state, ("estimator_loss", z_copy, c_own, c_other))

        return vmap(one, randomness="different")(self._state(), z).sum()

    def copy_state(self, index: int) -> dict[str, torch.Tensor]:
        """State dict of copy ``index``, in :class:`SpecificModule`'s names."""
        return {k.removeprefix(_PREFIX): v[index].detach().clone() for k, v in self._state().items()}

    def load_copy_state(self, index: int, state: dict[str, torch.Tensor]) -> None:
        """Set copy ``index`` from a state dict of :meth:`copy_state`."""
        with torch.no_grad():
            for k, v in self._state().items():
                v[index].copy_(state[k.removeprefix(_PREFIX)])


class _Copy:
    """One copy of a :class:`StackedStage`, with a module's ``state_dict`` and ``load_state_dict``."""

    def __init__(self, stage: StackedStage, index: int):
        self.stage, self.index = stage, index

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.stage.copy_state(self.index)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.stage.load_copy_state(self.index, state)


class LambdaStack(SpecificStages):
    """A module's specific stages at several lambdas, trained together by :class:`~indiseek.train.SpecificTrainingPlan`.

    It presents the plan with what the module does (frozen shared encoders, :meth:`specific_inputs`,
    :meth:`specific_loss`, :meth:`estimator_loss`), with :class:`StackedStage` in place of each specific stage.

    Parameters
    ----------
    module
        A trained module with specific stages (:class:`~indiseek.module.IndiSeekModule`); not changed.
    lambdas
        The capture weight of each copy: one for both modalities, or one per modality (``{"rna": a, "protein": b}``).
    seeds
        Seed of each copy's initialisation (:class:`StackedStage`).
    """

    def __init__(self, module: nn.Module, lambdas: Sequence[float | dict[str, float]], seeds: Sequence[int]):
        super().__init__()
        self.base = module
        per_copy = [per_modality(v, "lambdas") for v in lambdas]
        self.specific = nn.ModuleDict(
            {m: StackedStage(s, [v[m] for v in per_copy], seeds) for m, s in module.specific.items()}
        )

    @property
    def shared(self) -> nn.Module:
        """The module's (frozen) shared encoders."""
        return self.base.shared

    def specific_inputs(self, tensors: dict[str, torch.Tensor]) -> SpecificInputs:
        """The module's ``(X_i, C_i, C_{3-i})`` per modality."""
        return self.base.specific_inputs(tensors)

    def restorable(self) -> dict[str, tuple[str, _Copy]]:
        """Each copy of each stage, with the extra metric of its own loss."""
        return {
            f"{m}_{j}": (f"loss_{m}_{j}", _Copy(stage, j))
            for m, stage in self.specific.items()
            for j in range(len(stage.lambdas))
        }

    def copy_state(self, index: int) -> dict[str, torch.Tensor]:
        """Specific stages of copy ``index`` as a state dict of the module (``specific.<modality>.<name>``)."""
        return {f"specific.{m}.{k}": v for m, s in self.specific.items() for k, v in s.copy_state(index).items()}
