"""How reproducible is the ranking of cell types by WNN RNA weight, and by theta, on the real CITE-seq files?

The real files judge theta by Spearman's rho of the types' mean theta against their mean WNN RNA weight. A ranking
that does not reproduce on other cells of the same file cannot judge another one. For each labelled file of
``citeseq_real.py`` this script splits the cells ``--splits`` times into two halves at random (half of every type in
each) and recomputes, on each half alone, the WNN weights (:func:`indiseek.tl.wnn_weights`) and theta on the
no-learning inputs (the reference of ``citeseq_real.py``: RNA principal components and protein CLR). It records the
rank correlation of the types between the two halves (the ranking's split-half reliability), between a half's ranking
and the whole file's, and between theta on the inputs and WNN within a half and across halves (theta of one half
against WNN of the other: agreement that does not come from sharing the same cells). It then trains IndiSeek with
its defaults once per seed in ``--seeds`` on the whole file and records each fit's per-type mean theta, its rho
against WNN, the rank correlation between the fits (how reproducible IndiSeek's ranking is) and the rho of theta
averaged over the fits; with each fit, its leaks (held-out R^2 of C_{3-i} from Z_i), theta's gain over chance in each
modality and the specific blocks' weights. ``--specific-epochs E ...`` also fits each model's specific stages again
for E epochs, without early stopping, from one other initialisation, and records the same for each E: how theta's
agreement with WNN moves as the specific features become independent. ``--theta-fits K`` (K >= 2) also fits each
model's specific stages K - 1 more times side by side (:meth:`~indiseek.IndiSeek.write_specific_fits`, seed 1001)
and records the same rankings with theta averaged over the K fits (``theta_fits``): how much of the disagreement
between trainings is the specific stages' initialisation. Appends one JSON line per file to ``--out``.

Usage: ``python benchmarks/theta_reliability.py [--files pbmc5k mosaic] [--splits 20] [--seeds 0 1 2 3 4]
[--specific-epochs 46 100 400 1000] [--theta-fits 5] [--data ../shared/data/real]
[--out benchmarks/results/theta_reliability.jsonl]``
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
import warnings
from collections import defaultdict
from pathlib import Path

import mudata as md
import numpy as np
import pandas as pd
import torch
from _biology import leaks, reference_inputs, versions
from citeseq_real import load
from scipy.stats import spearmanr

import indiseek
from indiseek import IndiSeek
from indiseek._keys import fits_key
from indiseek.defaults import CITESEQ


def rho(a: pd.Series, b: pd.Series) -> float:
    """Spearman's rho of two per-type series over the types they share."""
    common = a.index.intersection(b.index)
    return float(spearmanr(a.loc[common], b.loc[common])[0])


def reference_rankings(mdata: md.MuData, protein: str, label_key: str) -> pd.DataFrame:
    """Per-type mean WNN RNA weight (``wnn``) and mean theta on the no-learning inputs (``theta``)."""
    ref = reference_inputs(mdata["rna"], mdata[protein].X, n_top_genes=min(2000, mdata["rna"].n_vars - 1))
    mdata.obsm["X_reference_rna"], mdata.obsm["X_reference_protein"] = ref["rna"], ref["protein"]
    indiseek.tl.wnn_weights(mdata, protein_mod=protein, backend="exact")
    indiseek.tl.theta_scores(mdata, label_key=label_key, rna_key="X_reference_rna",
                             protein_key="X_reference_protein", key_added="theta_inputs")  # fmt: skip
    obs = mdata.obs
    frame = pd.DataFrame({"wnn": obs["wnn_rna_weight"], "theta": obs["theta_inputs"], "label": obs[label_key]})
    return frame.groupby("label", observed=True).mean()


def split_halves(mdata: md.MuData, protein: str, label_key: str, n_splits: int, whole: pd.DataFrame) -> dict:
    """Rank correlations over ``n_splits`` random halves, stratified by label (``whole``: the whole file's rankings)."""
    labels = mdata.obs[label_key].to_numpy()
    rng = np.random.default_rng(0)
    out: dict[str, list[float]] = defaultdict(list)
    for _ in range(n_splits):
        first = np.zeros(len(labels), dtype=bool)
        for label in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == label))
            first[idx[: len(idx) // 2]] = True
        a, b = (reference_rankings(mdata[mask].copy(), protein, label_key) for mask in (first, ~first))
        out["wnn_halves"].append(rho(a.wnn, b.wnn))
        out["wnn_half_whole"].append((rho(a.wnn, whole.wnn) + rho(b.wnn, whole.wnn)) / 2)
        out["theta_inputs_halves"].append(rho(a.theta, b.theta))
        out["theta_inputs_vs_wnn_same_half"].append((rho(a.theta, a.wnn) + rho(b.theta, b.wnn)) / 2)
        out["theta_inputs_vs_wnn_across"].append((rho(a.theta, b.wnn) + rho(b.theta, a.wnn)) / 2)
    return {"whole_file": {"theta_inputs_vs_wnn": round(rho(whole.theta, whole.wnn), 3)}} | {
        k: {"mean": round(float(np.mean(v)), 3), "sd": round(float(np.std(v)), 3)} for k, v in out.items()
    }


def fit_fields(model: IndiSeek, mdata: md.MuData, label_key: str, wnn: pd.Series, seed: int) -> tuple[pd.Series, dict]:
    """Per-type mean theta of the fit in use, and its rho against WNN, leaks, theta's gains over chance, Z's weights."""
    model.write_embeddings()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a side of theta at chance is what these fields record
        indiseek.tl.theta_scores(mdata, label_key=label_key)
    theta = mdata.obs.groupby(label_key, observed=True)["theta"].mean()
    separation = mdata.uns["theta"]["separation"]
    leak = {m: v["r2"] for m, v in leaks(mdata, seed).items()}
    weights = model.embedding_weights
    return theta, {
        "rho_vs_wnn": round(rho(theta, wnn), 3),
        "independence_r2": {m: round(v, 3) for m, v in leak.items()},
        "theta_gain_over_chance": {m: round(separation[m], 3) for m in ("rna", "protein")},
        "specific_weights": {m: round(weights[f"specific_{m}"], 3) for m in ("rna", "protein")},
    }


def rankings(thetas: dict[int, pd.Series], wnn: pd.Series) -> dict:
    """rho of each fit's per-type mean theta against WNN, between the fits, and of their mean against WNN."""
    between = [rho(thetas[s], thetas[t]) for s, t in itertools.combinations(thetas, 2)]
    mean_theta = pd.concat(thetas.values(), axis=1).mean(axis=1)
    return {
        "rho_vs_wnn": [round(rho(theta, wnn), 3) for theta in thetas.values()],
        "between_fits": {k: round(float(f(between)), 3) for k, f in (("mean", np.mean), ("min", min), ("max", max))},
        "mean_theta_over_fits_vs_wnn": round(rho(mean_theta, wnn), 3),
    }


def indiseek_rankings(
    name: str, data: Path, seeds: list[int], wnn: pd.Series, specific_epochs: list[int], theta_fits: int
) -> dict:
    """IndiSeek with its defaults, once per seed: per-type mean theta, rho against WNN and between the fits.

    With ``specific_epochs``, each fit's specific stages are also fitted again for each number of epochs, without
    early stopping, from one other initialisation (``sweep_lambda`` at the default lambda, seed 1000). With
    ``theta_fits`` > 1, the same rankings with theta averaged over that many fits of the specific stages.
    """
    thetas, averaged, fits, refits = {}, {}, {}, defaultdict(dict)
    for seed in seeds:
        mdata, protein, label_key = load(name, data)
        IndiSeek.setup_mudata(mdata, modalities={"rna_layer": "rna", "protein_layer": protein})
        model = IndiSeek(mdata)
        model.train(batch_size=64, seed=seed, enable_progress_bar=False)
        thetas[seed], fits[str(seed)] = fit_fields(model, mdata, label_key, wnn, seed)
        fits[str(seed)]["specific_epochs"] = model.epochs_trained["specific"]
        if theta_fits > 1:
            model.write_specific_fits(theta_fits, batch_size=64, seed=1001, enable_progress_bar=False)
            keys = {f"{m}_key": fits_key("indiseek", m) for m in ("rna", "protein")}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                indiseek.tl.theta_scores(mdata, label_key=label_key, key_added="theta_fits", **keys)
            averaged[seed] = mdata.obs.groupby(label_key, observed=True)["theta_fits"].mean()
            fits[str(seed)]["fits_seconds"] = round(model.train_times_["fits"], 1)
        for epochs in specific_epochs:
            model.sweep_lambda([model.lambda_in_use], max_epochs=epochs, batch_size=64, seed=1000,
                               enable_progress_bar=False)  # fmt: skip
            refits[str(epochs)][str(seed)] = fit_fields(model, mdata, label_key, wnn, seed)[1]
    return {
        "seeds": seeds,
        **rankings(thetas, wnn),
        **({"theta_fits": {"n_fits": theta_fits, **rankings(averaged, wnn)}} if averaged else {}),
        "type_mean_theta": {str(s): {k: round(float(v), 3) for k, v in thetas[s].items()} for s in seeds},
        "type_mean_wnn_rna_weight": {k: round(float(v), 3) for k, v in wnn.items()},
        "fits": fits,
        **({"specific_refits": dict(refits)} if refits else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="+", default=["pbmc5k", "mosaic"])
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--specific-epochs", type=int, nargs="*", default=[])
    parser.add_argument("--theta-fits", type=int, default=1)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/real"))
    parser.add_argument("--out", default="benchmarks/results/theta_reliability.jsonl")
    args = parser.parse_args()
    if args.specific_epochs and isinstance(CITESEQ.lambda_, dict):
        parser.error("--specific-epochs refits at one lambda for both specific stages (sweep_lambda), not a pair.")
    torch.set_num_threads(1)
    for name in args.files:
        start = time.perf_counter()
        mdata, protein, label_key = load(name, args.data)
        whole = reference_rankings(mdata.copy(), protein, label_key)
        record = {
            "data": name,
            "n_cells": mdata.n_obs,
            "n_types": len(whole),
            "splits": args.splits,
            "versions": versions(),
            "split_halves": split_halves(mdata, protein, label_key, args.splits, whole),
            "indiseek": indiseek_rankings(
                name, args.data, args.seeds, whole.wnn, args.specific_epochs, args.theta_fits
            ),
        }
        record["seconds"] = round(time.perf_counter() - start, 1)
        with open(args.out, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        print(json.dumps(record))  # noqa: T201


if __name__ == "__main__":
    main()
