"""Docstring pieces shared by every entry point that takes the same parameter (scvi-tools' docrep way)."""

from __future__ import annotations

from docrep import DocstringProcessor

_lambda = """\
lambda_
    Weight of the capture term: small values favour independence from the shared features, large values
    completeness (paper: 0.1 in the simulations, 10 on CITE-seq; the package: 200 for the RNA stage and 300 for the
    protein stage on CITE-seq, with CLUB's ridge estimator)."""

_network = """\
n_hidden, n_layers
    Width and depth (linear layers) of every network (encoders, decoders, critics, CLUB's estimator)."""

_capture_temperature = """\
capture_temperature
    Temperature of the InfoNCE capture term of FactorizedCL and InfoDisen."""

_club = """\
club_sample
    Sampled-negative Gaussian CLUB (one permuted negative per pair, ``O(batch)``) instead of all pairs.
club_estimator
    Estimator of the CLUB term (IndiSeek, FactorizedCL): ``"gaussian_raw"`` (the paper's variational Gaussian
    ``q(z | c)`` on raw ``Z``), ``"gaussian"`` (the same on ``Z`` standardised over the batch, so that shrinking
    ``Z`` cannot lower it), ``"ridge"`` (a Gaussian whose mean is a ridge regression on ``C`` refitted in closed
    form on every minibatch: the encoder cannot outrun it, but it sees linear dependence only),
    ``"ridge_reverse"`` (the same bound through ``q(c | z)``, a ridge regression of ``C`` on ``Z``: it also charges a
    direction of ``Z`` with little variance that predicts ``C``, and leaves less for theta to rank on) or
    ``"critic"`` (a scalar critic of ``(z, c)``, which also sees dependence spread over several coordinates of
    ``Z``). The
    documentation's results page compares them."""

_estimator = """\
estimator_lr, n_estimator_steps
    Learning rate (``None``: ``lr``) and steps per encoder step of CLUB's estimator (the paper: 5 steps)."""

_optimizer = """\
weight_decay, optimizer
    Weight decay of the encoders, decoders and critics, and the optimiser: ``"Adam"`` (the decay is an L2 term in
    the gradient) or ``"AdamW"`` (decoupled: every weight shrinks by ``lr * weight_decay`` per step unless the loss
    holds it up)."""

_neighbors = """\
neighbors
    Neighbour search: ``"exact"`` (scikit-learn's; time quadratic in cells), ``"pynndescent"`` (approximate
    nearest-neighbour descent, about linear in cells; on one thread and seeded by ``random_state``, so a seed gives
    the same neighbours on every machine) or ``"auto"``: exact up to 20,000 cells, pynndescent above. The search
    used is recorded in the parameters under ``"neighbors"``. The documentation's results page measures how well
    pynndescent agrees with the exact search ("Neighbour search at scale")."""

_ax = """\
ax
    Axes to draw into; a new figure otherwise."""

_save = """\
save
    File to write the figure to (format from the suffix, e.g. ``.png`` or ``.pdf``)."""

_download_sections = """\
Parameters
----------
cache_dir
    Folder of downloaded files. If `None`, ``$INDISEEK_DATA_DIR``, else ``~/.cache/indiseek``.
progress_bar
    Show a progress bar while downloading.

Returns
-------
MuData with ``"rna"`` (cells x genes) and ``"prot"`` (cells x antibodies) raw counts, as
:func:`~indiseek.datasets.read_10x` returns them; no cell-type labels.

Raises
------
ConnectionError
    If the file cannot be downloaded; the message says where to place a copy obtained another way.
ValueError
    If the downloaded file does not match the registry."""

dsp = DocstringProcessor(
    sections_download=_download_sections,
    param_ax=_ax,
    param_save=_save,
    param_lambda=_lambda,
    param_network=_network,
    param_capture_temperature=_capture_temperature,
    param_club=_club,
    param_estimator=_estimator,
    param_optimizer=_optimizer,
    param_neighbors=_neighbors,
)
