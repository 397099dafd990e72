"""How much of the shared features the specific features still carry on the data, next to masking importance.

Masking importance (:func:`indiseek.tl.masking_importance`) evaluates the encoder on uniform points, off the data:
in Setting 2, x3 and x4 are functions of x1 and x2 on the data but not at those points. This measures dependence on
the data instead: a 15-nearest-neighbour regression of the oracle ``C`` on ``Z`` is fitted on the training rows and
scored (R^2) on ``--n-test`` held-out rows; 0 means ``Z`` says nothing about ``C``. It also scores the regression of
the ideal coordinates on ``Z`` (what ``Z`` should carry). Appends one JSON line to ``--out``.

Usage: ``python benchmarks/simulation_leak.py --setting 2 --lambda 0.01 --club-estimator critic --runs 3
[--n-estimator-steps 5] [--optimizer AdamW --weight-decay 0.1] [--out benchmarks/results/simulation_leak.jsonl]``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from sklearn.neighbors import KNeighborsRegressor

import indiseek
from indiseek.sim import ideal_coordinates, simulate_setting


def knn_r2(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, y_test: np.ndarray) -> float:
    """Held-out R^2 of a 15-nearest-neighbour regression of ``y`` on ``z``."""
    pred = KNeighborsRegressor(15).fit(z_train, y_train).predict(z_test)
    return float(1 - ((pred - y_test) ** 2).sum() / ((y_test - y_test.mean(0)) ** 2).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setting", type=int, default=2)
    parser.add_argument("--method", default="indiseek")
    parser.add_argument("--lambda", dest="lambda_", type=float, default=0.01)
    parser.add_argument("--club-estimator", default="gaussian")
    parser.add_argument("--n-estimator-steps", type=int, default=5)
    parser.add_argument("--optimizer", default="Adam")
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/simulation_leak.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    ideal = list(ideal_coordinates(args.setting))
    start = time.perf_counter()
    runs = []
    for r in range(args.runs):
        seed = args.seed + r
        X, C = simulate_setting(args.setting, args.n + args.n_test, seed=seed)
        enc = indiseek.fit_specific(
            X[: args.n], shared=C[: args.n], method=args.method, lambda_=args.lambda_,
            club_estimator=args.club_estimator, n_estimator_steps=args.n_estimator_steps, optimizer=args.optimizer,
            weight_decay=args.weight_decay, n_specific=10, n_hidden=100, n_layers=5, seed=seed, progress_bar=False,
        )  # fmt: skip
        Z = enc(X)
        split = (Z[: args.n], Z[args.n :])
        run = {
            "shared_r2": knn_r2(split[0], C[: args.n], split[1], C[args.n :]),
            "ideal_r2": knn_r2(split[0], X[: args.n, ideal], split[1], X[args.n :, ideal]),
            "importance": indiseek.tl.masking_importance(enc, d=6, seed=seed).tolist(),
        }
        runs.append(run)
        print(f"run {r}: shared R2 {run['shared_r2']:.3f}, ideal R2 {run['ideal_r2']:.3f}", flush=True)
    importance = np.mean([run["importance"] for run in runs], axis=0)
    record = {
        "setting": args.setting,
        "method": args.method,
        "lambda": args.lambda_,
        "club_estimator": args.club_estimator,
        "n_estimator_steps": args.n_estimator_steps,
        "optimizer": args.optimizer,
        "weight_decay": args.weight_decay,
        "runs": args.runs,
        "shared_r2": float(np.mean([run["shared_r2"] for run in runs])),
        "ideal_r2": float(np.mean([run["ideal_r2"] for run in runs])),
        "importance": importance.tolist(),
        "ideal_share": float(importance[ideal].sum()),
        "per_run": runs,
        "seconds": time.perf_counter() - start,
        "seed": args.seed,
    }
    with open(args.out, "a") as fh:
        fh.write(json.dumps(record) + "\n")
    print(json.dumps({k: record[k] for k in ("setting", "lambda", "club_estimator", "shared_r2", "ideal_share")}))


if __name__ == "__main__":
    main()
