"""Neural-network building blocks: MLPs, the CLUB estimator, contrastive objectives and count transformations."""

from ._blocks import MLP, check_activation
from ._club import CriticCLUB, GaussianCLUB, ReverseRidgeCLUB, RidgeCLUB
from ._contrastive import clip_loss, orthogonality_loss
from ._transforms import clr, log_normalize

__all__ = [
    "MLP",
    "CriticCLUB",
    "GaussianCLUB",
    "ReverseRidgeCLUB",
    "RidgeCLUB",
    "clip_loss",
    "clr",
    "log_normalize",
    "orthogonality_loss",
    "check_activation",
]
