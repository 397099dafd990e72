"""Contrastive and orthogonality objectives on batches of paired embeddings."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def clip_loss(
    a: torch.Tensor, b: torch.Tensor, temperature: torch.Tensor | float, groups: torch.Tensor | None = None
) -> torch.Tensor:
    """Symmetric InfoNCE (CLIP) loss of a batch of paired embeddings.

    With ``u = a / |a|`` and ``v = b / |b|`` row-wise, ``logits = u v^T / temperature`` and the loss is
    ``(CE(logits, diag) + CE(logits^T, diag)) / 2``: row ``k`` of ``a`` must pick out row ``k`` of ``b``
    among the batch, and vice versa. With ``groups``, only rows of the same group compete (the others' logits are
    masked), so whatever tells groups apart earns nothing.

    Parameters
    ----------
    a, b
        Paired embeddings, shape ``(batch, dim)`` each (the two may differ in ``dim`` only if projected first;
        here they must match).
    temperature
        Softmax temperature ``tau`` (> 0).
    groups
        Group (e.g. batch) of each row, shape ``(batch,)`` or ``(batch, 1)``.

    Returns
    -------
    Scalar loss (nats).
    """
    u = F.normalize(a, dim=1)
    v = F.normalize(b, dim=1)
    logits = u @ v.T / temperature
    if groups is not None:
        groups = groups.view(-1)
        logits = logits.masked_fill(groups[:, None] != groups[None, :], float("-inf"))
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def orthogonality_loss(z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Orthogonality penalty between two batches of features (InfoDisen's independence term).

    The Frobenius norm of ``N(z)^T N(c) / batch``, where ``N`` normalises each row to unit length: the
    cross-correlation of directions between every specific and every shared coordinate. The public
    DisentangledSSL code sums over the batch instead of averaging, which makes its scale (and so the meaning
    of ``lambda_``) depend on the batch size; dividing by the batch size removes that.

    Parameters
    ----------
    z
        Specific features, shape ``(batch, p)``.
    c
        Shared features, shape ``(batch, dc)``.

    Returns
    -------
    Scalar penalty, zero exactly when the directions are uncorrelated over the batch.
    """
    cross = F.normalize(z, dim=1).T @ F.normalize(c, dim=1) / z.shape[0]
    return torch.linalg.matrix_norm(cross)
