"""The shared stage: two encoders trained with the symmetric InfoNCE (CLIP) loss."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from indiseek.nn import MLP, clip_loss


class SharedModule(nn.Module):
    """Encoders of the shared features ``C_rna = f_rna(X_rna)`` and ``C_protein = f_protein(X_protein)``.

    Parameters
    ----------
    n_input_rna, n_input_protein
        Input dimensions (after input preparation).
    n_shared
        Dimension ``dc`` of the shared features.
    n_hidden, n_layers
        Width and depth (linear layers) of the encoders.
    temperature
        CLIP softmax temperature ``tau``; the initial value when ``learn_temperature`` is true.
    learn_temperature
        Learn ``log(1/tau)`` with the encoders, as CLIP does (bounded so that ``tau >= 0.01``).
    input_dropout
        In training, each input feature of each cell is zeroed with this probability (the others scaled by
        ``1 / (1 - input_dropout)``) before the encoders: an augmentation that keeps the encoders from memorising
        the training pairs. Features are never dropped when encoding.
    activation
        Activation of the encoders' hidden layers (see :class:`~indiseek.nn.MLP`).
    """

    def __init__(
        self,
        n_input_rna: int,
        n_input_protein: int,
        n_shared: int = 50,
        n_hidden: int = 50,
        n_layers: int = 5,
        temperature: float = 0.1,
        learn_temperature: bool = True,
        input_dropout: float = 0.0,
        activation: str = "relu",
    ):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}.")
        if not 0 <= input_dropout < 1:
            raise ValueError(f"input_dropout must be in [0, 1), got {input_dropout}.")
        self.input_dropout = input_dropout
        self.rna_encoder = MLP(n_input_rna, n_shared, n_hidden, n_layers, activation)
        self.protein_encoder = MLP(n_input_protein, n_shared, n_hidden, n_layers, activation)
        log_scale = torch.tensor(math.log(1.0 / temperature))
        if learn_temperature:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    @property
    def temperature(self) -> torch.Tensor:
        """Current temperature ``tau`` (at least 0.01)."""
        return torch.exp(-self.log_scale.clamp(max=math.log(100.0)))

    def encode(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """Shared features of one modality (``"rna"`` or ``"protein"``), shape ``(batch, n_shared)``."""
        encoder = self.rna_encoder if modality == "rna" else self.protein_encoder
        return encoder(x)

    def directions(self, x: torch.Tensor, modality: str) -> torch.Tensor:
        """Shared features as the CLIP loss sees them: each cell's vector scaled to norm ``sqrt(n_shared)``.

        The loss compares cosines only, so nothing holds the features' norms in place and they drift in training,
        the more the longer it runs. The specific stage receives these directions, whose coordinates are on the
        scale of standardised inputs, instead of the raw outputs.
        """
        c = self.encode(x, modality)
        return F.normalize(c, dim=1) * c.shape[1] ** 0.5

    def loss(
        self, x_rna: torch.Tensor, x_protein: torch.Tensor, batch: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """CLIP loss of a batch of paired cells; with ``batch``, each cell's negatives are cells of its batch."""
        if self.training and self.input_dropout > 0:
            x_rna, x_protein = F.dropout(x_rna, self.input_dropout), F.dropout(x_protein, self.input_dropout)
        loss = clip_loss(self.rna_encoder(x_rna), self.protein_encoder(x_protein), self.temperature, batch)
        return {"loss": loss}
