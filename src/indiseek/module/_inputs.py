"""Input preparation as module buffers, applied to minibatches of raw counts on the device.

The arrays are fitted once on the training cells (:mod:`indiseek.pp`) and stored here, so that the networks see
the same inputs at training, embedding and query time, and a saved model carries them.
"""

from __future__ import annotations

import torch
from torch import nn

from indiseek.nn import clr, log_normalize


class RNAInputs(nn.Module):
    """Principal-component scores of ``log1p``-normalised counts on the selected genes.

    ``(log1p(1e4 * x / sum(x))[:, genes] - mean) @ components.T``, as ``sc.pp.normalize_total(target_sum=1e4)``,
    ``sc.pp.log1p`` and ``sc.pp.pca`` on the highly variable genes compute it.

    Parameters
    ----------
    n_genes
        Registered genes (columns of the counts).
    n_selected
        Highly variable genes kept.
    n_pcs
        Principal components (output dimension).
    """

    def __init__(self, n_genes: int, n_selected: int, n_pcs: int):
        super().__init__()
        self.n_genes = n_genes
        self.register_buffer("genes", torch.zeros(n_selected, dtype=torch.long))
        self.register_buffer("mean", torch.zeros(n_selected))
        self.register_buffer("components", torch.zeros(n_pcs, n_selected))

    @property
    def n_output(self) -> int:
        """Dimension of the prepared inputs."""
        return self.components.shape[0]

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        """Scores ``(cells, n_pcs)`` of raw counts ``(cells, n_genes)``."""
        return (log_normalize(counts)[:, self.genes] - self.mean) @ self.components.T


class ProteinInputs(nn.Module):
    """Centred log-ratio per cell (:func:`~indiseek.nn.clr`), centred with the training cells' means.

    Parameters
    ----------
    n_proteins
        Registered proteins.
    """

    def __init__(self, n_proteins: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_proteins))

    @property
    def n_output(self) -> int:
        """Dimension of the prepared inputs."""
        return self.mean.shape[0]

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        """Centred CLR values ``(cells, n_proteins)`` of raw counts."""
        return clr(counts) - self.mean
