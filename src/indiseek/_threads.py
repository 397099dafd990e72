"""PyTorch's thread count, kept across calls into numba-compiled libraries."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch

F = TypeVar("F", bound=Callable)


def keep_torch_threads(func: F) -> F:
    """Restore PyTorch's intra-op thread count after ``func``.

    numba's OpenMP threading layer (used by UMAP, pynndescent and muon's WNN) shares PyTorch's OpenMP runtime and, on
    its first parallel call, sets that runtime's thread count to every core: a ``torch.set_num_threads(1)`` made
    before would silently become one thread per core for every later training.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        n_threads = torch.get_num_threads()
        try:
            return func(*args, **kwargs)
        finally:
            if torch.get_num_threads() != n_threads:
                torch.set_num_threads(n_threads)

    return wrapper  # type: ignore[return-value]
