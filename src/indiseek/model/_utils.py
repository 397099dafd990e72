"""Helpers shared by the user-facing classes: devices, seeds, epochs and validation of names."""

from __future__ import annotations

import numpy as np
import torch

MODALITIES = ("rna", "protein")
KINDS = ("shared", "specific")


def resolve_device(accelerator: str = "auto", device: int | str = "auto") -> torch.device:
    """Turn scvi-tools/Lightning style ``accelerator`` and ``device`` arguments into a :class:`torch.device`.

    ``accelerator`` is ``"auto"``, ``"cpu"``, ``"gpu"``/``"cuda"`` or ``"mps"``; ``device`` is ``"auto"``, an index,
    or a torch device string such as ``"cuda:1"``.
    """
    if isinstance(device, str) and device not in ("auto",) and not device.isdigit():
        return torch.device(device)
    accelerator = accelerator.lower()
    if accelerator == "auto":
        accelerator = "cuda" if torch.cuda.is_available() else "cpu"
    if accelerator == "gpu":
        accelerator = "cuda"
    if accelerator == "cpu":
        return torch.device("cpu")
    if accelerator == "cuda" and not torch.cuda.is_available():
        raise ValueError("accelerator='gpu' was requested but no CUDA device is available; use accelerator='cpu'.")
    if accelerator not in ("cuda", "mps"):
        raise ValueError(f"Unknown accelerator {accelerator!r}: use 'auto', 'cpu', 'gpu' or 'mps'.")
    index = 0 if device == "auto" else int(device)
    return torch.device(accelerator, index) if accelerator == "cuda" else torch.device(accelerator)


def max_epochs_heuristic(n_cells: int, cap: int = 400, decay_at: int = 20_000) -> int:
    """scvi-tools' rule: ``min(400, round(400 * 20000 / n_cells))`` epochs, more for small data, at least 1."""
    return max(1, min(cap, round(cap * decay_at / max(n_cells, 1))))


def check_choice(value, allowed: tuple[str, ...], name: str) -> None:
    """Raise a ``ValueError`` naming the allowed values when ``value`` is not one of them."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not valid: use one of {', '.join(repr(a) for a in allowed)}.")


def as_float_tensor(x, device: torch.device) -> torch.Tensor:
    """A dense float32 tensor on ``device`` from a numpy array or array-like."""
    return torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)


def split_indices(n: int, train_size: float, validation_size: float | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random train/validation split of ``n`` cells (validation defaults to the rest)."""
    if not 0 < train_size <= 1:
        raise ValueError(f"train_size must be in (0, 1], got {train_size}.")
    validation_size = 1 - train_size if validation_size is None else validation_size
    if validation_size < 0 or train_size + validation_size > 1 + 1e-9:
        raise ValueError("validation_size must be >= 0 and train_size + validation_size <= 1.")
    perm = np.random.default_rng(seed).permutation(n)
    n_train = int(np.ceil(train_size * n)) if validation_size > 0 else int(round(train_size * n))
    n_val = min(int(np.floor(validation_size * n)), n - n_train)
    return np.sort(perm[:n_train]), np.sort(perm[n_train : n_train + n_val])
