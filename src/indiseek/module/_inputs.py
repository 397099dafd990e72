"""Input preparation as module buffers, applied to minibatches of raw counts on the device.

The arrays are fitted once on the training cells (:mod:`indiseek.pp`) and stored here, so that the networks see
the same inputs at training, embedding and query time, and a saved model carries them.
"""

from __future__ import annotations

import torch
from torch import nn

from indiseek.nn import clr, log_normalize


class RNAInputs(nn.Module):
    """Principal-component scores of ``log1p``-normalised counts on the selected genes, centred per batch.

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
    n_batches
        Batches: each is centred on its own mean (``mean + batch_offset[batch]``).
    """

    def __init__(self, n_genes: int, n_selected: int, n_pcs: int, n_batches: int = 1):
        super().__init__()
        self.n_genes = n_genes
        self.register_buffer("genes", torch.zeros(n_selected, dtype=torch.long))
        self.register_buffer("mean", torch.zeros(n_selected))
        self.register_buffer("components", torch.zeros(n_pcs, n_selected))
        _batch_offsets(self, n_batches, n_selected)

    @property
    def n_output(self) -> int:
        """Dimension of the prepared inputs."""
        return self.components.shape[0]

    def uncentred(self, counts: torch.Tensor) -> torch.Tensor:
        """``log1p``-normalised counts of the selected genes, the values the batches' means are taken of."""
        return log_normalize(counts)[:, self.genes]

    def forward(self, counts: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """Scores ``(cells, n_pcs)`` of raw counts ``(cells, n_genes)`` (of cells from ``batch``, codes)."""
        return (self.uncentred(counts) - self.mean - _offset(self, batch)) @ self.components.T

    def add_batches(self, offsets: torch.Tensor) -> None:
        """Append the offsets ``(n_new, n_selected)`` of new batches."""
        _add_batches(self, offsets)


class ProteinInputs(nn.Module):
    """Centred log-ratio per cell (:func:`~indiseek.nn.clr`), centred with the training cells' means; with ``n_pcs``,
    its principal-component scores.

    ``(clr(x) - mean) @ components.T``, or ``clr(x) - mean`` without components.

    Parameters
    ----------
    n_proteins
        Registered proteins.
    n_batches
        Batches: each is centred on its own mean (``mean + batch_offset[batch]``).
    n_pcs
        Principal components of the centred CLR (output dimension); ``None`` keeps the centred CLR of every protein.
    """

    def __init__(self, n_proteins: int, n_batches: int = 1, n_pcs: int | None = None):
        super().__init__()
        self.n_proteins = n_proteins
        self.register_buffer("mean", torch.zeros(n_proteins))
        self.register_buffer("components", None if n_pcs is None else torch.zeros(n_pcs, n_proteins))
        _batch_offsets(self, n_batches, n_proteins)

    @property
    def n_output(self) -> int:
        """Dimension of the prepared inputs."""
        return self.n_proteins if self.components is None else self.components.shape[0]

    def uncentred(self, counts: torch.Tensor) -> torch.Tensor:
        """CLR values, the values the batches' means are taken of."""
        return clr(counts)

    def centred(self, counts: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """Centred CLR values ``(cells, n_proteins)`` of raw counts (of cells from ``batch``, codes)."""
        return self.uncentred(counts) - self.mean - _offset(self, batch)

    def forward(self, counts: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """Prepared inputs ``(cells, n_output)`` of raw counts ``(cells, n_proteins)`` (of cells from ``batch``)."""
        x = self.centred(counts, batch)
        return x if self.components is None else x @ self.components.T

    def add_batches(self, offsets: torch.Tensor) -> None:
        """Append the offsets ``(n_new, n_proteins)`` of new batches."""
        _add_batches(self, offsets)


def _batch_offsets(inputs: nn.Module, n_batches: int, n_features: int) -> None:
    """With several batches, a buffer ``batch_offset`` ``(n_batches, n_features)``: each batch's mean minus ``mean``."""
    inputs.n_batches = n_batches
    if n_batches > 1:
        inputs.register_buffer("batch_offset", torch.zeros(n_batches, n_features))


def _add_batches(inputs: nn.Module, offsets: torch.Tensor) -> None:
    current = inputs.batch_offset if inputs.n_batches > 1 else torch.zeros_like(inputs.mean)[None]
    combined = torch.cat([current, offsets.to(current)])
    if inputs.n_batches > 1:
        del inputs.batch_offset
    inputs.register_buffer("batch_offset", combined)
    inputs.n_batches = combined.shape[0]


def _offset(inputs: nn.Module, batch: torch.Tensor | None) -> torch.Tensor | float:
    """The offsets of the cells' batches (0 with a single batch)."""
    if inputs.n_batches == 1:
        return 0.0
    if batch is None:
        raise ValueError("These inputs are centred per batch: pass the cells' batch codes.")
    return inputs.batch_offset[batch.long().view(-1)]
