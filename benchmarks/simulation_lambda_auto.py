"""The label-free choice of lambda in the paper's simulations: does it pick a lambda whose features are the ideal ones?

For Settings 1 and 2 and each lambda of the grid 10^-3 .. 10^3: ``runs`` fits of :func:`indiseek.fit_specific` on
``n`` points with the oracle shared features (the paper's networks and budget, ``indiseek.defaults.SIMULATION``),
then on the ``n_test`` held-out points the leak (R^2 of C predicted from Z, :func:`indiseek.tl.independence`) and the
completeness (R^2 of X from (Z, C), :func:`indiseek.tl.completeness`), and the share of masking importance on the
ideal coordinates (:func:`indiseek.tl.masking_importance`, which needs the truth and only judges). The rule of
:func:`indiseek.tl.select_lambda` is applied to the run-averaged table. Appends one JSON line per setting to
``--out``.

Usage: ``python benchmarks/simulation_lambda_auto.py [--settings 1 2] [--runs 2] [--n 10000]
[--out benchmarks/results/simulation_lambda_auto.jsonl]``
"""

from __future__ import annotations

import argparse
import json
import time

import anndata as ad
import numpy as np
import pandas as pd
import torch

import indiseek
from indiseek.sim import ideal_coordinates, simulate_setting

GRID = tuple(10.0**j for j in range(-3, 4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--n-test", type=int, default=1_000)
    parser.add_argument("--out", default="benchmarks/results/simulation_lambda_auto.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for setting in args.settings:
        start = time.perf_counter()
        ideal = list(ideal_coordinates(setting))
        rows = []
        for lambda_ in GRID:
            per_run = []
            for r in range(args.runs):
                x, c = simulate_setting(setting, args.n + args.n_test, seed=r)
                enc = indiseek.fit_specific(
                    x[: args.n], shared=c[: args.n], lambda_=lambda_, seed=r, progress_bar=False
                )
                x_test, c_test = x[args.n :], c[args.n :]
                z_test = enc(x_test)
                held_out = ad.AnnData(np.zeros((args.n_test, 1), dtype=np.float32))
                leak = indiseek.tl.independence(held_out, z_test, c_test, seed=r)["r2"]
                comp = indiseek.tl.completeness(held_out, x_test, z_test, c_test, seed=r)["r2_joint"]
                share = float(indiseek.tl.masking_importance(enc, d=x.shape[1], seed=r)[ideal].sum())
                per_run.append((leak, comp, share))
            leak, comp, share = np.mean(per_run, axis=0)
            rows.append(
                {"lambda": lambda_, "independence_r2_x": leak, "completeness_r2_joint_x": comp, "ideal_share": share}
            )
            print(setting, lambda_, round(leak, 3), round(comp, 3), round(share, 3), flush=True)  # noqa: T201
        table = pd.DataFrame(rows).set_index("lambda")
        chosen, reason = indiseek.tl.select_lambda(table)
        record = {
            "setting": setting,
            "runs": args.runs,
            "n": args.n,
            "n_test": args.n_test,
            "chosen_lambda": chosen,
            "reason": reason,
            "ideal_share_chosen": round(float(table.loc[chosen, "ideal_share"]), 3),
            "table": table.round(4).reset_index().to_dict("list"),
            "seconds": round(time.perf_counter() - start, 1),
        }
        with open(args.out, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        print(json.dumps(record))  # noqa: T201


if __name__ == "__main__":
    main()
