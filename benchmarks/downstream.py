"""Downstream tasks against totalVI: batch correction, protein imputation, label transfer, unpaired cells.

One run = one data set and seed; it appends one JSON line per task to ``--out``.

- ``integration``: the paired cells of every batch. Batch mixing (batch ASW, scaled iLISI), graph connectivity and
  cell-type preservation (cell-type ASW, 5-fold kNN accuracy) of: the no-learning inputs (RNA PCs + protein CLR,
  uncorrected), IndiSeek without and with ``batch_key``, totalVI with ``batch_key`` (its defaults).
- ``imputation``: 20% of the paired cells held out; each held-out cell's protein (CLR) predicted from its RNA:
  IndiSeek (``get_imputed_protein``, trained on the other 80% with ``batch_key``), totalVI (trained with the
  held-out cells' proteins hidden, in batches of their own, as totalVI marks missing proteins;
  ``get_normalized_expression`` in the cells' original batches, then CLR), and kNN regression (k = 15) on RNA
  principal components. Per-protein Pearson correlation with the measured CLR.
- ``transfer``: reference = first batch, query = second batch. IndiSeek trained on the reference
  (``batch_key``), the query mapped with ``IndiSeek.load_query_data``; totalVI trained on the reference and the
  query mapped with scArches (``TOTALVI.load_query_data`` + 200 epochs, weight decay 0); the no-learning inputs
  (PCA fitted on the reference). Labels moved with :func:`indiseek.tl.transfer_labels`; accuracy on the query.
- ``unpaired`` (mosaic file): labels of the RNA-only and protein-only cells transferred from the paired cells
  through the features their one modality gives; totalVI (RNA-only cells as a batch without protein; it cannot
  take protein-only cells) and the no-learning inputs of each modality.

Usage: ``python benchmarks/downstream.py --data sim|mosaic --seed 0 [--tasks integration,imputation,transfer,unpaired]
[--out benchmarks/results/downstream.jsonl]``
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
import warnings
from pathlib import Path

import mudata as md
import numpy as np
import pandas as pd
import scanpy as sc
import scvi
import torch
from _biology import CODE_RULES, knn_accuracy, totalvi_model, versions
from anndata import AnnData
from sklearn.neighbors import KNeighborsRegressor

import indiseek
from indiseek import IndiSeek, tl
from indiseek.defaults import CITESEQ

MOSAIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "pbmc_cite_mosaic_1600cells.h5mu"
FIT = dict(enable_progress_bar=False)


def _load(data: str, seed: int) -> tuple[md.MuData, str, str]:
    """Data, protein modality name, label column. Simulated: 3,000 cells, 2 batches."""
    if data == "sim":
        mdata = indiseek.datasets.simulate_citeseq(n_cells=3000, n_batches=2, seed=seed, progress_bar=False)
        return mdata, "prot", "celltype.l2"
    mdata = md.read_h5mu(MOSAIC)
    return mdata, "adt", "celltype"


def _paired(mdata: md.MuData, prot: str) -> md.MuData:
    names = mdata.obs_names[mdata.obs_names.isin(mdata["rna"].obs_names) & mdata.obs_names.isin(mdata[prot].obs_names)]
    protein = mdata[prot][names].copy()
    protein.X = _dense(protein.X)  # totalVI's protein prior needs dense counts
    out = md.MuData({"rna": mdata["rna"][names].copy(), prot: protein})
    for col in ("batch", "celltype", "celltype.l2", "celltype.l1"):
        if col in mdata.obs:
            out.obs[col] = pd.Categorical(mdata.obs.loc[names, col].astype(str))
    return out


def _dense(x) -> np.ndarray:
    return x.toarray() if hasattr(x, "toarray") else np.asarray(x)


def _inputs(mdata: md.MuData, prot: str) -> np.ndarray:
    """No learning: 50 PCs of scaled HVG (or all of few genes) + protein CLR, scaled blocks concatenated."""
    rna = indiseek.pp.standard_rna_pcs(mdata["rna"], n_top_genes=min(2000, mdata["rna"].n_vars))
    clr = indiseek.pp.clr(_dense(mdata[prot].X))
    return np.concatenate([rna / rna.std(), clr / clr.std()], axis=1)


def _indiseek(mdata: md.MuData, prot: str, seed: int, batch_key: str | None, **train) -> IndiSeek:
    IndiSeek.setup_mudata(mdata, modalities={"protein_layer": prot}, batch_key=batch_key)
    n_genes = mdata["rna"].n_vars
    model = IndiSeek(mdata, n_top_genes=min(2000, n_genes), n_pcs=min(50, n_genes - 1))
    model.train(seed=seed, **FIT, **train)
    return model


def integration(data: str, seed: int) -> dict:
    mdata, prot, label = _load(data, seed)
    mdata = _paired(mdata, prot)
    reps, seconds = {"inputs": _inputs(mdata, prot)}, {}
    for name, batch_key in (("indiseek", None), ("indiseek_batch", "batch")):
        copy = mdata.copy()
        start = time.perf_counter()
        model = _indiseek(copy, prot, seed, batch_key)
        seconds[name] = time.perf_counter() - start
        reps[name] = model.get_latent_representation()
        reps[name + "_shared_rna"] = model.get_latent_representation(modality="rna", kind="shared")
    start = time.perf_counter()
    totalvi, _ = totalvi_model(mdata.copy(), seed, prot, "batch")
    seconds["totalvi_batch"] = time.perf_counter() - start
    reps["totalvi_batch"] = totalvi.get_latent_representation()
    for name, x in reps.items():
        mdata.obsm[name] = x
    table = tl.integration_metrics(mdata, "batch", label, use_rep=list(reps))
    table["knn_accuracy"] = [knn_accuracy(reps[n], mdata.obs[label].to_numpy()) for n in table.index]
    return {"metrics": table.round(3).to_dict(orient="index"), "train_seconds": _round(seconds),
            "n_cells": mdata.n_obs}  # fmt: skip


def _pearson(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    keep = truth.std(0) > 0
    p, t = pred[:, keep] - pred[:, keep].mean(0), truth[:, keep] - truth[:, keep].mean(0)
    return (p * t).sum(0) / np.sqrt((p**2).sum(0) * (t**2).sum(0) + 1e-12)


def imputation(data: str, seed: int) -> dict:
    mdata, prot, label = _load(data, seed)
    mdata = _paired(mdata, prot)
    rng = np.random.default_rng(seed)
    held = np.zeros(mdata.n_obs, dtype=bool)
    held[rng.choice(mdata.n_obs, mdata.n_obs // 5, replace=False)] = True
    measured = indiseek.pp.clr(_dense(mdata[prot].X))[held]
    names = mdata.obs_names[held]
    scores, seconds = {}, {}

    train = mdata[~held].copy()
    train.obs["batch"] = pd.Categorical(train.obs["batch"].astype(str))
    start = time.perf_counter()
    model = _indiseek(train, prot, seed, "batch")
    seconds["indiseek"] = time.perf_counter() - start
    query = mdata[held].copy()
    query.obs["batch"] = pd.Categorical(query.obs["batch"].astype(str))
    scores["indiseek"] = _pearson(model.get_imputed_protein(query).loc[names].to_numpy(), measured)

    hidden = mdata.copy()  # totalVI: held-out cells in batches of their own whose proteins are all zero
    batch = hidden.obs["batch"].astype(str).to_numpy().copy()
    batch[held] = np.char.add(batch[held].astype(str), "_heldout")
    hidden.obs["batch"] = pd.Categorical(batch)
    x = _dense(hidden[prot].X).copy()
    x[held] = 0
    hidden[prot].X = x
    start = time.perf_counter()
    totalvi, _ = totalvi_model(hidden, seed, prot, "batch")
    seconds["totalvi"] = time.perf_counter() - start
    rows = np.flatnonzero(held)
    original = mdata.obs["batch"].astype(str).to_numpy()[held]
    predicted = np.zeros_like(measured)
    for b in np.unique(original):  # each held-out cell predicted as a cell of its own (measured) batch
        cells = rows[original == b]
        _, protein = totalvi.get_normalized_expression(indices=cells, transform_batch=b, n_samples=25,
                                                       return_mean=True, include_protein_background=True)  # fmt: skip
        predicted[original == b] = indiseek.pp.clr(np.asarray(protein))
    scores["totalvi"] = _pearson(predicted, measured)

    pcs = indiseek.pp.standard_rna_pcs(mdata["rna"], n_top_genes=min(2000, mdata["rna"].n_vars))
    knn = KNeighborsRegressor(15).fit(pcs[~held], indiseek.pp.clr(_dense(mdata[prot].X))[~held])
    scores["knn_rna_pcs"] = _pearson(knn.predict(pcs[held]), measured)
    return {
        "median_pearson": {k: round(float(np.median(v)), 3) for k, v in scores.items()},
        "mean_pearson": {k: round(float(np.mean(v)), 3) for k, v in scores.items()},
        "train_seconds": _round(seconds),
        "n_held_out": int(held.sum()),
        "n_proteins": int(measured.shape[1]),
    }


def transfer(data: str, seed: int) -> dict:
    mdata, prot, label = _load(data, seed)
    mdata = _paired(mdata, prot)
    first, second = sorted(mdata.obs["batch"].astype(str).unique())[:2]
    parts = {}
    for name, b in (("reference", first), ("query", second)):
        part = mdata[mdata.obs["batch"].astype(str) == b].copy()
        part.obs["batch"] = pd.Categorical(part.obs["batch"].astype(str))
        part["rna"].obs["batch"] = part.obs["batch"].to_numpy()
        parts[name] = part
    reference, query = parts["reference"], parts["query"]
    reps = {}

    model = _indiseek(reference, prot, seed, "batch")
    mapped = IndiSeek.load_query_data(query, model)
    for kind, (modality, k) in {"indiseek": (None, None), "indiseek_shared_rna": ("rna", "shared"),
                                "indiseek_shared_protein": ("protein", "shared")}.items():  # fmt: skip
        reps[kind] = (model.get_latent_representation(modality=modality, kind=k),
                      mapped.get_latent_representation(modality=modality, kind=k))  # fmt: skip
    reps["indiseek_unmapped"] = (reps["indiseek"][0], _without_new_centres(model, query))

    pcs = _reference_pca(reference, query)
    clr_ref, clr_query = (indiseek.pp.clr(_dense(d[prot].X)) for d in (reference, query))
    reps["inputs"] = (np.c_[pcs[0] / pcs[0].std(), clr_ref / clr_ref.std()],
                      np.c_[pcs[1] / pcs[0].std(), clr_query / clr_ref.std()])  # fmt: skip

    totalvi, _ = totalvi_model(reference, seed, prot, "batch")
    query_vi = scvi.model.TOTALVI.load_query_data(query, totalvi)
    query_vi.train(max_epochs=200, plan_kwargs={"weight_decay": 0.0}, **FIT)
    reps["totalvi_scarches"] = (totalvi.get_latent_representation(), query_vi.get_latent_representation())

    truth = query.obs[label].astype(str).to_numpy()
    accuracy, confidence = {}, {}
    for name, (x_ref, x_query) in reps.items():
        ref, qry = AnnData(obs=reference.obs[[label]].copy()), AnnData(obs=query.obs[[label]].copy())
        ref.obsm["x"], qry.obsm["x"] = x_ref, x_query
        tl.transfer_labels(ref, qry, label, use_rep="x")
        accuracy[name] = round(float((qry.obs["transferred_labels"].astype(str).to_numpy() == truth).mean()), 3)
        confidence[name] = round(float(qry.obs["transferred_labels_confidence"].mean()), 3)
    return {"reference": first, "query": second, "accuracy": accuracy, "mean_confidence": confidence,
            "n_reference": reference.n_obs, "n_query": query.n_obs}  # fmt: skip


def _without_new_centres(model: IndiSeek, query: md.MuData) -> np.ndarray:
    """The query embedded as if it came from the reference's batch (no centring of its own): the ablation."""
    relabelled = query.copy()
    relabelled.obs["batch"] = pd.Categorical([model.batches_[0]] * query.n_obs)
    return model.get_latent_representation(relabelled)


def _reference_pca(reference: md.MuData, query: md.MuData) -> tuple[np.ndarray, np.ndarray]:
    """50 PCs of scaled HVG fitted on the reference, the query projected on them."""
    ref = AnnData(sc.pp.log1p(sc.pp.normalize_total(AnnData(_dense(reference["rna"].X).astype(np.float32)),
                                                    target_sum=1e4, copy=True).X))  # fmt: skip
    qry = AnnData(sc.pp.log1p(sc.pp.normalize_total(AnnData(_dense(query["rna"].X).astype(np.float32)),
                                                    target_sum=1e4, copy=True).X))  # fmt: skip
    sc.pp.highly_variable_genes(ref, n_top_genes=min(2000, ref.n_vars), flavor="seurat")
    genes = ref.var["highly_variable"].to_numpy()
    mean, std = ref.X[:, genes].mean(0), ref.X[:, genes].std(0) + 1e-8
    z_ref = np.clip((ref.X[:, genes] - mean) / std, -10, 10)
    _, _, vt = np.linalg.svd(z_ref - z_ref.mean(0), full_matrices=False)
    comps = vt[:50].T
    z_query = np.clip((qry.X[:, genes] - mean) / std, -10, 10)
    return (z_ref - z_ref.mean(0)) @ comps, (z_query - z_ref.mean(0)) @ comps


def unpaired(data: str, seed: int) -> dict:
    if data != "mosaic":
        raise ValueError("the unpaired task runs on the mosaic file")
    mdata, prot, label = _load(data, seed)
    truth = mdata.obs[label].astype(str).to_numpy()
    has_rna = mdata.obs_names.isin(mdata["rna"].obs_names)
    has_prot = mdata.obs_names.isin(mdata[prot].obs_names)
    paired, rna_only, prot_only = has_rna & has_prot, has_rna & ~has_prot, has_prot & ~has_rna
    model = _indiseek(mdata, prot, seed, "batch")
    accuracy = {}
    for name, cells, modality in (("rna_only", rna_only, "rna"), ("protein_only", prot_only, "protein")):
        for kind in ("shared", None):
            x = model.get_latent_representation(modality=modality, kind=kind)
            accuracy[f"{name}:indiseek_{kind or 'shared+specific'}_{modality}"] = _transfer_accuracy(
                x[paired], truth[paired], x[cells], truth[cells], label)  # fmt: skip
    pcs = indiseek.pp.standard_rna_pcs(mdata["rna"], n_top_genes=min(2000, mdata["rna"].n_vars))
    clr = indiseek.pp.clr(_dense(mdata[prot].X))
    for name, key, cells, values in (("rna_only:inputs_rna_pcs", "rna", rna_only, pcs),
                                     ("protein_only:inputs_clr", prot, prot_only, clr)):  # fmt: skip
        rows = mdata.obs_names.get_indexer(mdata[key].obs_names)  # the modality's cells in mdata
        p, c, y = paired[rows], cells[rows], truth[rows]
        accuracy[name] = _transfer_accuracy(values[p], y[p], values[c], y[c], label)

    # totalVI: RNA-only cells as a batch without protein (zeros), the paired cells in theirs; no protein-only cells
    keep = paired | rna_only
    names = mdata.obs_names[keep]
    x = np.zeros((len(names), mdata[prot].n_vars), dtype=np.float32)
    prot_rows = mdata[prot].obs_names.get_indexer(names)
    x[prot_rows >= 0] = _dense(mdata[prot].X)[prot_rows[prot_rows >= 0]]
    vi = md.MuData({"rna": mdata["rna"][names].copy(), prot: AnnData(x, obs=pd.DataFrame(index=names),
                                                                     var=mdata[prot].var.copy())})  # fmt: skip
    vi.obs["batch"] = pd.Categorical(mdata.obs.loc[names, "batch"].astype(str))
    totalvi, _ = totalvi_model(vi, seed, prot, "batch")
    latent = totalvi.get_latent_representation()
    in_pairs = paired[keep]
    accuracy["rna_only:totalvi"] = _transfer_accuracy(
        latent[in_pairs], truth[keep][in_pairs], latent[~in_pairs], truth[keep][~in_pairs], label)  # fmt: skip
    return {"accuracy": accuracy, "n_paired": int(paired.sum()), "n_rna_only": int(rna_only.sum()),
            "n_protein_only": int(prot_only.sum())}  # fmt: skip


def _transfer_accuracy(x_ref, y_ref, x_query, y_query, label) -> float:
    ref, qry = AnnData(obs=pd.DataFrame({label: y_ref})), AnnData(obs=pd.DataFrame({label: y_query}))
    ref.obsm["x"], qry.obsm["x"] = np.asarray(x_ref), np.asarray(x_query)
    tl.transfer_labels(ref, qry, label, use_rep="x")
    return round(float((qry.obs["transferred_labels"].astype(str).to_numpy() == y_query).mean()), 3)


def _round(seconds: dict) -> dict:
    return {k: round(v, 1) for k, v in seconds.items()}


TASKS = {"integration": integration, "imputation": imputation, "transfer": transfer, "unpaired": unpaired}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["sim", "mosaic"], default="mosaic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", default="integration,imputation,transfer,unpaired")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "downstream.jsonl"))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    for task in args.tasks.split(","):
        if task == "unpaired" and args.data != "mosaic":
            continue
        start = time.perf_counter()
        record = {
            "task": task,
            "data": args.data,
            "seed": args.seed,
            "batch_size": CITESEQ.batch_size,
            "n_layers_shared": CITESEQ.n_layers_shared,
            "n_layers_estimator": CITESEQ.n_layers_estimator,
            "activation": CITESEQ.activation,
            "n_protein_pcs": CITESEQ.n_protein_pcs,
            **CODE_RULES,
            **TASKS[task](args.data, args.seed),
        }
        record |= {"seconds": round(time.perf_counter() - start, 1), "machine": platform.processor() or
                   platform.machine(), "threads": torch.get_num_threads(), "versions": versions()}  # fmt: skip
        with open(args.out, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        print(json.dumps(record))  # noqa: T201


if __name__ == "__main__":
    main()
