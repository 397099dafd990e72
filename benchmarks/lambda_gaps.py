"""How far the label-free lambda lies from the best, judged on fits that did not pick the best.

Reads the records of ``lambda_auto.py --refits N`` (every fit's chosen lambda and its measures at every lambda of the
grid, and the gaps lambda_auto.py computed from them) and, for each record and measure (rho of theta, kNN accuracy),
gives the gap between the best lambda's mean over the fits and the mean at the lambdas the fits chose, with its paired
standard error over the fits. With few fits the best lambda of the grid is partly the luckiest: its mean is the largest
of seven noisy means. The split-half gap removes that: the best lambda is picked on a random half of the fits and both
means are taken on the other half (mean over ``--splits`` halvings). A lambda drawn at random lies ``random_gap`` below
the best mean. Writes one JSON object with a row per record to ``--out``.

Usage: ``python benchmarks/lambda_gaps.py [--min-fits 4] [--out benchmarks/results/lambda_gaps.json]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from lambda_auto import best

RESULTS = Path(__file__).resolve().parent / "results"


def fits_of(record: dict) -> list[tuple[str, dict]]:
    """The chosen lambda (as the grid's key) and the measures at every lambda of each fit of a record."""
    first = (f"{record['chosen_lambda']:g}", record["per_lambda"])
    return [first] + [(f"{f['chosen_lambda']:g}", f["per_lambda"]) for f in record["refits"]]


def gaps(record: dict, fits: list[tuple[str, dict]], name: str, n_splits: int, rng: np.random.Generator) -> dict:
    """The record's gap of the chosen lambdas to the best lambda for the measure ``name``, with its paired standard
    error, the split-half gap and a random lambda's gap."""
    grid = list(fits[0][1])
    lambdas = [float(lam) for lam in grid]
    values = np.array([[f[lam][name] for lam in grid] for _, f in fits])  # fits x lambdas
    chosen = np.array([f[c][name] for c, f in fits])
    top = lambdas.index(record[f"best_lambda_{name}_mean"])
    paired = values[:, top] - chosen
    half = len(fits) // 2
    split = []
    for _ in range(n_splits):
        order = rng.permutation(len(fits))
        pick, judge = order[:half], order[half:]
        picked = lambdas.index(best(dict(zip(lambdas, values[pick].mean(axis=0), strict=True))))
        split.append(values[judge, picked].mean() - chosen[judge].mean())
    sd = values.std(axis=0, ddof=1)
    return {
        "best_lambda": record[f"best_lambda_{name}_mean"],
        "mean_per_lambda": record[f"{name}_mean_per_lambda"],
        "sd_one_fit": [round(float(sd.min()), 3), round(float(sd.max()), 3)],
        "chosen_mean": record[f"{name}_chosen_mean"],
        "gap": record[f"{name}_gap_to_best_mean"],
        "gap_se": round(float(paired.std(ddof=1) / np.sqrt(len(fits))), 3),
        "split_half_gap": round(float(np.mean(split)), 3),
        "random_gap": round(float(values[:, top].mean() - values.mean()), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", default=str(RESULTS / "lambda_auto.jsonl"))
    parser.add_argument("--min-fits", type=int, default=4, help="Records with fewer fits cannot be split in halves.")
    parser.add_argument("--splits", type=int, default=2000)
    parser.add_argument("--out", default=str(RESULTS / "lambda_gaps.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    with open(args.records) as fh:
        for line in fh:
            record = json.loads(line)
            if len(record.get("refits", [])) + 1 < args.min_fits:
                continue
            fits = fits_of(record)
            row = {k: record.get(k) for k in ("data", "seed", "n_layers_estimator", "n_protein_pcs")}
            row["n_fits"] = len(fits)
            row["choices"] = {c: sum(1 for f, _ in fits if f == c) for c in sorted({c for c, _ in fits}, key=float)}
            row |= {name: gaps(record, fits, name, args.splits, rng) for name in ("rho", "knn")}
            rows.append(row)
    with open(args.out, "w") as fh:
        json.dump({"records": Path(args.records).name, "min_fits": args.min_fits, "rows": rows}, fh, indent=1)
    for row in rows:
        print(json.dumps(row))  # noqa: T201


if __name__ == "__main__":
    main()
