"""One defaults object per setting; every entry point reads its defaults from here, never from a copy.

``CITESEQ`` serves :class:`~indiseek.IndiSeek`, ``indiseek run`` and the CITE-seq benchmarks; ``SIMULATION`` serves
:func:`~indiseek.fit_specific`, :mod:`indiseek.sim` and ``indiseek simulate`` (the paper's oracle simulations).
"""

from __future__ import annotations

__all__ = [
    "CITESEQ",
    "OPTION_DEFAULTS",
    "SIMULATION",
    "CiteseqDefaults",
    "SpecificDefaults",
    "record_label",
    "record_options",
]

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class SpecificDefaults:
    """Defaults of the specific stage and of its training.

    Attributes
    ----------
    method
        ``"indiseek"``; the baselines are ``"factorizedcl"``, ``"infodisen"`` and ``"clip"``.
    lambda_
        Weight of the capture term: small favours independence from the shared features, large completeness.
    n_specific
        Dimension of the specific features ``Z``.
    n_hidden, n_layers
        Width and depth (linear layers) of every network.
    capture_temperature
        Temperature of the InfoNCE capture term of FactorizedCL and InfoDisen.
    club_sample
        Sampled-negative Gaussian CLUB (one permuted negative per pair) instead of all pairs.
    club_estimator
        ``"gaussian"`` (Gaussian ``q(z | c)`` on ``Z`` standardised over the batch), ``"gaussian_raw"`` (on raw
        ``Z``), ``"ridge"`` (the same Gaussian with its mean refitted in closed form on every minibatch),
        ``"ridge_reverse"`` (the same through ``q(c | z)``, a ridge regression of ``C`` on ``Z``) or ``"critic"`` (a
        scalar critic of ``(z, c)``).
    max_epochs, batch_size, lr
        Epochs of each stage, cells per batch and learning rate of every network.
    weight_decay, optimizer
        Weight decay and optimiser (``"Adam"`` or ``"AdamW"``) of the encoders, decoders and critics.
    estimator_lr, n_estimator_steps
        Learning rate (``None``: ``lr``) and steps per encoder step of CLUB's estimator.
    train_size
        Fraction of cells (rows) used for training; the rest validates.
    early_stopping
        Stop a stage when its validation loss stops improving.
    """

    method: str = "indiseek"
    lambda_: float = 0.1
    n_specific: int = 10
    n_hidden: int = 100
    n_layers: int = 5
    capture_temperature: float = 0.1
    club_sample: bool = False
    club_estimator: str = "gaussian"
    max_epochs: int = 40
    batch_size: int = 100
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "Adam"
    estimator_lr: float | None = 3e-3
    n_estimator_steps: int = 5
    train_size: float = 1.0
    early_stopping: bool = False

    def asdict(self) -> dict:
        """The defaults as a plain dict."""
        return asdict(self)


@dataclass(frozen=True)
class CiteseqDefaults(SpecificDefaults):
    """Defaults on CITE-seq data: the specific stage's, plus the shared stage and the input preparation.

    Attributes
    ----------
    n_shared
        Dimension of the shared features ``C``.
    n_layers_shared, n_layers_estimator
        Depth (linear layers) of the shared stage's encoders and of CLUB's estimator; ``n_layers`` sets that of
        the specific stages' other networks.
    activation
        Activation of every network's hidden layers: ``"leaky_relu"`` or the paper's ``"relu"``.
    temperature, learn_temperature
        CLIP temperature of the shared stage (its initial value when learned) and whether it is learned.
    input_dropout
        Probability of zeroing each input feature of a cell in a shared-stage training step (augmentation).
    specific_input_dropout
        The same in the specific stages' encoders (their capture term reconstructs the whole input).
    n_top_genes, n_pcs
        Highly variable genes and principal components of the RNA inputs (paper: 200 components).
    n_protein_pcs
        Principal components of the protein inputs of panels with more antibodies than that.
    early_stopping_patience
        Epochs without improvement of the validation loss before a stage stops.
    min_specific_steps
        Minibatch steps the specific stage takes at least when ``max_epochs`` is left unset: on few cells it runs
        more epochs, and early stopping waits for these steps.
    max_steps
        Minibatch steps each stage takes at most when ``max_epochs`` is left unset: beyond about 30,000 cells it
        runs fewer epochs (92 on 100,000 cells, 10 on a million), as scvi-tools' models shorten their default
        budget on large data.
    """

    lambda_: float | dict[str, float] = field(default_factory=lambda: {"rna": 200.0, "protein": 300.0})
    n_specific: int = 50
    n_hidden: int = 50
    activation: str = "leaky_relu"
    club_estimator: str = "ridge"
    max_epochs: int = 300
    batch_size: int = 64
    lr: float = 3e-3
    estimator_lr: float | None = None
    train_size: float = 0.9
    early_stopping: bool = True
    early_stopping_patience: int = 45
    min_specific_steps: int = 6000
    max_steps: int = 128_000
    n_shared: int = 50
    n_layers_shared: int = 4
    n_layers_estimator: int = 2
    temperature: float = 0.1
    learn_temperature: bool = True
    input_dropout: float = 0.3
    specific_input_dropout: float = 0.0
    n_top_genes: int = 2000
    n_pcs: int = 50
    n_protein_pcs: int | None = 50


#: Defaults on CITE-seq data (:class:`~indiseek.IndiSeek`, ``indiseek run``), each chosen by measurement (the
#: documentation's results page, "Does IndiSeek keep the biology?", gives the figures): the paper trains at
#: ``lr=1e-4`` for up to 2,000 epochs with lambda 10 on 200 principal components; at 100 epochs that leaves the
#: specific stage under-trained, and 200 components give CLIP noise to memorise. CLUB's Gaussian has its mean refitted
#: in closed form on every minibatch (``"ridge"``): a learned Gaussian falls behind the encoder, after which ``Z``
#: takes up the other modality's shared features. Against that estimator the capture term needs lambda 300 to keep the
#: cell types in ``Z``, and 300 epochs let ``Z`` keep more of them; on the RNA side 200 keeps as many and leaks less of
#: ``C_protein`` to a linear map. Batches of 64 (paper: 128) give twice the updates
#: in the same epochs. Shared encoders of 4 linear layers (paper: 5) keep more of the antibodies' information in
#: ``C_protein``; CLUB's estimator has 2 (one hidden layer, as in CLUB's reference code). Panels of more than 50
#: antibodies enter as 50 principal components of their CLR, which would otherwise give CLIP noise to align. The
#: specific stage takes at least 6,000 minibatch steps: on a few hundred cells 300 epochs are a few hundred steps, and
#: ``Z_protein`` then keeps the other modality's shared features; the shared stage does not, as CLIP trained that long
#: memorises the few cells. Each stage takes at most 128,000 steps, 300 epochs up to about 30,000 cells, so that
#: large files train in bounded time (on 30,000 simulated cells half as many steps lowered theta's rho over five fits
#: by 0.012-0.024). Hidden layers are leaky ReLUs (paper: ReLU), which cannot die on every cell and leave a specific
#: block constant.
CITESEQ = CiteseqDefaults()
#: Defaults of the paper's oracle simulations (:func:`~indiseek.fit_specific`, ``indiseek simulate``): 10 specific
#: features, 5-layer ReLU MLPs of width 100, batches of 100, CLUB's estimator fitted at 3x the encoder's rate.
SIMULATION = SpecificDefaults()

#: Fit options of a simulation record (:func:`indiseek.sim.run_setting`) that its ``options`` may leave out.
OPTION_DEFAULTS = {k: getattr(SIMULATION, k) for k in ("club_estimator", "optimizer", "weight_decay")}


def record_options(record: Mapping[str, Any]) -> dict[str, Any]:
    """Every fit option of a simulation record: its ``options``, the ones it leaves out at :data:`OPTION_DEFAULTS`."""
    return {**OPTION_DEFAULTS, **(record.get("options") or {})}


#: Short names of the non-default CLUB estimators in panel titles.
_ESTIMATOR_NOTES = {"gaussian_raw": "raw Z"}
_METHOD_NAMES = {"indiseek": "IndiSeek", "factorizedcl": "FactorizedCL", "infodisen": "InfoDisen", "clip": "CLIP"}


def record_label(record: Mapping[str, Any]) -> str:
    """A simulation record's method name, with the fit options that differ from :data:`OPTION_DEFAULTS`."""
    method = str(record.get("method", ""))
    name = _METHOD_NAMES.get(method.lower(), method)
    options = record_options(record)
    estimator = options["club_estimator"]
    notes = [] if estimator == OPTION_DEFAULTS["club_estimator"] else [_ESTIMATOR_NOTES.get(estimator, estimator)]
    if any(options[k] != OPTION_DEFAULTS[k] for k in ("optimizer", "weight_decay")):
        notes.append(f"{options['optimizer']} {options['weight_decay']:g}")
    return f"{name} ({', '.join(notes)})" if notes else name
