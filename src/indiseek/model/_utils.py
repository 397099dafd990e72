"""Checks shared by the user-facing classes."""

from __future__ import annotations

import torch


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors that hold NaN or infinite values."""
    return [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
