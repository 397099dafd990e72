"""Repeated runs of a simulation setting: fit the specific stage on an oracle and measure masking importance."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from indiseek.defaults import record_options
from indiseek.tl import masking_importance

from ._settings import ideal_coordinates, simulate_setting

logger = logging.getLogger(__name__)


def run_setting(
    setting: int,
    method: str = "indiseek",
    lambda_: float = 0.1,
    runs: int = 10,
    n: int = 10000,
    n_test: int = 1000,
    max_epochs: int | None = None,
    seed: int = 0,
    progress_bar: bool = True,
    **fit_kwargs: Any,
) -> dict[str, Any]:
    """Fit specific features ``Z = h(X)`` in a simulation setting several times and measure their importance.

    Run ``r`` draws ``n + n_test`` rows with seed ``seed + r`` (:func:`~indiseek.sim.simulate_setting`),
    fits :func:`~indiseek.fit_specific` with the oracle shared features on the first ``n`` (the other
    ``n_test`` validate: they appear in the encoder's history), with the paper's networks (10 specific
    features, 5-layer ReLU MLPs of width 100), and computes :func:`~indiseek.tl.masking_importance`
    of the encoder over the 6 coordinates.

    Parameters
    ----------
    setting
        Simulation setting, 1 to 4.
    method
        ``"indiseek"``, ``"factorizedcl"`` or ``"infodisen"``.
    lambda_
        Weight of the capture term.
    runs
        Number of independent runs (data, weights and importance points all change with the run).
    n, n_test
        Numbers of training and validation rows per run.
    max_epochs
        Training epochs per run; ``None`` keeps the default of :func:`~indiseek.fit_specific`.
    seed
        Seed of the first run.
    progress_bar
        Show a progress bar over runs.
    **fit_kwargs
        Further arguments of :func:`~indiseek.fit_specific` (e.g. ``batch_size``, ``lr``).

    Returns
    -------
    A record (JSON-serialisable dict) with keys ``setting``, ``method``, ``lambda``, ``runs``,
    ``importance`` (mean normalised importance, 6 floats), ``importance_std`` (its standard deviation
    over runs), ``importance_runs`` (one list of 6 floats per run), ``ideal`` (0-based indices of the
    ideal coordinates), ``ideal_share`` (mean importance on the ideal coordinates), ``final_losses``
    (last row of each run's training history), ``seconds`` (wall time), ``n``, ``n_test``, ``max_epochs``,
    ``seed`` and ``options`` (the other ``fit_kwargs``, e.g. ``club_estimator``).
    """
    from indiseek.model import fit_specific

    ideal = ideal_coordinates(setting)
    if runs < 1:
        raise ValueError(f"`runs` must be positive, got {runs}.")
    options = dict(fit_kwargs)
    if max_epochs is not None:
        fit_kwargs["max_epochs"] = max_epochs
    fit_kwargs.setdefault("train_size", n / (n + n_test))
    fit_kwargs.setdefault("progress_bar", False)
    start = time.perf_counter()
    importance, losses = [], []
    for r in tqdm(range(runs), desc=f"setting {setting}, {method}, lambda={lambda_:g}", disable=not progress_bar):
        X, C = simulate_setting(setting, n + n_test, seed=seed + r)
        enc = fit_specific(X, shared=C, method=method, lambda_=lambda_, seed=seed + r, **fit_kwargs)
        importance.append(masking_importance(enc, d=X.shape[1], seed=seed + r))
        history = getattr(enc, "history", None)
        last = {} if history is None or len(history) == 0 else history.iloc[-1].to_dict()
        losses.append({str(k): float(v) for k, v in last.items()})
        logger.info("Setting %d, %s, lambda=%g, run %d: importance %s", setting, method, lambda_, r, importance[-1])
    imp = np.asarray(importance)
    mean = imp.mean(axis=0)
    return {
        "setting": int(setting),
        "method": method,
        "lambda": float(lambda_),
        "runs": int(runs),
        "importance": mean.tolist(),
        "importance_std": imp.std(axis=0).tolist(),
        "importance_runs": imp.tolist(),
        "ideal": list(ideal),
        "ideal_share": float(mean[list(ideal)].sum()),
        "final_losses": losses,
        "seconds": time.perf_counter() - start,
        "n": int(n),
        "n_test": int(n_test),
        "max_epochs": max_epochs,
        "seed": int(seed),
        "options": options,
    }


def run_sweep(
    setting: int,
    method: str | Iterable[str] = "indiseek",
    lambdas: Iterable[float] = tuple(10.0**j for j in range(-3, 4)),
    runs: int = 10,
    progress_bar: bool = True,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Run :func:`~indiseek.sim.run_setting` for each method and each ``lambda_`` of a sweep.

    Parameters
    ----------
    setting
        Simulation setting, 1 to 4.
    method
        One method or several (``"indiseek"``, ``"factorizedcl"``, ``"infodisen"``).
    lambdas
        Values of ``lambda_``; the paper's sweep ``{10^j : j = -3..3}`` by default.
    runs
        Runs per method and ``lambda_``.
    progress_bar
        Show a progress bar over the sweep's cells (the runs inside each are silent).
    **kwargs
        Further arguments of :func:`~indiseek.sim.run_setting` (``n``, ``n_test``, ``max_epochs``, ``seed``, fit
        arguments).

    Returns
    -------
    One record of :func:`~indiseek.sim.run_setting` per (method, lambda), methods outer, lambdas inner.
    """
    methods = [method] if isinstance(method, str) else list(method)
    grid = [(m, float(lam)) for m in methods for lam in lambdas]
    return [
        run_setting(setting, method=m, lambda_=lam, runs=runs, progress_bar=False, **kwargs)
        for m, lam in tqdm(grid, desc=f"setting {setting} sweep", disable=not progress_bar)
    ]


#: Record keys that must agree for runs to be pooled.
_POOL_KEYS = ("setting", "method", "lambda", "n", "n_test", "max_epochs", "options", "ideal")


def _cell(record: dict[str, Any]) -> dict[str, Any]:
    """The keys of a record that define its cell; options left out are the defaults."""
    return {**{k: record.get(k) for k in _POOL_KEYS}, "options": record_options(record)}


def pool_records(records: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Pool records of :func:`~indiseek.sim.run_setting` that ran the same cell with consecutive seeds.

    Run ``r`` of a record with ``seed = s`` uses seed ``s + r`` for its data, weights and importance points, so
    ``runs=5, seed=0`` and ``runs=5, seed=5`` together are exactly ``runs=10, seed=0``: this lets one cell be split
    over several processes or machines (``indiseek simulate --seed 5 --runs 5 ...``) and joined afterwards.

    Parameters
    ----------
    records
        Records of one (setting, method, lambda) cell with the same ``n``, ``n_test``, ``max_epochs`` and
        ``options``, whose seed ranges ``seed .. seed + runs - 1`` follow each other without gaps or overlaps
        (in any order).

    Returns
    -------
    One record as :func:`~indiseek.sim.run_setting` returns it, for all runs: ``seed`` is the first seed,
    ``importance``, ``importance_std`` and ``ideal_share`` are recomputed over all runs and ``seconds`` is the sum.
    """
    records = sorted(records, key=lambda r: r["seed"])
    if not records:
        raise ValueError("No records to pool.")
    first = records[0]
    cell = _cell(first)
    for rec in records[1:]:
        differ = [k for k, v in _cell(rec).items() if v != cell[k]]
        if differ:
            raise ValueError(f"Records of different cells cannot be pooled: they differ in {differ}.")
    for prev, rec in zip(records, records[1:], strict=False):
        last = prev["seed"] + prev["runs"] - 1
        if rec["seed"] != last + 1:
            raise ValueError(
                f"Seed ranges must follow each other: seeds {prev['seed']}..{last} are followed by seed "
                f"{rec['seed']}; run the missing seeds with `--seed` and `--runs`."
            )
    imp = np.concatenate([np.asarray(r["importance_runs"]) for r in records])
    mean = imp.mean(axis=0)
    return {
        **first,
        "runs": int(imp.shape[0]),
        "importance": mean.tolist(),
        "importance_std": imp.std(axis=0).tolist(),
        "importance_runs": imp.tolist(),
        "ideal_share": float(mean[list(first["ideal"])].sum()),
        "final_losses": [loss for r in records for loss in r.get("final_losses", [])],
        "seconds": float(sum(r["seconds"] for r in records)),
    }
