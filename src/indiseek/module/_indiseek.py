"""All networks of a two-modality model: input preparation, the shared stage and one specific stage per modality."""

from __future__ import annotations

import torch
from scvi import REGISTRY_KEYS
from scvi.module.base import LossOutput
from torch import nn

from indiseek._checks import per_modality
from indiseek._keys import MODALITIES

from ._inputs import ProteinInputs, RNAInputs
from ._objectives import get_objective
from ._shared import SharedModule
from ._specific import SpecificInputs, SpecificModule, SpecificStages

_COUNT_KEYS = {"rna": REGISTRY_KEYS.X_KEY, "protein": REGISTRY_KEYS.PROTEIN_EXP_KEY}


class IndiSeekModule(SpecificStages):
    """Input preparation, shared encoders ``f_rna``, ``f_protein`` and, unless the method is CLIP, specific stages.

    Works on minibatches of raw counts as scvi-tools' data loaders yield them (``tensors["X"]``: RNA,
    ``tensors["proteins"]``: protein); the fitted preparation lives in buffers (:class:`RNAInputs`,
    :class:`ProteinInputs`). The specific stages are :class:`~indiseek.module.SpecificModule` instances.

    Parameters
    ----------
    n_genes, n_selected_genes, n_pcs
        Registered genes, highly variable genes kept and principal components of the RNA inputs.
    n_proteins, n_protein_pcs
        Registered proteins and principal components of the protein inputs (``None``: the centred CLR of every
        protein).
    method
        ``"indiseek"``, ``"factorizedcl"``, ``"infodisen"`` or ``"clip"``.
    n_shared, n_specific, n_hidden, n_layers
        Output dimensions of the shared and specific features; width of every network and depth of the specific
        stages' networks.
    lambda_
        Weight of the capture term of the specific stages: one for both, or one per modality
        (``{"rna": a, "protein": b}``).
    temperature, learn_temperature, input_dropout
        CLIP temperature of the shared stage, whether it is learned, and the shared stage's input dropout (see
        :class:`~indiseek.module.SharedModule`).
    capture_temperature
        Temperature of the InfoNCE capture term (FactorizedCL, InfoDisen).
    club_sample, club_estimator
        The CLUB estimator (see :class:`SpecificModule`).
    n_batches
        Batches of the training cells; each batch's inputs are centred on its own means, and the CLIP negatives of
        a cell are the cells of its batch in the minibatch (minibatches then carry ``tensors["batch"]``).
    n_layers_shared, n_layers_estimator
        Depth of the shared stage's encoders and of CLUB's estimators (``None``: ``n_layers``).
    activation
        Activation of every network's hidden layers (see :class:`~indiseek.nn.MLP`).
    specific_input_dropout
        Input dropout of the specific stages' encoders (see :class:`SpecificModule`): one probability for both, or
        one per modality (``{"rna": p, "protein": q}``, a missing one 0).
    """

    def __init__(
        self,
        n_genes: int,
        n_selected_genes: int,
        n_pcs: int,
        n_proteins: int,
        method: str,
        n_shared: int,
        n_specific: int,
        n_hidden: int,
        n_layers: int,
        lambda_: float | dict[str, float],
        temperature: float,
        learn_temperature: bool,
        capture_temperature: float,
        club_sample: bool,
        club_estimator: str,
        n_batches: int = 1,
        input_dropout: float = 0.0,
        n_layers_shared: int | None = None,
        n_protein_pcs: int | None = None,
        n_layers_estimator: int | None = None,
        activation: str = "relu",
        specific_input_dropout: float | dict[str, float] = 0.0,
    ):
        super().__init__()
        self.inputs = nn.ModuleDict(
            {
                "rna": RNAInputs(n_genes, n_selected_genes, n_pcs, n_batches),
                "protein": ProteinInputs(n_proteins, n_batches, n_protein_pcs),
            }
        )
        self.shared = SharedModule(
            n_pcs, self.inputs["protein"].n_output, n_shared, n_hidden,
            n_layers if n_layers_shared is None else n_layers_shared, temperature, learn_temperature, input_dropout,
            activation,
        )  # fmt: skip
        objective = get_objective(method)
        lambdas = per_modality(lambda_, "lambda_")
        dropout = per_modality(specific_input_dropout, "specific_input_dropout", missing=0.0)
        self.specific = None
        if objective is not None:
            self.specific = nn.ModuleDict(
                {
                    modality: SpecificModule(
                        self.inputs[modality].n_output,
                        n_shared,
                        n_specific,
                        objective,
                        lambdas[modality],
                        n_hidden,
                        n_layers,
                        capture_temperature,
                        club_sample,
                        club_estimator,
                        n_layers_estimator,
                        activation,
                        dropout[modality],
                    )  # fmt: skip
                    for modality in MODALITIES
                }
            )
        # Each block of features is centred and scaled to unit mean per-dimension variance on the training cells
        # (set_embedding_scale): the blocks come out of their losses on scales 10x apart. In the concatenation,
        # each block is weighted by how much of its modality's inputs it explains (set_embedding_weights).
        self.dims = {"shared": n_shared, "specific": n_specific}
        for modality in MODALITIES:
            for kind in ("shared", "specific") if self.specific is not None else ("shared",):
                self.register_buffer(f"center_{kind}_{modality}", torch.zeros(self.dims[kind]))
                self.register_buffer(f"scale_{kind}_{modality}", torch.ones(()))
                self.register_buffer(f"weight_{kind}_{modality}", torch.ones(()))

    def prepare(self, tensors: dict[str, torch.Tensor], modality: str) -> torch.Tensor:
        """Prepared inputs ``X_i`` of one modality from a minibatch of raw counts."""
        return self.inputs[modality](tensors[_COUNT_KEYS[modality]], tensors.get(REGISTRY_KEYS.BATCH_KEY))

    def loss(self, tensors: dict[str, torch.Tensor]) -> LossOutput:
        """CLIP loss of the shared stage on a minibatch of paired cells (negatives within each cell's batch)."""
        x = {m: self.prepare(tensors, m) for m in MODALITIES}
        loss = self.shared.loss(x["rna"], x["protein"], tensors.get(REGISTRY_KEYS.BATCH_KEY))["loss"]
        return LossOutput(loss=loss, n_obs_minibatch=x["rna"].shape[0])

    def specific_inputs(self, tensors: dict[str, torch.Tensor]) -> SpecificInputs:
        """``(X_i, C_i, C_{3-i})`` per modality; the shared features are the (frozen) shared encoders' directions.

        See :meth:`~indiseek.module.SharedModule.directions`: on raw features of growing norm the decoder could use
        ``C_i`` only coarsely, and ``Z_i`` kept a copy of it that leaked ``C_{3-i}``.
        """
        x = {m: self.prepare(tensors, m) for m in MODALITIES}
        with torch.no_grad():
            c = {m: self.shared.directions(x[m], m) for m in MODALITIES}
        return {"rna": (x["rna"], c["rna"], c["protein"]), "protein": (x["protein"], c["protein"], c["rna"])}

    @torch.no_grad()
    def encode(
        self, counts: torch.Tensor, modality: str, batch: torch.Tensor | None = None, scaled: bool = True
    ) -> dict[str, torch.Tensor]:
        """Shared and (unless CLIP) specific features of one modality's raw counts (cells of ``batch``), by kind.

        Needs that modality only, so cells measured in one modality are embedded too. With ``scaled``, each block
        centred and divided by its scale (:meth:`set_embedding_scale`).
        """
        x = self.inputs[modality](counts, batch)
        out = {"shared": self.shared.encode(x, modality)}
        if self.specific is not None:
            out["specific"] = self.specific[modality].encode(x)
        if scaled:
            out = {k: (v - getattr(self, f"center_{k}_{modality}")) / getattr(self, f"scale_{k}_{modality}")
                   for k, v in out.items()}  # fmt: skip
        return out

    @torch.no_grad()
    def embed(self, tensors: dict[str, torch.Tensor], scaled: bool = True) -> dict[tuple[str, str], torch.Tensor]:
        """Shared and (unless CLIP) specific features of a minibatch of paired cells, keyed by ``(modality, kind)``."""
        batch = tensors.get(REGISTRY_KEYS.BATCH_KEY)
        return {
            (m, k): v for m in MODALITIES for k, v in self.encode(tensors[_COUNT_KEYS[m]], m, batch, scaled).items()
        }

    @torch.no_grad()
    def set_embedding_scale(self, sums: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]], n: int) -> None:
        """Set each block's centre (mean) and scale (root mean per-dimension variance) from training-cell sums.

        Parameters
        ----------
        sums
            Per ``(modality, kind)``: the sum of the unscaled features and of their squares over ``n`` cells.
        n
            Number of cells summed.
        """
        for (m, k), (total, total_sq) in sums.items():
            mean = total / n
            var = (total_sq / n - mean**2).clamp_min(0).mean()
            getattr(self, f"center_{k}_{m}").copy_(mean)
            getattr(self, f"scale_{k}_{m}").copy_(var.sqrt().clamp_min(1e-8))

    @torch.no_grad()
    def set_embedding_weights(self, weights: dict[tuple[str, str], float]) -> None:
        """Set each block's weight in the concatenated features (clipped at 0), or 1 for all if none is > 0.

        Parameters
        ----------
        weights
            Per ``(modality, kind)``: the share of the modality's prepared inputs the block explains (held-out R^2).
        """
        weights = {key: float(value) if value > 0 else 0.0 for key, value in weights.items()}  # NaN -> 0
        if not any(w > 0 for w in weights.values()):
            weights = dict.fromkeys(weights, 1.0)
        for (m, k), w in weights.items():
            getattr(self, f"weight_{k}_{m}").fill_(w)

    def concatenation_factor(self, modality: str, kind: str) -> float:
        """Factor of a unit-scaled block in the concatenated features: its total variance becomes weight x n_shared."""
        return float(getattr(self, f"weight_{kind}_{modality}") * self.dims["shared"] / self.dims[kind]) ** 0.5


class OracleModule(SpecificStages):
    """One modality's specific stage whose shared features are given with the data (the paper's simulations).

    Minibatches hold ``tensors["X"]`` (inputs), ``tensors["shared"]`` (``C_i``) and ``tensors["shared_other"]``
    (``C_{3-i}``).

    Parameters
    ----------
    stage
        The specific stage.
    """

    def __init__(self, stage: SpecificModule):
        super().__init__()
        self.specific = nn.ModuleDict({"x": stage})

    def specific_inputs(self, tensors: dict[str, torch.Tensor]) -> SpecificInputs:
        """``(X, C_i, C_{3-i})`` of the minibatch."""
        return {"x": (tensors[REGISTRY_KEYS.X_KEY], tensors["shared"], tensors["shared_other"])}
