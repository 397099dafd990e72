"""UMAPs of the no-learning reference, totalVI's latent space and ``X_indiseek`` on the same cells.

``--data sim`` (the default) simulates ``--n-cells`` cells (default 5,000; :func:`indiseek.datasets.simulate_citeseq`
defaults, ``--seed``); ``--data pbmc5k`` and ``--data mosaic`` read the labelled cells of the real files in
``--real-data`` as ``citeseq_real.py`` does (PBMC 5k's 197 labelled cells; the mosaic's 800 paired cells of two donors).
Trains IndiSeek with the ``indiseek run`` defaults and scvi-tools' TOTALVI with its own (``--batch-key`` gives both
that column of ``obs`` as their batch covariate), and lays out each representation with scanpy (15 neighbours with the
scikit-learn transformer, :func:`scanpy.tl.umap`, seed 0): one row per representation, coloured by the labels
(``celltype.l1`` and ``celltype.l2`` on simulated cells; the cell type and, on the mosaic file, the donor). What a
picture shows is measured too: kNN accuracy (k = 15, 5-fold stratified) of the finest labels from each representation
and from its two UMAP coordinates alone, and k-means ARI (k = the number of labels) on the representation. Writes the
figure (``--figure``; ``""`` draws none) and appends one JSON line to ``--out``.

Usage: ``python benchmarks/umap_comparison.py [--data sim|pbmc5k|mosaic] [--seed 0] [--n-cells 5000] [--batch-key KEY]
[--figure docs/figures/simulation_umaps.png] [--real-data ../shared/data/real]
[--out benchmarks/results/umap_comparison.jsonl]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import scanpy as sc  # noqa: E402
import torch  # noqa: E402
from _biology import (  # noqa: E402
    CODE_RULES,
    kmeans_ari,
    knn_accuracy,
    model_settings,
    reference_inputs,
    totalvi_latent,
    versions,
)
from anndata import AnnData  # noqa: E402
from citeseq_real import load  # noqa: E402

import indiseek  # noqa: E402
from indiseek import IndiSeek  # noqa: E402


def umap(x: np.ndarray, obs, seed: int = 0) -> AnnData:
    """A temporary AnnData with the representation's UMAP, laid out as :func:`indiseek.pl.embeddings` does."""
    tmp = AnnData(obs=obs.copy(), obsm={"X_rep": x})
    sc.pp.neighbors(tmp, use_rep="X_rep", n_neighbors=15, transformer="sklearn", random_state=seed)
    sc.tl.umap(tmp, random_state=seed)
    return tmp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="sim", choices=["sim", "pbmc5k", "mosaic"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-cells", type=int, default=5000)
    parser.add_argument("--figure", default="docs/figures/simulation_umaps.png")
    parser.add_argument("--batch-key", help="Column of obs given to both models as the batch (e.g. batch).")
    parser.add_argument("--real-data", default="../shared/data/real")
    parser.add_argument("--out", default="benchmarks/results/umap_comparison.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(1)

    if args.data == "sim":
        mdata = indiseek.datasets.simulate_citeseq(n_cells=args.n_cells, seed=args.seed, progress_bar=False)
        protein, finest, colours, n_top_genes = "prot", "celltype.l2", ["celltype.l1", "celltype.l2"], 2000
        title = f"{mdata.n_obs:,} simulated cells (seed {args.seed}), 27 level-2 types in 5 lineages"
    else:
        mdata, protein, finest = load(args.data, Path(args.real_data))
        colours = [finest] + (["batch"] if "batch" in mdata.obs else [])
        n_top_genes = min(2000, mdata["rna"].n_vars - 1)  # as citeseq_real.py: the mosaic file has 500 genes
        title = f"{args.data}: {mdata.n_obs:,} cells, {mdata.obs[finest].nunique()} types (seed {args.seed})"
    labels = mdata.obs[finest].astype(str).to_numpy()
    ref = reference_inputs(mdata["rna"], mdata[protein].X, n_top_genes=n_top_genes)
    reps = {"reference: RNA PCs + protein CLR": np.hstack([ref["rna"], ref["protein"]])}
    seconds = {}
    reps["totalVI latent"], seconds["totalvi"], _ = totalvi_latent(
        mdata.copy(), args.seed, protein=protein, batch_key=args.batch_key
    )
    IndiSeek.setup_mudata(mdata, modalities={"rna_layer": "rna", "protein_layer": protein}, batch_key=args.batch_key)
    model = IndiSeek(mdata)
    start = time.perf_counter()
    model.train(seed=args.seed, enable_progress_bar=False)  # the defaults, as a user would train
    seconds["indiseek"] = time.perf_counter() - start
    reps["X_indiseek"] = model.get_latent_representation()

    obs = mdata.obs[colours].astype(str).astype("category")
    fig, axes = plt.subplots(len(reps), len(colours), figsize=(6 * len(colours), 4.2 * len(reps)), squeeze=False)
    measures, size = {}, 8 if mdata.n_obs > 2000 else 30  # points' size in the UMAPs
    for i, (name, x) in enumerate(reps.items()):
        tmp = umap(x, obs)
        measures[name] = {
            "knn": round(knn_accuracy(x, labels), 3),
            "knn_umap": round(knn_accuracy(tmp.obsm["X_umap"], labels), 3),
            "ari": round(kmeans_ari(x, labels), 3),
        }
        for j, key in enumerate(colours):
            legend = None if key == "celltype.l2" else "right margin"  # 27 level-2 types: no room for a legend
            panel = f"{name} - {key}"
            if key == finest:
                m = measures[name]
                panel += f"\nkNN {m['knn']:.2f} (UMAP {m['knn_umap']:.2f}), ARI {m['ari']:.2f}"
            sc.pl.umap(tmp, color=key, ax=axes[i, j], show=False, title=panel, legend_loc=legend, size=size)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.98))  # room for the title above the first row
    if args.figure:
        fig.savefig(args.figure, dpi=80)
    record = {
        "data": args.data,
        "seed": args.seed,
        "batch_key": args.batch_key,
        "n_cells": mdata.n_obs,
        "measures": measures,
        "train_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "epochs_run": model.epochs_trained,
        "defaults": model_settings(model),
        **CODE_RULES,
        "figure": args.figure or None,
        "versions": versions(),
    }
    with open(args.out, "a") as fh:
        fh.write(json.dumps(record) + "\n")
    print(json.dumps(record))  # noqa: T201


if __name__ == "__main__":
    main()
