"""Measures shared by the biology benchmarks: kNN accuracy and k-means ARI of labels, the cross-modal leak, the
no-learning reference inputs, and totalVI's latent space; and the simulator options they share."""

from __future__ import annotations

import argparse
import inspect
import time
from importlib.metadata import version

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

import indiseek
from indiseek.defaults import CITESEQ

#: ``simulate_citeseq``'s default number of level-2 types: records of other values say so.
DEFAULT_N_TYPES = inspect.signature(indiseek.datasets.simulate_citeseq).parameters["n_types"].default


def add_simulator_arguments(parser: argparse.ArgumentParser) -> None:
    """``--n-types`` and ``--crossed-types`` (``simulate_citeseq(crossed_types=True)``; a multiple of 5 types)."""
    parser.add_argument("--n-types", type=int, default=DEFAULT_N_TYPES)
    parser.add_argument("--crossed-types", action="store_true")


def add_per_modality_arguments(parser: argparse.ArgumentParser) -> None:
    """``--lambda`` and ``--specific-input-dropout``: one value for both modalities, or the RNA one and the protein
    one (``IndiSeek``'s per-modality form).
    """
    parser.add_argument(
        "--lambda", dest="lambda_", type=float, nargs="+", default=[CITESEQ.lambda_], metavar="LAMBDA",
        help="one capture weight for both specific stages, or the RNA one and the protein one",
    )  # fmt: skip
    parser.add_argument(
        "--specific-input-dropout", type=float, nargs="+", default=[CITESEQ.specific_input_dropout],
        metavar="P", help="one probability for both specific encoders, or the RNA one and the protein one",
    )  # fmt: skip


def per_modality_options(args: argparse.Namespace) -> tuple[float | dict[str, float], float | dict[str, float]]:
    """``--lambda`` and ``--specific-input-dropout`` as ``IndiSeek`` takes them."""
    options = []
    for flag, values in (("--lambda", args.lambda_), ("--specific-input-dropout", args.specific_input_dropout)):
        if len(values) > 2:
            raise SystemExit(f"{flag} takes one value or two (RNA, protein), got {len(values)}.")
        options.append(values[0] if len(values) == 1 else {"rna": values[0], "protein": values[1]})
    return options[0], options[1]


def simulate(args: argparse.Namespace, seed: int, n_cells: int = 5000):
    """``simulate_citeseq`` defaults with the options of :func:`add_simulator_arguments`."""
    return indiseek.datasets.simulate_citeseq(
        n_cells=n_cells, n_types=args.n_types, seed=seed, crossed_types=args.crossed_types, progress_bar=False
    )


def simulator_fields(args: argparse.Namespace) -> dict:
    """The simulator options for a record, when they differ from the defaults."""
    if args.crossed_types or args.n_types != DEFAULT_N_TYPES:
        return {"n_types": args.n_types, "crossed_types": args.crossed_types}
    return {}


#: The libraries whose versions move the figures: a fresh install can resolve newer ones, and with them the random
#: streams and numerics of training and of the measures.
LIBRARIES = ("indiseek", "torch", "scvi-tools", "lightning", "numpy", "scipy", "scikit-learn", "scanpy", "muon")


def processor() -> str:
    """The processor's name, family and model: another generation of the same make runs other vector kernels in the
    linear algebra, whose rounding the training carries into every figure."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return f"{fields.get('model name', '?')} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"


# Choices of the code that no setting names, written into every record so that records before and after a change
# can be told apart:
# - embedding_weights_rule: how X_<method> weighs its blocks: each specific block by what it adds to its shared block,
#   the held-out R^2 of the modality's inputs from (Z_i, C_i) minus that from C_i (records without it: by what it
#   explains alone);
# - specific_shared_input: what the specific stage receives as shared features: the shared encoders' outputs scaled to
#   norm sqrt(n_shared) (records without it: the outputs as they are).
CODE_RULES = {"embedding_weights_rule": "gain", "specific_shared_input": "directions"}


def model_settings(model) -> dict:
    """The model's settings that the benchmarks' records name (depths, lambda, CLUB estimator, input preparation)."""
    keys = (
        "lambda_",
        "n_pcs",
        "n_protein_pcs",
        "input_dropout",
        "specific_input_dropout",
        "n_layers",
        "n_layers_shared",
        "n_layers_estimator",
        "club_estimator",
        "activation",
    )
    return {k: model.init_params_["non_kwargs"][k] for k in keys}


def versions() -> dict[str, str]:
    """The versions of :data:`LIBRARIES` in this environment and the processor, for a record."""
    return {name: version(name) for name in LIBRARIES} | {"cpu": processor()}


def knn_accuracy(x: np.ndarray, labels: np.ndarray) -> float:
    """5-fold stratified kNN (k = 15) accuracy of ``labels`` from ``x``."""
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    return float(cross_val_score(KNeighborsClassifier(15), x, labels, cv=folds).mean())


def leaks(mdata, seed: int, method: str = "indiseek") -> dict[str, dict]:
    """:func:`indiseek.tl.independence` of ``Z_i`` against ``C_{3-i}`` (held-out R^2 by kNN and by ridge regression,
    p-value), keyed by modality i."""
    pairs = (("rna", "protein"), ("protein", "rna"))
    return {
        i: indiseek.tl.independence(mdata, f"X_{method}_specific_{i}", f"X_{method}_shared_{o}", seed=seed)
        for i, o in pairs
    }


def reference_inputs(rna, protein_counts, n_top_genes: int = 2000) -> dict[str, np.ndarray]:
    """No learning: 50 principal components of scaled highly variable genes, and the protein CLR."""
    x = protein_counts.toarray() if hasattr(protein_counts, "toarray") else protein_counts
    return {"rna": indiseek.pp.standard_rna_pcs(rna, n_top_genes=n_top_genes), "protein": indiseek.pp.clr(x)}


def knn_fields(knn: dict[str, float], knn_ref: dict[str, float]) -> dict[str, dict[str, float]]:
    """The JSON fields of kNN accuracies, the reference's and their ratios (on the keys both have), rounded."""
    return {
        "knn": {k: round(v, 3) for k, v in knn.items()},
        "knn_reference": {k: round(v, 3) for k, v in knn_ref.items()},
        "knn_ratio": {k: round(knn[k] / knn_ref[k], 3) for k in knn if k in knn_ref},
    }


def equal_blocks(obsm, method: str = "indiseek") -> np.ndarray:
    """The four unit-scaled blocks side by side, without the weights of ``X_<method>`` (the concatenation of 0.1)."""
    return np.hstack([obsm[f"X_{method}_{k}_{m}"] for k in ("shared", "specific") for m in ("rna", "protein")])


def kmeans_ari(x: np.ndarray, labels: np.ndarray) -> float:
    """ARI of k-means (k = number of labels, 3 starts) against the labels."""
    pred = KMeans(len(np.unique(labels)), n_init=3, random_state=0).fit_predict(x)
    return float(adjusted_rand_score(labels, pred))


def totalvi_model(mdata, seed: int, protein: str = "prot", batch_key: str | None = None, accelerator: str = "cpu"):
    """TOTALVI with its defaults on raw counts, trained; and its training seconds.

    Sparse protein counts of ``mdata`` are made dense in place (TOTALVI needs them so). ``batch_key``, a column of
    ``mdata.obs``, is given to TOTALVI as its batch covariate.
    """
    import scvi

    scvi.settings.seed = seed
    x = mdata[protein].X
    if hasattr(x, "toarray"):  # TOTALVI's protein background prior needs dense counts
        mdata[protein].X = x.toarray()
    modalities = {"rna_layer": "rna", "protein_layer": protein}
    if batch_key is not None:  # TOTALVI reads the batch from a modality's obs
        mdata["rna"].obs[batch_key] = mdata.obs[batch_key].to_numpy()
        modalities["batch_key"] = "rna"
    scvi.model.TOTALVI.setup_mudata(mdata, modalities=modalities, batch_key=batch_key)
    model = scvi.model.TOTALVI(mdata)
    start = time.perf_counter()
    model.train(accelerator=accelerator, enable_progress_bar=False)
    return model, time.perf_counter() - start


def totalvi_latent(
    mdata, seed: int, accelerator: str = "cpu", protein: str = "prot", batch_key: str | None = None
) -> tuple[np.ndarray, float, int]:
    """:func:`totalvi_model`'s latent space, training seconds and epochs run."""
    model, train_s = totalvi_model(mdata, seed, protein, batch_key, accelerator)
    return model.get_latent_representation(), train_s, len(model.history["elbo_train"])
