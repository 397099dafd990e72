"""Does the label-free choice of lambda land where the labels say it should?

For each simulated data set (``simulate_citeseq`` defaults, 5,000 cells, one per seed) and each labelled real file
(``citeseq_real.py``'s), trains ``IndiSeek(lambda_="auto")`` (one shared stage, the specific stages over the grid 10^-3
.. 10^3, :func:`indiseek.tl.select_lambda`), then, using the labels only to judge, measures at every lambda of the grid:
Spearman's rho of per-type mean theta against the truth (simulation) or the mean WNN RNA weight (real files), and kNN
accuracy (k = 15, 5-fold) of the finest labels from ``X_indiseek``. Records the chosen lambda, the best lambda of the
grid for each measure and the gaps. On simulated data it also trains one model at the default lambda and records the
ratio of training times (automatic / single). ``--refits N`` sweeps the specific stages N more times on the same shared
stage, each from another initialisation (seeds 1000 + k), chooses again and measures again (each refit's trade-off curve
is recorded too), and records each measure's mean per lambda over the fits, its mean at the lambdas the fits chose and
the gap between them: one fit per lambda makes the grid's best partly the luckiest fit. On simulated data it also
records, per lambda, how much of each modality's true specific programs ``Z_i`` holds (held-out R^2, ``programs_r2``);
``--crossed-types`` simulates with ``crossed_types=True`` (``--n-types`` a multiple of 5). Appends one JSON line per
data set to ``--out``.

Usage: ``python benchmarks/lambda_auto.py --data sim --seed 0`` or ``--data pbmc5k`` / ``--data mosaic``
``[--max-epochs 100] [--refits 0] [--n-types 27] [--crossed-types] [--club-estimator gaussian]
[--out benchmarks/results/lambda_auto.jsonl]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from _biology import (
    CODE_RULES,
    add_simulator_arguments,
    knn_accuracy,
    simulate,
    simulator_fields,
    versions,
)
from citeseq_real import load

import indiseek
from indiseek import IndiSeek
from indiseek.defaults import CITESEQ


def measure(model: IndiSeek, mdata, label_key: str, labels: np.ndarray, truth: dict | None) -> dict[float, dict]:
    """rho of theta (against the truth or the WNN ranking) and kNN accuracy at every lambda of the model's sweep."""
    per_lambda = {}
    for lambda_ in model.lambda_sweep_.index:
        model.use_lambda(lambda_)
        model.write_embeddings()
        indiseek.tl.theta_scores(mdata, label_key=label_key)
        if truth is not None:
            rho, _ = indiseek.tl.rank_correlation(mdata, reference=truth)
        else:
            rho, _ = indiseek.tl.rank_correlation(mdata, groupby=label_key)
        per_lambda[float(lambda_)] = {
            "rho": round(rho, 3),
            "knn": round(knn_accuracy(mdata.obsm["X_indiseek"], labels), 3),
        }
        if truth is not None:  # how much of its modality's true specific programs Z_i holds (held-out R^2)
            per_lambda[float(lambda_)]["programs_r2"] = {
                m: round(
                    indiseek.tl.independence(mdata, f"X_indiseek_specific_{m}", f"sim_{m}_specific", n_permutations=0)[
                        "r2"
                    ],
                    3,
                )
                for m in ("rna", "protein")
            }
    return per_lambda


def best(values: dict[float, float]) -> float:
    """The lambda of the highest value (NaN lowest; of equals, the smallest lambda)."""
    return max(values, key=lambda k: (np.nan_to_num(values[k], nan=-np.inf), -k))


def gaps(fits: list[tuple[float, dict[float, dict]]]) -> dict:
    """Over fits (the chosen lambda and the measures at every lambda of each): each measure's mean per lambda, its
    mean at the lambda each fit chose, and the gap between the two (the best lambda's mean minus the chosen's)."""
    out = {}
    for name in ("rho", "knn"):
        mean = {k: float(np.mean([f[k][name] for _, f in fits])) for k in fits[0][1]}
        top = best(mean)
        chosen = float(np.mean([f[c][name] for c, f in fits]))
        out[f"{name}_mean_per_lambda"] = {f"{k:g}": round(v, 3) for k, v in mean.items()}
        out[f"best_lambda_{name}_mean"] = top
        out[f"{name}_chosen_mean"] = round(chosen, 3)
        out[f"{name}_gap_to_best_mean"] = round(mean[top] - chosen, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="sim", choices=["sim", "pbmc5k", "mosaic"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-epochs", type=int, default=None, help="default: the library's (IndiSeek.train)")
    add_simulator_arguments(parser)
    parser.add_argument("--real", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "real"))
    parser.add_argument(
        "--refits", type=int, default=0, help="Sweeps again from N other initialisations (seeds 1000+)."
    )
    parser.add_argument("--club-estimator", default=CITESEQ.club_estimator)
    parser.add_argument("--activation", default=CITESEQ.activation)
    parser.add_argument("--out", default="benchmarks/results/lambda_auto.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(1)

    if args.data == "sim":
        mdata = simulate(args, args.seed)
        protein, label_key, batch_size = "prot", "celltype.l2", CITESEQ.batch_size
        truth = dict(mdata.uns["simulation"]["rna_specificity"])
    else:
        mdata, protein, label_key = load(args.data, Path(args.real))
        batch_size, truth = 64, None
        indiseek.tl.wnn_weights(mdata, protein_mod=protein, backend="exact")
    labels = mdata.obs[label_key].astype(str).to_numpy()
    IndiSeek.setup_mudata(mdata, modalities={"rna_layer": "rna", "protein_layer": protein})
    model = IndiSeek(mdata, lambda_="auto", club_estimator=args.club_estimator, activation=args.activation)
    start = time.perf_counter()
    model.train(max_epochs=args.max_epochs, batch_size=batch_size, seed=args.seed, enable_progress_bar=False)
    auto_s = time.perf_counter() - start

    per_lambda = measure(model, mdata, label_key, labels, truth)
    chosen = model.lambda_choice_["lambda"]
    record = {
        "data": args.data,
        "seed": args.seed,
        "n_cells": int(mdata.n_obs),
        "max_epochs": args.max_epochs,
        "epochs_run": model.epochs_trained,
        "batch_size": batch_size,
        "club_estimator": args.club_estimator,
        "activation": args.activation,
        "input_dropout": CITESEQ.input_dropout,
        "n_layers_shared": CITESEQ.n_layers_shared,
        "n_layers_estimator": CITESEQ.n_layers_estimator,
        "n_protein_pcs": CITESEQ.n_protein_pcs,
        **CODE_RULES,
        "sweep_fit": "side_by_side",  # all lambdas in one vectorised fit from one initialisation
        "sweep_epoch": "best_validation",  # each lambda's epoch of lowest validation loss (before: the last)
        **(simulator_fields(args) if args.data == "sim" else {}),
        "versions": versions(),
        "chosen_lambda": chosen,
        "reason": model.lambda_choice_["reason"],
        "tradeoff": indiseek.tl.lambda_tradeoff(model.lambda_sweep_).round(4).reset_index().to_dict("list"),
        "sweep": model.lambda_sweep_.round(4).reset_index().to_dict("list"),
        "per_lambda": {f"{k:g}": v for k, v in per_lambda.items()},
        "rho_reference": "truth" if truth is not None else "mean WNN RNA weight",
    }
    for name in ("rho", "knn"):
        values = {k: v[name] for k, v in per_lambda.items()}
        top = best(values)
        record[f"best_lambda_{name}"] = top
        record[f"{name}_chosen"] = values[chosen]
        record[f"{name}_gap_to_best"] = round(values[top] - values[chosen], 3)
    record["auto_train_seconds"] = round(auto_s, 1)
    fits, curves = [(chosen, per_lambda)], []
    for k in range(args.refits):  # the same shared stage, the sweep from another initialisation
        model.sweep_lambda(max_epochs=args.max_epochs, batch_size=batch_size, seed=1000 + k, enable_progress_bar=False)
        fits.append((model.lambda_choice_["lambda"], measure(model, mdata, label_key, labels, truth)))
        curves.append(indiseek.tl.lambda_tradeoff(model.lambda_sweep_).round(4).reset_index().to_dict("list"))
    if args.refits:
        record["refits"] = [
            {
                "seed": 1000 + k,
                "chosen_lambda": c,
                "tradeoff": curve,
                "per_lambda": {f"{lam:g}": v for lam, v in f.items()},
            }
            for k, ((c, f), curve) in enumerate(zip(fits[1:], curves, strict=True))
        ]
        record |= gaps(fits)
    if args.data == "sim":
        single = IndiSeek(mdata, club_estimator=args.club_estimator, activation=args.activation)
        start = time.perf_counter()
        single.train(max_epochs=args.max_epochs, seed=args.seed, enable_progress_bar=False)
        record["single_train_seconds"] = round(time.perf_counter() - start, 1)
        record["cost_ratio"] = round(auto_s / record["single_train_seconds"], 2)
    with open(args.out, "a") as fh:
        fh.write(json.dumps(record) + "\n")
    print(json.dumps(record))  # noqa: T201


if __name__ == "__main__":
    main()
