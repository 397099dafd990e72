"""Training loops of the shared (CLIP) and specific stages."""

from ._loop import OPTIMIZERS, check_optimizer, make_optimizer, run_epochs, train_shared, train_specific

__all__ = ["OPTIMIZERS", "check_optimizer", "make_optimizer", "run_epochs", "train_shared", "train_specific"]
