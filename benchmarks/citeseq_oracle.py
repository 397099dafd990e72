"""What the simulator's true programs allow: theta, completeness and leak of ideal specific features.

On ``simulate_citeseq`` defaults (``--n-cells`` cells, default 5,000), for each seed, takes as specific features (i) the
true RNA-only and protein-only programs (``obsm["sim_rna_specific"]``, ``obsm["sim_protein_specific"]``) and (ii) the
same programs minus their mean given the shared programs (5-fold kNN regression, k = 50), the closest to independence a
representation of them can get by removing the mean, (iii) the same programs as the prepared inputs reveal them linearly
(predicted from each modality's reference inputs, RNA components or protein CLR, by 5-fold ridge regression; a
supervised map), and the true programs with one part of the shared programs beside them, as a specific representation
that is not independent of the shared one may carry it: (iv) the mean of the shared programs over each cell's lineage,
(v) their variation within the lineage (that mean removed). For each: Spearman's rho of per-type mean theta against the
true RNA specificity, kNN accuracy (k = 15, 5-fold) of the level-2 types from (Z_i, true shared programs) as a ratio to
the no-learning reference, and the held-out R^2 of the shared programs predicted from Z_i
(:func:`indiseek.tl.independence`, the benchmark's leak), and the other way round, Z_i predicted from the shared
programs. Also the share of the shared programs' variation within level-2 types (each type's mean removed) that each
modality's inputs reveal (5-fold ridge R^2): what CLIP can align across the modalities beyond the types.
``--crossed-types`` simulates with ``crossed_types=True`` (the same specific states in every lineage; ``--n-types`` a
multiple of 5). Appends one JSON line per seed to ``--out``.

Usage: ``python benchmarks/citeseq_oracle.py [--seeds 0 1 2] [--n-cells 5000] [--n-types 27] [--crossed-types]
[--out benchmarks/results/citeseq_oracle.jsonl]``
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import pandas as pd
from _biology import add_simulator_arguments, knn_accuracy, reference_inputs, simulate, simulator_fields
from sklearn.linear_model import Ridge
from sklearn.model_selection import cross_val_predict, cross_val_score
from sklearn.neighbors import KNeighborsRegressor

import indiseek

MODS = ("rna", "protein")


def measure(mdata, keys: dict[str, str], labels: np.ndarray, truth: dict, refs: dict, seed: int) -> dict:
    """rho, kNN ratios of (Z_i, C) and leak of the features ``keys`` (modality -> ``.obsm`` key)."""
    shared = mdata.obsm["sim_shared"]
    indiseek.tl.theta_scores(mdata, rna_key=keys["rna"], protein_key=keys["protein"], key_added="t_oracle")
    rho, _ = indiseek.tl.rank_correlation(mdata, score_key="t_oracle", reference=truth)
    return {
        "rho_truth": round(rho, 3),
        "knn_ratio": {
            m: round(knn_accuracy(np.hstack([mdata.obsm[keys[m]], shared]), labels) / refs[m], 3) for m in MODS
        },
        "independence_r2": {
            m: round(indiseek.tl.independence(mdata, keys[m], "sim_shared", seed=seed)["r2"], 3) for m in MODS
        },
        # the other direction: the features predicted from the shared programs
        "independence_r2_reverse": {
            m: round(indiseek.tl.independence(mdata, "sim_shared", keys[m], seed=seed)["r2"], 3) for m in MODS
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n-cells", type=int, default=5000)
    add_simulator_arguments(parser)
    parser.add_argument("--out", default="benchmarks/results/citeseq_oracle.jsonl")
    args = parser.parse_args()
    for seed in args.seeds:
        mdata = simulate(args, seed, args.n_cells)
        labels = mdata.obs["celltype.l2"].astype(str).to_numpy()
        truth = dict(mdata.uns["simulation"]["rna_specificity"])
        ref = reference_inputs(mdata["rna"], mdata["prot"].X)
        refs = {m: knn_accuracy(ref[m], labels) for m in MODS}
        true_keys = {m: f"sim_{m}_specific" for m in MODS}
        for m in MODS:
            z = mdata.obsm[true_keys[m]]
            mean = cross_val_predict(KNeighborsRegressor(50), mdata.obsm["sim_shared"], z, cv=5)
            mdata.obsm[f"sim_{m}_specific_centred"] = z - mean
            mdata.obsm[f"sim_{m}_specific_from_inputs"] = cross_val_predict(Ridge(1.0), ref[m], z, cv=5)
        shared = mdata.obsm["sim_shared"]
        lineage_mean = pd.DataFrame(shared).groupby(mdata.obs["celltype.l1"].to_numpy()).transform("mean").to_numpy()
        parts = {}
        for part, block in (("lineage_means", lineage_mean), ("within_lineage", shared - lineage_mean)):
            for m in MODS:
                mdata.obsm[f"sim_{m}_specific_{part}"] = np.hstack([mdata.obsm[true_keys[m]], block])
            parts[part] = {m: f"sim_{m}_specific_{part}" for m in MODS}
        within = shared - pd.DataFrame(shared).groupby(labels).transform("mean").to_numpy()  # each type's mean removed
        record = {
            "seed": seed,
            "n_cells": args.n_cells,
            **simulator_fields(args),
            "true_programs": measure(mdata, true_keys, labels, truth, refs, seed),
            "centred_on_shared": measure(
                mdata, {m: f"sim_{m}_specific_centred" for m in MODS}, labels, truth, refs, seed
            ),
            "from_inputs": measure(
                mdata, {m: f"sim_{m}_specific_from_inputs" for m in MODS}, labels, truth, refs, seed
            ),
            **{f"with_shared_{part}": measure(mdata, keys, labels, truth, refs, seed) for part, keys in parts.items()},
            "shared_within_type_r2_from_inputs": {
                m: round(float(cross_val_score(Ridge(1.0), ref[m], within, cv=5, scoring="r2").mean()), 3) for m in MODS
            },
        }
        with open(args.out, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        print(json.dumps(record))  # noqa: T201


if __name__ == "__main__":
    main()
