"""The CLUB upper bound of mutual information with a variational Gaussian (Cheng et al. 2020)."""

from __future__ import annotations

import torch
from torch import nn

from ._blocks import MLP

_LOGVAR_BOUND = 8.0
_STD_EPS = 1e-6


def _standardize(z: torch.Tensor) -> torch.Tensor:
    return (z - z.mean(0)) / (z.std(0) + _STD_EPS)


def _gaussian_bound(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, sample: bool = False) -> torch.Tensor:
    """``mean_k log q(z_k | c_k) - mean_{k,l} log q(z_l | c_k)`` for ``q(. | c_k) = N(mu_k, diag exp(logvar_k))``."""
    precision = torch.exp(-logvar)
    positive = -0.5 * ((z - mu) ** 2 * precision).sum(1)
    if sample:
        perm = torch.randperm(z.shape[0], device=z.device)
        negative = -0.5 * ((z[perm] - mu) ** 2 * precision).sum(1)
    else:
        z_mean = z.mean(0)
        z_sq_mean = (z**2).mean(0)
        negative = -0.5 * ((z_sq_mean - 2 * mu * z_mean + mu**2) * precision).sum(1)
    return (positive - negative).mean()


class GaussianCLUB(nn.Module):
    """Contrastive log-ratio upper bound ``CLUB(Z; C)`` with ``q(z | c) = N(mu(c), diag exp(logvar(c)))``.

    On a batch of pairs ``(z_k, c_k)``::

        CLUB = mean_k log q(z_k | c_k) - mean_{k,l} log q(z_l | c_k)

    The all-pairs mean is computed in closed form, ``O(batch * dim)``: for each ``k`` the mean over ``l`` of
    ``(z_l - mu_k)^2`` equals ``mean_l z_l^2 - 2 mu_k mean_l z_l + mu_k^2``. With ``sample=True`` the negative term
    uses one random permutation of the batch instead (the cheaper, noisier ``CLUBSample`` variant).

    ``q`` is fitted separately by maximum likelihood (:meth:`learning_loss`, on detached ``z``), with its own
    optimiser; the bound itself is minimised with respect to the encoder that produced ``z``.

    With ``standardize=True`` each coordinate of ``z`` is centred and scaled to unit variance over the batch before
    ``q`` sees it. Mutual information does not change under such a map, but the estimate does: ``q`` is fitted a few
    steps at a time and lags behind the scale of ``z``, so on raw ``z`` the encoder can lower the estimate by
    shrinking ``Z`` as a whole instead of removing its dependence on ``C``. Standardised, the bound is scale-free
    like IndiSeek's reconstruction term and only dependence lowers it.

    Parameters
    ----------
    n_z
        Dimension of ``z`` (the specific features).
    n_c
        Dimension of ``c`` (the shared features it is made independent of).
    n_hidden, n_layers, activation
        Width, depth (linear layers) and activation of the network giving the mean and log-variance.
    sample
        Use the sampled-negative estimator instead of the all-pairs one.
    standardize
        Standardise each coordinate of ``z`` over the batch first.
    """

    def __init__(
        self,
        n_z: int,
        n_c: int,
        n_hidden: int = 50,
        n_layers: int = 5,
        sample: bool = False,
        standardize: bool = False,
        activation: str = "relu",
    ):
        super().__init__()
        # One network with two heads (mean, log-variance): half the per-step cost of two networks.
        self.net = MLP(n_c, 2 * n_z, n_hidden, n_layers, activation)
        self.sample = sample
        self.standardize = standardize

    def _prepare(self, z: torch.Tensor) -> torch.Tensor:
        return _standardize(z) if self.standardize else z

    def moments(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of ``q(z | c)``, each ``(batch, n_z)``.

        The log-variance is softly bounded to ``(-8, 8)``: wide enough not to saturate in practice, unlike a
        plain ``tanh``, yet it keeps ``exp(-logvar)`` finite early in training.
        """
        mu, raw = self.net(c).chunk(2, dim=1)
        return mu, _LOGVAR_BOUND * torch.tanh(raw / _LOGVAR_BOUND)

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The CLUB estimate of ``I(Z; C)`` on a batch (nats). Log-variance terms and constants cancel."""
        z = self._prepare(z)
        mu, logvar = self.moments(c)
        return _gaussian_bound(z, mu, logvar, self.sample)

    def log_likelihood(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Mean Gaussian log-likelihood ``mean_k log q(z_k | c_k)`` up to the constant ``-n_z/2 log(2 pi)``."""
        z = self._prepare(z)
        mu, logvar = self.moments(c)
        return (-0.5 * ((z - mu) ** 2 * torch.exp(-logvar) + logvar).sum(1)).mean()

    def learning_loss(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood that fits ``q``; ``z`` is detached so the encoder receives no gradient."""
        return -self.log_likelihood(z.detach(), c.detach())


def _with_intercept(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.ones_like(x[:, :1])], dim=1)


class _MovingRidge(nn.Module):
    """A ridge regression of ``n_y`` targets on ``n_x`` predictors and an intercept, refitted on every batch from
    moments averaged over recent training batches (kept in the buffers ``names``).
    """

    def __init__(self, n_x: int, n_y: int, momentum: float, ridge: float, names: tuple[str, str]):
        super().__init__()
        self.momentum, self.ridge, self._names = momentum, ridge, names
        self.register_buffer("n_updates", torch.zeros((), dtype=torch.long))
        self.register_buffer(names[0], torch.zeros(n_x + 1, n_x + 1))
        self.register_buffer(names[1], torch.zeros(n_x + 1, n_y))

    def reset_parameters(self) -> None:
        """Forget the moving average: the next training batch starts it afresh."""
        for buffer in self.buffers():
            buffer.zero_()

    def _coefficients(self, x1: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Ridge coefficients of ``y`` on ``x1`` (whose last column is the unpenalised intercept), without gradient.

        Updates the moving average when training. Without data-dependent branches, so that copies of the estimator
        run side by side under :func:`torch.func.vmap` (:meth:`~indiseek.IndiSeek.sweep_lambda`).
        """
        xx_moments, xy_moments = (getattr(self, name) for name in self._names)
        with torch.no_grad():
            x1, y = x1.detach(), y.detach()
            xx, xy = x1.T @ x1 / len(x1), x1.T @ y / len(x1)
            seen = self.n_updates > 0
            if self.training:  # the average starts from the first batch
                for moments, batch in ((xx_moments, xx), (xy_moments, xy)):
                    moments.copy_(
                        torch.where(seen, torch.add(moments * self.momentum, batch, alpha=1 - self.momentum), batch)
                    )
                self.n_updates.add_(1)
                seen = torch.ones_like(seen)
            xx = torch.where(seen, xx_moments, xx)  # before any training step: the batch's own moments
            xy = torch.where(seen, xy_moments, xy)
            shrunk = torch.cat([torch.ones_like(xx[0, 1:]), torch.zeros_like(xx[0, :1])])  # not the intercept
            return torch.linalg.solve(xx + torch.diag(self.ridge * torch.diagonal(xx) * shrunk), xy)


class RidgeCLUB(_MovingRidge):
    """Gaussian CLUB whose ``q(z | c)`` is fitted in closed form: a ridge regression of ``Z`` on ``C``.

    :class:`GaussianCLUB` fits ``q`` by a few gradient steps per encoder step, and the encoder, which moves each
    ``z_k`` away from ``q``'s current mean ``mu(c_k)``, can outrun it: on simulated CITE-seq ``q``'s mean settles
    on the batch mean (the bound then reads 0 nats and passes no gradient) while ``Z`` still depends on ``C``.
    Here ``q``'s mean is the ridge regression of the (standardised) ``Z`` on ``(C, 1)`` from sufficient statistics
    averaged over recent training minibatches (an exponential moving average, the current batch included), its
    variance that of the batch's residuals. ``q`` has no parameters and no lag beyond that average; what the
    encoder leaves predictable from ``C`` by a linear map is always penalised. Dependence that no linear map of
    ``C`` predicts is not seen, nor much of a direction of ``Z`` that holds little of any coordinate's variance
    (:class:`ReverseRidgeCLUB` sees it).

    Parameters
    ----------
    n_z
        Dimension of ``z``.
    n_c
        Dimension of ``c``.
    momentum
        Weight of the past in the moving average of the statistics (0.95: about the last 20 minibatches).
    ridge
        Ridge penalty, relative to each feature's second moment.
    """

    def __init__(self, n_z: int, n_c: int, momentum: float = 0.95, ridge: float = 0.01):
        super().__init__(n_c, n_z, momentum, ridge, ("c_moments", "cz_moments"))

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The CLUB estimate of ``I(Z; C)`` on a batch (nats), with ``q`` refitted first."""
        z, c1 = _standardize(z), _with_intercept(c)
        with torch.no_grad():
            mu = c1 @ self._coefficients(c1, z)
            logvar = ((z - mu) ** 2).mean(0).clamp_min(_STD_EPS).log().expand_as(mu)
        return _gaussian_bound(z, mu, logvar)


class ReverseRidgeCLUB(_MovingRidge):
    """CLUB with ``q(c | z)``: a ridge regression of ``C`` on ``Z``, fitted as :class:`RidgeCLUB` fits its own.

    CLUB bounds ``I(Z; C)`` through either conditional. :class:`RidgeCLUB` regresses each standardised coordinate
    of ``Z`` on ``C``, so a direction of ``Z`` that ``C`` predicts but that holds little of any coordinate's
    variance adds little to its estimate. Here both ``Z`` and ``C`` are standardised and ``q``'s mean is the ridge
    regression of ``C`` on ``(Z, 1)``: its coefficients are refitted without gradient, and the encoder's gradient
    passes through the prediction ``mu(z_k)``. The bound then charges whatever a linear map of ``Z`` predicts of
    ``C``, in any direction of ``Z`` and at any scale: the held-out leak ``r2_linear`` of
    :func:`~indiseek.tl.independence` measures the same. Dependence that no linear map of ``Z`` predicts is not
    seen.

    Parameters
    ----------
    n_z
        Dimension of ``z``.
    n_c
        Dimension of ``c``.
    momentum
        Weight of the past in the moving average of the statistics (0.95: about the last 20 minibatches).
    ridge
        Ridge penalty, relative to each feature's second moment.
    """

    def __init__(self, n_z: int, n_c: int, momentum: float = 0.95, ridge: float = 0.01):
        super().__init__(n_z, n_c, momentum, ridge, ("z_moments", "zc_moments"))

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The CLUB estimate of ``I(Z; C)`` on a batch (nats), with ``q`` refitted first; differentiable in ``z``."""
        z1, c = _with_intercept(_standardize(z)), _standardize(c)
        mu = z1 @ self._coefficients(z1, c)
        with torch.no_grad():
            logvar = ((c - mu) ** 2).mean(0).clamp_min(_STD_EPS).log().expand_as(mu)
        return _gaussian_bound(c, mu, logvar)


class CriticCLUB(nn.Module):
    """A CLUB-style upper bound of ``I(Z; C)`` from a scalar critic ``f(z, c)`` that sees the joint distribution.

    A Gaussian ``q(z | c)`` (:class:`GaussianCLUB`) sees only how the mean and the per-coordinate spread of ``Z``
    depend on ``C``; a dependence carried by the joint distribution of several coordinates of ``Z`` escapes it.
    Here an MLP critic ``f`` is fitted by logistic regression to tell matched pairs ``(z_k, c_k)`` from shuffled
    pairs ``(z_k, c_pi(k))``; at its optimum ``f = log p(z, c) / (p(z) p(c))``, and the bound::

        mean_k f(z_k, c_k) - mean_k f(z_k, c_pi(k))

    estimates ``I(Z; C)`` plus the lautum information, so it is zero exactly under independence and otherwise
    above ``I(Z; C)``. This follows the idea of FactorCL's ``CLUBInfoNCECritic`` (a critic in place of a Gaussian)
    but fits the critic against one shuffled negative per pair, ``O(batch)`` per step like :class:`GaussianCLUB`
    with ``sample=True``.

    Parameters
    ----------
    n_z
        Dimension of ``z``.
    n_c
        Dimension of ``c``.
    n_hidden, n_layers, activation
        Width, depth (linear layers) and activation of the critic.
    """

    def __init__(self, n_z: int, n_c: int, n_hidden: int = 50, n_layers: int = 5, activation: str = "relu"):
        super().__init__()
        self.net = MLP(n_z + n_c, 1, n_hidden, n_layers, activation)

    def critic(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Critic values ``f(z_k, c_k)``, shape ``(batch,)``."""
        return self.net(torch.cat([z, c], dim=1)).squeeze(1)

    def _shuffled(self, c: torch.Tensor) -> torch.Tensor:
        return c[torch.randperm(c.shape[0], device=c.device)]

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The bound on a batch (nats), differentiable with respect to ``z``."""
        return self.critic(z, c).mean() - self.critic(z, self._shuffled(c)).mean()

    def learning_loss(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Logistic loss of matched against shuffled pairs that fits the critic; ``z`` and ``c`` are detached."""
        z, c = z.detach(), c.detach()
        matched, shuffled = self.critic(z, c), self.critic(z, self._shuffled(c))
        return nn.functional.softplus(-matched).mean() + nn.functional.softplus(shuffled).mean()
