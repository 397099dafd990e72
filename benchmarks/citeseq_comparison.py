"""Rank agreement of theta with the true RNA specificity on simulated CITE-seq, for one method and setting.

Simulates cells with :func:`indiseek.datasets.simulate_citeseq`, trains one method, computes theta scores and
Spearman's rho of the per-type mean theta against the simulator's RNA specificity, and k-means ARI/NMI of the
concatenated embedding and of each specific embedding. Appends one JSON line to ``--out``.

Usage: ``python benchmarks/citeseq_comparison.py --method indiseek --lambda 10 --seed 0 [--lr 1e-3]
[--max-epochs 100] [--library-size-median 3000] [--club-estimator gaussian_raw]
[--out benchmarks/results/citeseq_comparison.jsonl]``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import indiseek
from indiseek import IndiSeek
from indiseek.defaults import CITESEQ


def knn_accuracy(mdata, keys: list[str]) -> float:
    """5-fold stratified kNN (k = 15) accuracy of the finest labels from the concatenated ``.obsm`` blocks."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    x = np.hstack([np.asarray(mdata.obsm[k]) for k in keys])
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    return float(cross_val_score(KNeighborsClassifier(15), x, mdata.obs["celltype.l2"].astype(str), cv=folds).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="indiseek")
    parser.add_argument("--lambda", dest="lambda_", type=float, default=CITESEQ.lambda_)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=CITESEQ.lr)
    parser.add_argument("--max-epochs", type=int, default=CITESEQ.max_epochs)
    parser.add_argument("--club-estimator", default=CITESEQ.club_estimator)
    parser.add_argument("--n-cells", type=int, default=5000)
    parser.add_argument("--library-size-median", type=float, default=3000.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/citeseq_comparison.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    mdata = indiseek.datasets.simulate_citeseq(
        n_cells=args.n_cells, seed=args.seed, library_size_median=args.library_size_median, progress_bar=False
    )
    IndiSeek.setup_mudata(mdata)
    model = IndiSeek(mdata, method=args.method, lambda_=args.lambda_, club_estimator=args.club_estimator)
    start = time.perf_counter()
    model.train(max_epochs=args.max_epochs, lr=args.lr, seed=args.seed, enable_progress_bar=False)
    train_s = time.perf_counter() - start
    model.write_embeddings()
    indiseek.tl.theta_scores(mdata, method=args.method)
    rho, _ = indiseek.tl.rank_correlation(mdata, reference=dict(mdata.uns["simulation"]["rna_specificity"]))
    metrics = indiseek.tl.cluster_metrics(mdata, f"X_{args.method}")
    record = {
        "method": args.method,
        "lambda": args.lambda_,
        "seed": args.seed,
        "lr": args.lr,
        "club_estimator": args.club_estimator,
        "max_epochs": args.max_epochs,
        "n_cells": args.n_cells,
        "library_size_median": args.library_size_median,
        "epochs_run": model.epochs_trained,
        "rho_truth": round(rho, 3),
        "ari": round(metrics["ari"], 3),
        "nmi": round(metrics["nmi"], 3),
        "ari_specific_rna": round(indiseek.tl.cluster_metrics(mdata, f"X_{args.method}_specific_rna")["ari"], 3),
        "ari_specific_protein": round(
            indiseek.tl.cluster_metrics(mdata, f"X_{args.method}_specific_protein")["ari"], 3
        ),
        "knn_accuracy": {
            name: round(knn_accuracy(mdata, keys), 3)
            for name, keys in {
                "all": [f"X_{args.method}"],
                "rna": [f"X_{args.method}_shared_rna", f"X_{args.method}_specific_rna"],
                "protein": [f"X_{args.method}_shared_protein", f"X_{args.method}_specific_protein"],
            }.items()
        },
        "stack": "lightning",
        "train_seconds": round(train_s, 1),
        "threads": args.threads,
    }
    with open(args.out, "a") as fh:
        fh.write(json.dumps(record) + "\n")
    print(json.dumps(record))  # noqa: T201


if __name__ == "__main__":
    main()
