"""Per-cell count transformations applied to minibatches on the device."""

from __future__ import annotations

import torch


def log_normalize(counts: torch.Tensor, target_sum: float = 1e4) -> torch.Tensor:
    """``log1p`` of counts scaled to ``target_sum`` per cell (scanpy's ``normalize_total`` then ``log1p``).

    Parameters
    ----------
    counts
        Raw counts, ``(cells, genes)``, every cell with at least one count.
    target_sum
        Counts per cell after scaling.
    """
    return torch.log1p(counts * (target_sum / counts.sum(1, keepdim=True)))


def clr(counts: torch.Tensor) -> torch.Tensor:
    """Centred log-ratio per cell, Seurat's ADT normalisation (``NormalizeData(method="CLR", margin=2)``).

    ``log1p(x_j / g)`` with ``g = exp(mean_j log1p(x_j))``, the flavour of Hao et al. 2021 (the WNN paper) and of
    ``muon.prot.pp.clr(adata, axis=1)``; the IndiSeek paper only says "centred log-ratio per cell".

    Parameters
    ----------
    counts
        Raw counts, ``(cells, proteins)``.
    """
    g = torch.exp(torch.log1p(counts).mean(1, keepdim=True))
    return torch.log1p(counts / g)
