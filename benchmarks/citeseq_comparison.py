"""Biology kept by a method's features on simulated CITE-seq, against a reference that needs no learning.

Simulates cells with :func:`indiseek.datasets.simulate_citeseq`, trains one method and measures, against the finest
labels (``celltype.l2``): kNN accuracy (k = 15, 5-fold stratified) and k-means ARI of the concatenated features (also
with its four blocks equally weighted, as before the weights), of (Z_rna, C_rna) and of (Z_protein, C_protein); the same
for the no-learning reference (50 RNA principal components of scaled highly variable genes, protein CLR); Spearman's rho
of per-type mean theta against the true RNA specificity, for the method and for theta computed on the reference inputs;
and the held-out R^2 of C_{3-i} predicted from Z_i (:func:`indiseek.tl.independence`), and of the true shared programs
predicted from Z_i (the leak ``citeseq_oracle.py`` measures for the ideal features); the other way round, Z_i and the
true specific programs predicted from C_{3-i}. ``--method totalvi`` trains
scvi-tools' TOTALVI with its defaults on the same cells and measures its latent space the same way (it has no Z or C,
hence no theta). ``--refits N`` then fits the specific stages N more times on the same shared stage, each from another
initialisation (:meth:`~indiseek.IndiSeek.sweep_lambda` at the one lambda, seeds 1000, 1001, ...; same epochs, no early
stopping), and measures each: how much the result depends on the specific stages' initialisation. ``--first-refit K``
starts at refit K (seed 1000 + K) and leaves out the main fit's record, to extend an earlier run with the same options.
``--theta-fits K`` (K >= 2) also fits the specific stages K - 1 more times side by side on the main fit's shared stage
(:meth:`~indiseek.IndiSeek.write_specific_fits`, seed 1001) and records theta's rho with each cell's same-label counts
averaged over the K fits (``rho_truth_fits``), each fit's own rho (``rho_truth_each_fit``, the main fit first) and
the seconds of the new fits (``fits_seconds``).
``--crossed-types`` simulates with ``crossed_types=True`` (every lineage has the same specific states, so the specific
programs are independent of the shared ones; ``--n-types`` must then be a multiple of the 5 lineages, e.g. 25).
Appends one JSON line per fit to ``--out`` (refits with ``"refit": k``).

Usage: ``python benchmarks/citeseq_comparison.py --method indiseek --seed 0 [--lambda 300 [100]] [--lr 3e-3]
[--n-pcs 50] [--n-hidden 50] [--n-layers 5] [--n-layers-shared 4] [--n-specific 50] [--input-dropout 0.3]
[--specific-input-dropout 0 [0]]
[--max-epochs 100] [--batch-size 64] [--club-estimator gaussian] [--refits 0] [--first-refit 0] [--accelerator auto]
[--n-types 27] [--crossed-types] [--theta-fits 5]
[--out benchmarks/results/citeseq_comparison.jsonl]``
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from _biology import (
    CODE_RULES,
    add_per_modality_arguments,
    add_simulator_arguments,
    equal_blocks,
    kmeans_ari,
    knn_accuracy,
    knn_fields,
    leaks,
    per_modality_options,
    reference_inputs,
    simulate,
    simulator_fields,
    totalvi_latent,
    versions,
)

import indiseek
from indiseek import IndiSeek
from indiseek._keys import fits_key
from indiseek.defaults import CITESEQ


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="indiseek")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=CITESEQ.lr)
    parser.add_argument("--max-epochs", type=int, default=None, help="default: the library's (IndiSeek.train)")
    parser.add_argument("--batch-size", type=int, default=CITESEQ.batch_size)
    parser.add_argument("--n-pcs", type=int, default=CITESEQ.n_pcs)
    parser.add_argument("--club-estimator", default=CITESEQ.club_estimator)
    parser.add_argument("--activation", default=CITESEQ.activation)
    parser.add_argument("--n-estimator-steps", type=int, default=CITESEQ.n_estimator_steps)
    parser.add_argument("--n-hidden", type=int, default=CITESEQ.n_hidden)
    parser.add_argument("--n-layers", type=int, default=CITESEQ.n_layers)
    parser.add_argument("--n-layers-shared", type=int, default=CITESEQ.n_layers_shared)
    parser.add_argument("--n-layers-estimator", type=int, default=CITESEQ.n_layers_estimator)
    parser.add_argument("--n-specific", type=int, default=CITESEQ.n_specific)
    parser.add_argument("--input-dropout", type=float, default=CITESEQ.input_dropout)
    add_per_modality_arguments(parser)
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--n-cells", type=int, default=5000)
    add_simulator_arguments(parser)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--refits", type=int, default=0)
    parser.add_argument("--first-refit", type=int, default=0)
    parser.add_argument("--theta-fits", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/citeseq_comparison.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    mdata = simulate(args, args.seed, args.n_cells)
    labels = mdata.obs["celltype.l2"].astype(str).to_numpy()
    truth = dict(mdata.uns["simulation"]["rna_specificity"])
    ref = reference_inputs(mdata["rna"], mdata["prot"].X)
    refs = {"all": np.hstack([ref["rna"], ref["protein"]]), "rna": ref["rna"], "protein": ref["protein"]}
    knn_ref = {k: knn_accuracy(v, labels) for k, v in refs.items()}
    ari_ref = round(kmeans_ari(refs["all"], labels), 3)
    record = {"method": args.method, "seed": args.seed, "n_cells": args.n_cells, "simulator": "bounded ADT foreground"}
    record |= simulator_fields(args)
    if args.method == "totalvi":
        latent, train_s, epochs = totalvi_latent(mdata, args.seed, args.accelerator)
        knn = knn_accuracy(latent, labels)
        record |= {
            "defaults": "scvi-tools TOTALVI",
            "epochs_run": epochs,
            **knn_fields({"all": knn}, knn_ref),
            "ari": round(kmeans_ari(latent, labels), 3),
            "ari_reference": ari_ref,
        }
        return finish(record, train_s, args)

    # theta on the no-learning inputs: the same for every fit below
    mdata.obsm["X_reference_rna"], mdata.obsm["X_reference_protein"] = refs["rna"], refs["protein"]
    indiseek.tl.theta_scores(mdata, rna_key="X_reference_rna", protein_key="X_reference_protein", key_added="t_ref")
    rho_ref, _ = indiseek.tl.rank_correlation(mdata, score_key="t_ref", reference=truth)

    IndiSeek.setup_mudata(mdata)
    lambda_, dropout = per_modality_options(args)
    if args.refits and isinstance(lambda_, dict):
        raise SystemExit("--refits refits at one lambda for both specific stages (sweep_lambda): pass --lambda L.")
    model = IndiSeek(
        mdata, method=args.method, lambda_=lambda_, club_estimator=args.club_estimator, n_pcs=args.n_pcs,
        n_hidden=args.n_hidden, n_layers=args.n_layers, n_layers_shared=args.n_layers_shared,
        n_layers_estimator=args.n_layers_estimator, activation=args.activation,
        n_specific=args.n_specific, input_dropout=args.input_dropout,
        specific_input_dropout=dropout,
    )  # fmt: skip
    start = time.perf_counter()
    model.train(
        max_epochs=args.max_epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
        n_estimator_steps=args.n_estimator_steps, accelerator=args.accelerator, enable_progress_bar=False,
    )  # fmt: skip
    train_s = time.perf_counter() - start
    record |= {
        "lambda": lambda_,
        "lr": args.lr,
        "n_pcs": args.n_pcs,
        "n_hidden": args.n_hidden,
        "n_layers": args.n_layers,
        "n_layers_shared": args.n_layers_shared,
        "n_layers_estimator": args.n_layers_estimator,
        "n_specific": args.n_specific,
        "input_dropout": args.input_dropout,
        "specific_input_dropout": dropout,
        "club_estimator": args.club_estimator,
        "activation": args.activation,
        "n_estimator_steps": args.n_estimator_steps,
        "max_epochs": args.max_epochs,
        "batch_size": args.batch_size,
        "stack": "lightning",
        "epochs_run": model.epochs_trained,
        "specific_stopping": "per modality",  # each specific stage stops on its own loss
        "rho_truth_reference_inputs": round(rho_ref, 3),
        "ari_reference": ari_ref,
    }
    if args.first_refit == 0:  # later refits extend an earlier run, whose main fit is already recorded
        fields = measure(model, mdata, args.method, labels, truth, knn_ref, args.seed)
        if args.theta_fits > 1:
            fields |= theta_over_fits(model, mdata, args, truth)
        finish(record | fields, train_s, args)
    # the same shared stage, fresh specific stages from another initialisation
    for k in range(args.first_refit, args.first_refit + args.refits):
        start = time.perf_counter()
        model.sweep_lambda(
            [lambda_], max_epochs=args.max_epochs, batch_size=args.batch_size, lr=args.lr,
            n_estimator_steps=args.n_estimator_steps, seed=1000 + k, accelerator=args.accelerator,
            enable_progress_bar=False,
        )  # fmt: skip
        refit = {"refit": k, "epochs_run": {"specific": model.trainer.current_epoch}}  # the library's budget when unset
        refit |= measure(model, mdata, args.method, labels, truth, knn_ref, args.seed)
        finish(record | refit, time.perf_counter() - start, args)


def measure(model, mdata, m: str, labels, truth, knn_ref, seed: int) -> dict:
    """kNN, ARI, theta's rho and leak of a trained model's features (see the module docstring)."""
    model.write_embeddings()
    feats = {
        "all": mdata.obsm[f"X_{m}"],
        "rna": np.hstack([mdata.obsm[f"X_{m}_specific_rna"], mdata.obsm[f"X_{m}_shared_rna"]]),
        "protein": np.hstack([mdata.obsm[f"X_{m}_specific_protein"], mdata.obsm[f"X_{m}_shared_protein"]]),
        "specific_rna": mdata.obsm[f"X_{m}_specific_rna"],
        "specific_protein": mdata.obsm[f"X_{m}_specific_protein"],
        "all_equal_blocks": equal_blocks(mdata.obsm, m),
    }
    indiseek.tl.theta_scores(mdata, method=m)
    rho, _ = indiseek.tl.rank_correlation(mdata, reference=truth)
    pairs = (("rna", "protein"), ("protein", "rna"))  # (modality i, the other one)

    def r2(features: str, target: str) -> float:
        """Held-out R^2 of ``target`` predicted from ``features`` (both ``.obsm`` keys), rounded."""
        return round(indiseek.tl.independence(mdata, features, target, seed=seed)["r2"], 3)

    leak = leaks(mdata, seed, m)
    knn = {k: knn_accuracy(v, labels) for k, v in feats.items()}
    return {
        "rho_truth": round(rho, 3),
        **knn_fields(knn, knn_ref),
        "ari": round(kmeans_ari(feats["all"], labels), 3),
        "ari_equal_blocks": round(kmeans_ari(feats["all_equal_blocks"], labels), 3),
        "embedding_weights": {k: round(v, 3) for k, v in model.embedding_weights.items()},
        **CODE_RULES,
        "independence_r2": {k: round(v["r2"], 3) for k, v in leak.items()},
        "independence_r2_linear": {k: round(v["r2_linear"], 3) for k, v in leak.items()},
        "independence_p": {k: round(v["p_value"], 3) for k, v in leak.items()},
        # the other direction, Z_i predicted from C_{3-i} (CLUB's q(z | c) models this one), for Z_i and for the
        # true programs in its place: how much of the ideal specific features the learned shared features predict
        "independence_r2_reverse": {i: r2(f"X_{m}_shared_{o}", f"X_{m}_specific_{i}") for i, o in pairs},
        "true_programs_from_shared": {i: r2(f"X_{m}_shared_{o}", f"sim_{i}_specific") for i, o in pairs},
        # the same leak against the true shared programs, comparable with citeseq_oracle.py's ideal features
        "independence_r2_true_shared": {i: r2(f"X_{m}_specific_{i}", "sim_shared") for i, _ in pairs},
    }


def theta_over_fits(model, mdata, args: argparse.Namespace, truth: dict) -> dict:
    """rho of theta averaged over ``args.theta_fits`` fits of the specific stages, and of each fit alone."""
    start = time.perf_counter()
    model.write_specific_fits(
        args.theta_fits, max_epochs=args.max_epochs, batch_size=args.batch_size, lr=args.lr,
        n_estimator_steps=args.n_estimator_steps, seed=1001, accelerator=args.accelerator, enable_progress_bar=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    keys = {m: fits_key(args.method, m) for m in ("rna", "protein")}

    def rho(rna, protein) -> float:
        indiseek.tl.theta_scores(mdata, rna_key=rna, protein_key=protein, key_added="theta_fits")
        return round(indiseek.tl.rank_correlation(mdata, score_key="theta_fits", reference=truth)[0], 3)

    each = []
    for j in range(args.theta_fits):
        for m, key in keys.items():
            mdata.obsm[f"_fit_{m}"] = mdata.obsm[key][:, j]
        each.append(rho("_fit_rna", "_fit_protein"))
    return {
        "theta_fits": args.theta_fits,
        "rho_truth_fits": rho(keys["rna"], keys["protein"]),
        "rho_truth_each_fit": each,
        "fits_seconds": round(seconds, 1),
    }


def finish(record: dict, train_s: float, args: argparse.Namespace) -> None:
    """Add timing and machine details, append the record to ``args.out`` and print it."""
    device = torch.cuda.get_device_name() if args.accelerator != "cpu" and torch.cuda.is_available() else "cpu"
    record |= {"train_seconds": round(train_s, 1), "threads": args.threads, "device": device, "versions": versions()}
    with open(args.out, "a") as fh:
        fh.write(json.dumps(record) + "\n")
    print(json.dumps(record))  # noqa: T201


if __name__ == "__main__":
    main()
