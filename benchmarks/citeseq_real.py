"""Biology kept by IndiSeek's features on the real CITE-seq files in ``../shared/data/real``.

For each labelled file (the 197 labelled cells of PBMC 5k; the 800 paired cells of the PBMC mosaic, batches ``p3_0`` and
``p4_0``): kNN accuracy (k = 15, 5-fold stratified) of the labels from the concatenated features, (Z_rna, C_rna) and
(Z_protein, C_protein) (the two blocks equally weighted, and as the model returns them for one modality, each block
weighted by what it explains: ``rna_weighted``, ``protein_weighted``), against the no-learning reference (principal
components of scaled highly variable genes; protein CLR); Spearman's rho of per-type mean theta against the mean WNN RNA
weight (muon's formulas), for the features and for theta on the reference inputs, with each modality's gain over chance
in theta's same-label neighbour fractions; held-out R^2 of C_{3-i} from Z_i; k-means ARI (k = number of labels) of the
concatenated features, of their four blocks equally weighted, of the shared features (C_rna, C_protein) alone and of the
reference; the blocks' weights; kNN accuracy of the shared and of the specific features alone, and of always guessing
the most frequent label. ``--method totalvi`` trains scvi-tools' TOTALVI with its defaults on the same cells and
measures its latent space the same way. Appends one JSON line per file and seed to ``--out``.

Usage: ``python benchmarks/citeseq_real.py [--method indiseek|totalvi] [--input-dropout 0.3] [--n-layers 5]
[--n-layers-shared 4] [--n-protein-pcs 50] [--lambda 300 [100]] [--club-estimator gaussian]
[--specific-input-dropout 0 [0]] [--seeds 0 1 2]
[--data ../shared/data/real] [--out benchmarks/results/citeseq_real.jsonl]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import torch
from _biology import (
    CODE_RULES,
    add_per_modality_arguments,
    equal_blocks,
    kmeans_ari,
    knn_accuracy,
    knn_fields,
    leaks,
    model_settings,
    per_modality_options,
    reference_inputs,
    totalvi_latent,
    versions,
)

import indiseek
from indiseek import IndiSeek
from indiseek.defaults import CITESEQ


def load(name: str, data: Path) -> tuple[md.MuData, str, str]:
    """A MuData of paired, labelled cells, its protein modality's name and its label column."""
    if name == "pbmc5k":
        adata = ad.read_h5ad(data / "pbmc5k_cite_200cells.h5ad")
        adata = adata[adata.obs["cell_type"].notna()].copy()
        return indiseek.datasets.from_anndata(adata), "prot", "cell_type"
    mdata = md.read_h5mu(data / "pbmc_cite_mosaic_1600cells.h5mu")
    cells = mdata.obs_names[mdata.obs["batch"].isin(["p3_0", "p4_0"])]
    paired = md.MuData({"rna": mdata["rna"][cells].copy(), "adt": mdata["adt"][cells].copy()})
    paired.obs["celltype"] = mdata.obs.loc[cells, "celltype"].astype(str).values
    paired.obs["batch"] = mdata.obs.loc[cells, "batch"].astype(str).values  # the two donors
    return paired, "adt", "celltype"


def run(
    name: str,
    data: Path,
    seed: int,
    method: str = "indiseek",
    input_dropout: float = CITESEQ.input_dropout,
    n_layers: int = CITESEQ.n_layers,
    n_layers_shared: int = CITESEQ.n_layers_shared,
    n_protein_pcs: int | None = CITESEQ.n_protein_pcs,
    n_layers_estimator: int = CITESEQ.n_layers_estimator,
    lambda_: float | dict[str, float] = CITESEQ.lambda_,
    club_estimator: str = CITESEQ.club_estimator,
    max_epochs: int | None = None,
    specific_input_dropout: float | dict[str, float] = CITESEQ.specific_input_dropout,
) -> dict:
    mdata, protein, label_key = load(name, data)
    labels = mdata.obs[label_key].astype(str).to_numpy()
    ref = reference_inputs(mdata["rna"], mdata[protein].X, n_top_genes=min(2000, mdata["rna"].n_vars - 1))
    refs = {"all": np.hstack([ref["rna"], ref["protein"]]), **ref}
    knn_ref = {k: knn_accuracy(v, labels) for k, v in refs.items()}
    record = {"data": name, "n_cells": int(mdata.n_obs), "seed": seed, "method": method, "versions": versions()}
    ari_ref = round(kmeans_ari(refs["all"], labels), 3)
    if method == "totalvi":
        latent, train_s, epochs = totalvi_latent(mdata, seed, protein=protein)
        return record | {
            "epochs_run": epochs,
            **knn_fields({"all": knn_accuracy(latent, labels)}, knn_ref),
            "ari": round(kmeans_ari(latent, labels), 3),
            "ari_reference": ari_ref,
            "train_seconds": round(train_s, 1),
        }
    IndiSeek.setup_mudata(mdata, modalities={"rna_layer": "rna", "protein_layer": protein})
    model = IndiSeek(
        mdata, input_dropout=input_dropout, n_layers=n_layers, n_layers_shared=n_layers_shared,
        n_protein_pcs=n_protein_pcs, n_layers_estimator=n_layers_estimator, lambda_=lambda_,
        club_estimator=club_estimator, specific_input_dropout=specific_input_dropout,
    )  # fmt: skip
    start = time.perf_counter()
    model.train(max_epochs=max_epochs, batch_size=64, seed=seed, enable_progress_bar=False)
    train_s = time.perf_counter() - start
    model.write_embeddings()
    o = mdata.obsm
    feats = {
        "all": o["X_indiseek"],
        "rna": np.hstack([o["X_indiseek_specific_rna"], o["X_indiseek_shared_rna"]]),
        "protein": np.hstack([o["X_indiseek_specific_protein"], o["X_indiseek_shared_protein"]]),
        "shared": np.hstack([o["X_indiseek_shared_rna"], o["X_indiseek_shared_protein"]]),
        "specific": np.hstack([o["X_indiseek_specific_rna"], o["X_indiseek_specific_protein"]]),
        "all_equal_blocks": equal_blocks(o),
        **{f"{m}_weighted": model.get_latent_representation(modality=m) for m in ("rna", "protein")},
    }
    o["X_reference_rna"], o["X_reference_protein"] = ref["rna"], ref["protein"]
    indiseek.tl.wnn_weights(mdata, protein_mod=protein, backend="exact")
    indiseek.tl.theta_scores(mdata, label_key=label_key)
    separation = mdata.uns["theta"]["separation"]
    rho, _ = indiseek.tl.rank_correlation(mdata, groupby=label_key)
    indiseek.tl.theta_scores(mdata, label_key=label_key, rna_key="X_reference_rna",
                             protein_key="X_reference_protein", key_added="t_ref")  # fmt: skip
    rho_ref, _ = indiseek.tl.rank_correlation(mdata, score_key="t_ref", groupby=label_key)
    leak = leaks(mdata, seed)
    knn = {k: knn_accuracy(v, labels) for k, v in feats.items()}
    return record | {
        "defaults": model_settings(model),
        "max_epochs": max_epochs,
        "epochs_run": model.epochs_trained,
        "specific_stopping": "per modality",  # each specific stage stops on its own loss
        "rho_theta_vs_wnn": round(rho, 3),
        "theta_separation": {k: round(v, 3) for k, v in separation.items()},
        "rho_reference_inputs_vs_wnn": round(rho_ref, 3),
        **knn_fields(knn, knn_ref | {f"{m}_weighted": knn_ref[m] for m in ("rna", "protein")}),
        "independence_r2": {k: round(v["r2"], 3) for k, v in leak.items()},
        "independence_r2_linear": {k: round(v["r2_linear"], 3) for k, v in leak.items()},
        "ari": round(kmeans_ari(feats["all"], labels), 3),
        "ari_shared": round(kmeans_ari(feats["shared"], labels), 3),
        "ari_equal_blocks": round(kmeans_ari(feats["all_equal_blocks"], labels), 3),
        "embedding_weights": {k: round(v, 3) for k, v in model.embedding_weights.items()},
        **CODE_RULES,
        "ari_reference": ari_ref,
        "knn_most_frequent": round(float(np.unique(labels, return_counts=True)[1].max() / len(labels)), 3),
        "train_seconds": round(train_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="indiseek", choices=["indiseek", "totalvi"])
    parser.add_argument("--input-dropout", type=float, default=CITESEQ.input_dropout)
    add_per_modality_arguments(parser)
    parser.add_argument("--n-layers", type=int, default=CITESEQ.n_layers)
    parser.add_argument("--n-layers-shared", type=int, default=CITESEQ.n_layers_shared)
    parser.add_argument("--n-protein-pcs", type=int, default=CITESEQ.n_protein_pcs)
    parser.add_argument("--n-layers-estimator", type=int, default=CITESEQ.n_layers_estimator)
    parser.add_argument("--club-estimator", default=CITESEQ.club_estimator)
    parser.add_argument("--max-epochs", type=int, default=None, help="default: the library's (IndiSeek.train)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--files", nargs="+", default=["pbmc5k", "mosaic"])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/real"))
    parser.add_argument("--out", default="benchmarks/results/citeseq_real.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(1)
    lambda_, dropout = per_modality_options(args)
    for name in args.files:
        for seed in args.seeds:
            record = run(
                name, args.data, seed, args.method, args.input_dropout, args.n_layers, args.n_layers_shared,
                args.n_protein_pcs, args.n_layers_estimator, lambda_, args.club_estimator, args.max_epochs, dropout,
            )  # fmt: skip
            with open(args.out, "a") as fh:
                fh.write(json.dumps(record) + "\n")
            print(json.dumps(record))  # noqa: T201


if __name__ == "__main__":
    main()
