"""Neural-network building blocks: MLPs, the CLUB estimator and contrastive objectives."""

from ._blocks import MLP
from ._club import CriticCLUB, GaussianCLUB
from ._contrastive import clip_loss, orthogonality_loss

__all__ = ["MLP", "CriticCLUB", "GaussianCLUB", "clip_loss", "orthogonality_loss"]
