"""Does CLUB's estimator keep up with the encoder? Its estimate during training against the dependence left after.

Trains IndiSeek on simulated CITE-seq (:func:`indiseek.datasets.simulate_citeseq`, 5,000 cells, the defaults) with
each ``--club-estimator`` in turn and records, per modality i:

- ``club_train``: the CLUB estimate of ``I(Z_i; C_{3-i})`` on the training minibatches, per epoch (every 10th, and
  the last), as the encoder saw it;
- ``estimator_mean_spread``: for the Gaussian estimators, the standard deviation over cells of the fitted
  ``q(z | c)``'s mean, averaged over coordinates of ``Z_i`` (standardised, so 1 is the spread of ``Z_i`` itself and
  0 is a ``q`` that predicts the same mean for every cell);
- ``linear_r2_heldout``: R^2 of the final ``Z_i`` (standardised) from a ridge regression (alpha 1) on ``C_{3-i}``,
  fitted on half of the cells and scored on the other half: the dependence a Gaussian ``q`` with a linear mean
  would find if it were fitted to the end rather than chased;
- ``independence_r2``: the leak, the held-out kNN-regression R^2 of ``C_{3-i}`` from ``Z_i``
  (:func:`indiseek.tl.independence`).

Appends one JSON line per fit to ``--out``.

Usage: ``python benchmarks/club_fit.py --seed 0 [--lambda 10] [--club-estimator gaussian ridge]
[--out benchmarks/results/club_fit.jsonl]``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from _biology import add_simulator_arguments, leaks, simulate, simulator_fields, versions
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score

from indiseek import IndiSeek
from indiseek.defaults import CITESEQ
from indiseek.nn import GaussianCLUB

PAIRS = (("rna", "protein"), ("protein", "rna"))


def unscaled_features(model) -> dict[tuple[str, str], torch.Tensor]:
    """Every cell's shared and specific features as the specific stage sees them (before the output scaling)."""
    model.module.eval()
    blocks: dict[tuple[str, str], list[torch.Tensor]] = {}
    with torch.no_grad():
        for tensors in model._minibatches(np.arange(model.adata.n_obs), 4096):
            for key, value in model.module.embed(tensors, scaled=False).items():
                blocks.setdefault(key, []).append(value.cpu())
    return {key: torch.cat(value) for key, value in blocks.items()}


def linear_r2(z: torch.Tensor, c: torch.Tensor, seed: int) -> float:
    """R^2 of the standardised ``z`` from a ridge regression on ``c`` fitted on half of the cells, on the other half."""
    order = np.random.default_rng(seed).permutation(len(z))
    fit, test = order[: len(z) // 2], order[len(z) // 2 :]
    z, c = z.numpy(), c.numpy()
    z = (z - z[fit].mean(0)) / np.maximum(z[fit].std(0), 1e-6)
    linear = Ridge(alpha=1.0).fit(c[fit], z[fit])
    return float(r2_score(z[test], linear.predict(c[test]), multioutput="variance_weighted"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lambda", dest="lambda_", type=float, default=CITESEQ.lambda_)
    parser.add_argument("--club-estimator", nargs="+", default=["gaussian", "ridge"])
    parser.add_argument("--max-epochs", type=int, default=CITESEQ.max_epochs)
    add_simulator_arguments(parser)
    parser.add_argument("--out", default="benchmarks/results/club_fit.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(1)

    for estimator in args.club_estimator:
        mdata = simulate(args, args.seed)
        IndiSeek.setup_mudata(mdata)
        model = IndiSeek(mdata, lambda_=args.lambda_, club_estimator=estimator)
        start = time.perf_counter()
        model.train(max_epochs=args.max_epochs, seed=args.seed, enable_progress_bar=False)
        train_s = time.perf_counter() - start
        model.write_embeddings()
        feats = unscaled_features(model)
        leak = leaks(mdata, args.seed)
        record = {"seed": args.seed, "n_cells": mdata.n_obs, "lambda": args.lambda_, "club_estimator": estimator}
        record |= simulator_fields(args) | {"max_epochs": args.max_epochs, "epochs_run": model.epochs_trained}
        for i, o in PAIRS:
            z, c = feats[(i, "specific")], feats[(o, "shared")]
            history = model.history_[f"specific_independence_{i}_train"].iloc[:, 0].dropna().to_numpy()
            entry = {
                "club_train": {
                    int(e + 1): round(float(history[e]), 3) for e in (*range(0, len(history), 10), len(history) - 1)
                }
            }
            q = model.module.specific[i].estimator
            if isinstance(q, GaussianCLUB):
                with torch.no_grad():
                    mu, _ = q.moments(c)
                entry["estimator_mean_spread"] = round(float(mu.std(0).mean()), 3)
            entry["linear_r2_heldout"] = round(linear_r2(z, c, args.seed), 3)
            entry["independence_r2"] = round(leak[i]["r2"], 3)
            record[i] = entry
        record |= {"train_seconds": round(train_s, 1), "versions": versions()}
        with open(args.out, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        print(json.dumps(record))  # noqa: T201


if __name__ == "__main__":
    main()
