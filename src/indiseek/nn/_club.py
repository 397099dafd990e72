"""The CLUB upper bound of mutual information with a variational Gaussian (Cheng et al. 2020)."""

from __future__ import annotations

import torch
from torch import nn

from ._blocks import MLP

_LOGVAR_BOUND = 8.0


class GaussianCLUB(nn.Module):
    """Contrastive log-ratio upper bound ``CLUB(Z; C)`` with ``q(z | c) = N(mu(c), diag exp(logvar(c)))``.

    On a batch of pairs ``(z_k, c_k)``::

        CLUB = mean_k log q(z_k | c_k) - mean_{k,l} log q(z_l | c_k)

    The all-pairs mean is computed in closed form, ``O(batch * dim)``: for each ``k`` the mean over ``l`` of
    ``(z_l - mu_k)^2`` equals ``mean_l z_l^2 - 2 mu_k mean_l z_l + mu_k^2``. With ``sample=True`` the negative term
    uses one random permutation of the batch instead (the cheaper, noisier ``CLUBSample`` variant).

    ``q`` is fitted separately by maximum likelihood (:meth:`learning_loss`, on detached ``z``), with its own
    optimiser; the bound itself is minimised with respect to the encoder that produced ``z``.

    Parameters
    ----------
    n_z
        Dimension of ``z`` (the specific features).
    n_c
        Dimension of ``c`` (the shared features it is made independent of).
    n_hidden, n_layers
        Width and depth (linear layers) of the network giving the mean and log-variance.
    sample
        Use the sampled-negative estimator instead of the all-pairs one.
    """

    def __init__(self, n_z: int, n_c: int, n_hidden: int = 50, n_layers: int = 5, sample: bool = False):
        super().__init__()
        # One network with two heads (mean, log-variance): half the per-step cost of two networks.
        self.net = MLP(n_c, 2 * n_z, n_hidden, n_layers)
        self.sample = sample

    def moments(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of ``q(z | c)``, each ``(batch, n_z)``.

        The log-variance is softly bounded to ``(-8, 8)``: wide enough not to saturate in practice, unlike a
        plain ``tanh``, yet it keeps ``exp(-logvar)`` finite early in training.
        """
        mu, raw = self.net(c).chunk(2, dim=1)
        return mu, _LOGVAR_BOUND * torch.tanh(raw / _LOGVAR_BOUND)

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The CLUB estimate of ``I(Z; C)`` on a batch (nats). Log-variance terms and constants cancel."""
        mu, logvar = self.moments(c)
        precision = torch.exp(-logvar)
        positive = -0.5 * ((z - mu) ** 2 * precision).sum(1)
        if self.sample:
            perm = torch.randperm(z.shape[0], device=z.device)
            negative = -0.5 * ((z[perm] - mu) ** 2 * precision).sum(1)
        else:
            z_mean = z.mean(0)
            z_sq_mean = (z**2).mean(0)
            negative = -0.5 * ((z_sq_mean - 2 * mu * z_mean + mu**2) * precision).sum(1)
        return (positive - negative).mean()

    def log_likelihood(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Mean Gaussian log-likelihood ``mean_k log q(z_k | c_k)`` up to the constant ``-n_z/2 log(2 pi)``."""
        mu, logvar = self.moments(c)
        return (-0.5 * ((z - mu) ** 2 * torch.exp(-logvar) + logvar).sum(1)).mean()

    def learning_loss(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood that fits ``q``; ``z`` is detached so the encoder receives no gradient."""
        return -self.log_likelihood(z.detach(), c.detach())
