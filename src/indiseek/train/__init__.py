"""Training loops of the shared (CLIP) and specific stages."""

from ._loop import run_epochs, train_shared, train_specific

__all__ = ["run_epochs", "train_shared", "train_specific"]
