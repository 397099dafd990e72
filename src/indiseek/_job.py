"""The whole CITE-seq job behind ``indiseek run``: train, measure, draw, report."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import matplotlib.pyplot as plt

from . import pl, tl
from ._checks import check_choice, check_int, check_real, per_modality
from ._keys import INPUTS_KEY, SIMULATION_KEY, diagnostics_key, embedding_key, fits_key, theta_key, wnn_keys
from .defaults import CITESEQ
from .model import IndiSeek
from .model._data import paired_mudata
from .module import METHODS

logger = logging.getLogger(__name__)


def _timed(times: dict[str, float], name: str, fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    times[name] = round(time.perf_counter() - start, 2)
    return out


def train_method(mdata, method: str, lambda_: float | dict[str, float] | str, train_kwargs: dict) -> IndiSeek:
    """Train one method on registered ``mdata`` and write its embeddings into ``mdata.obsm``."""
    model = IndiSeek(mdata, method=method, lambda_=lambda_)
    model.train(**train_kwargs)
    model.write_embeddings()
    return model


def diagnose(mdata, model: IndiSeek) -> dict:
    """Label-free independence and completeness of a method's features (:func:`indiseek.tl.diagnostics`)."""
    input_keys = {m: INPUTS_KEY.format(modality=m) for m in ("rna", "protein")}
    for m, key in input_keys.items():
        mdata.obsm[key] = model.get_prepared_inputs(mdata, modality=m)
    key = diagnostics_key(model.method)
    tl.diagnostics(mdata, method=model.method, input_keys=input_keys, key_added=key)
    return {m: v for m, v in mdata.uns[key].items() if m != "params"}


def measure(
    mdata, method: str, label_key: str, level1_key: str | None, figures: Path | None, fits: bool = False
) -> dict:
    """Theta scores, their rank correlations (WNN weights, ground truth) and cluster metrics of one method.

    Needs ``mdata.obs["wnn_rna_weight"]`` (:func:`indiseek.tl.wnn_weights`) and the method's embeddings in
    ``.obsm``; with ``fits``, theta averages over the fits of :meth:`~indiseek.IndiSeek.write_specific_fits`.
    Figures go to ``figures/<method>_*.png`` when ``figures`` is given.
    """
    result: dict = {"method": method}
    times: dict[str, float] = {}
    result["seconds"] = times
    result.update(
        _timed(times, "cluster_metrics", tl.cluster_metrics, mdata, embedding_key(method), label_key=label_key)
    )
    if method == "clip":  # no specific features: no theta
        return result
    theta = theta_key(method)
    keys = {f"{m}_key": fits_key(method, m) for m in ("rna", "protein")} if fits else {}
    _timed(times, "theta", tl.theta_scores, mdata, label_key=label_key, method=method, key_added=theta, **keys)
    rho, table = tl.rank_correlation(mdata, score_key=theta, reference_key=wnn_keys()[0], groupby=label_key)
    result["spearman_theta_vs_wnn"] = rho
    truth = mdata.uns.get(SIMULATION_KEY, {}).get("rna_specificity")
    truth_table = None
    if truth is not None:
        result["spearman_theta_vs_truth"], truth_table = tl.rank_correlation(
            mdata, score_key=theta, groupby=label_key, reference=dict(truth)
        )
    if figures is not None:
        color_by = level1_key if level1_key in mdata.obs else None
        pl.theta_ranking(mdata, groupby=label_key, color_by=color_by, theta_key=theta,
                         save=figures / f"{method}_theta_ranking.png")  # fmt: skip
        pl.rank_scatter(table, rho=rho, save=figures / f"{method}_rank_vs_wnn.png")
        if truth_table is not None:
            pl.rank_scatter(truth_table, rho=result["spearman_theta_vs_truth"], reference_label="RNA specificity",
                            save=figures / f"{method}_rank_vs_truth.png")  # fmt: skip
        colors = [k for k in (level1_key, label_key) if k and k in mdata.obs]
        _timed(times, "umap", pl.embeddings, mdata, method=method, color=colors, save=figures / f"{method}_umaps.png")
    plt.close("all")
    return result


def run_job(
    mdata,
    out: Path,
    method: str = "indiseek",
    lambda_: float | dict[str, float] | str = CITESEQ.lambda_,
    compare: bool = False,
    label_key: str = "celltype.l2",
    level1_key: str | None = "celltype.l1",
    modalities: tuple[str, str] = ("rna", "prot"),
    theta_fits: int = 5,
    **train_kwargs,
) -> dict:
    """Train ``method`` (and with ``compare`` the other methods) on registered ``mdata``, measure, write files.

    Writes ``out/model/`` (the main method's model), ``out/result.h5mu`` (input, embeddings, theta, WNN
    weights), ``out/figures/*.png`` and returns the report (also written to ``out/report.json`` by the CLI).
    Measurements need level-2 labels in ``mdata.obs[label_key]``; without them only training is done. They are
    made on the cells with both modalities (``modalities``: the RNA and protein modalities); cells with one get
    their embeddings and NaN scores. With
    ``lambda_="auto"`` each method with a specific stage chooses its lambda without labels
    (:meth:`~indiseek.IndiSeek.sweep_lambda`); the report gives the curve, the choice and its reason (the sweep's
    seconds are ``train_seconds["sweep"]``), and ``figures/<method>_lambda_tradeoff.png`` draws them. With
    ``theta_fits`` > 1 each method with a specific stage fits it ``theta_fits - 1`` more times
    (:meth:`~indiseek.IndiSeek.write_specific_fits`, seconds in ``train_seconds["fits"]``) and theta averages each
    cell's same-label counts over the fits. ``method``, ``lambda_``, ``theta_fits`` and ``out`` are checked before
    anything is computed or written.
    """
    check_choice(method, "method", METHODS)
    check_int(theta_fits, "theta_fits", 1)
    if lambda_ != "auto":
        per_modality(lambda_, "lambda_", check=lambda value, name: check_real(value, name, minimum=0))
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory: choose another output directory.")
    out.mkdir(parents=True, exist_ok=True)
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    methods = [method] + ([m for m in METHODS if m != method] if compare else [])
    settings = {k: v for k, v in train_kwargs.items() if k in ("max_epochs", "lr", "batch_size", "seed")}
    report: dict = {"n_cells": int(mdata.n_obs), "lambda": lambda_, "main_method": method, "train": settings,
                    "theta_fits": theta_fits, "methods": {}}  # fmt: skip
    rna_mod, protein_mod = modalities
    paired = mdata.obs_names.isin(mdata[rna_mod].obs_names) & mdata.obs_names.isin(mdata[protein_mod].obs_names)
    measured = mdata if paired.all() else paired_mudata(mdata, rna_mod, protein_mod, paired)
    if measured is not mdata:
        report["n_cells_measured"] = int(measured.n_obs)
        logger.info("Measuring on the %d of %d cells with both modalities.", measured.n_obs, mdata.n_obs)
    labelled = label_key in mdata.obs
    if labelled:
        times: dict[str, float] = {}
        _timed(times, "wnn_weights", tl.wnn_weights, measured, rna_mod=rna_mod, protein_mod=protein_mod)
        report["seconds"] = times
    else:
        logger.warning("No %r in mdata.obs: theta scores and metrics are skipped.", label_key)
        report["seconds"] = {}
    for m in methods:
        start = time.perf_counter()
        model = train_method(mdata, m, CITESEQ.lambda_ if m == "clip" else lambda_, train_kwargs)
        fits = theta_fits > 1 and m != "clip"
        if fits:
            fit_kwargs = {k: v for k, v in train_kwargs.items() if k in ("max_epochs", "lr", "batch_size")}
            model.write_specific_fits(theta_fits, seed=train_kwargs.get("seed", 0) + 1, **fit_kwargs,
                                      enable_progress_bar=train_kwargs.get("enable_progress_bar", True))  # fmt: skip
        if measured is not mdata:
            model.write_embeddings(measured)
            if fits:
                rows = mdata.obs_names.get_indexer(measured.obs_names)
                for key in (fits_key(m, "rna"), fits_key(m, "protein")):
                    measured.obsm[key] = mdata.obsm[key][rows]
        entry = {"train_seconds": {k: round(v, 2) for k, v in model.train_times_.items()},
                 "epochs": model.epochs_trained}  # fmt: skip
        if model.lambda_choice_ is not None:
            curve = tl.lambda_tradeoff(model.lambda_sweep_)
            entry["lambda_choice"] = {**model.lambda_choice_, "curve": curve.reset_index().to_dict("list")}
            pl.lambda_tradeoff(model, title=m, save=figures / f"{m}_lambda_tradeoff.png")
            plt.close("all")
        if m != "clip":
            entry["embedding_weights"] = {k: round(v, 4) for k, v in model.embedding_weights.items()}
            start_diag = time.perf_counter()
            entry["diagnostics"] = diagnose(measured, model)
            entry["diagnostics_seconds"] = round(time.perf_counter() - start_diag, 2)
        if labelled:
            entry.update(measure(measured, m, label_key, level1_key, figures, fits))
        entry["total_seconds"] = round(time.perf_counter() - start, 2)
        report["methods"][m] = entry
        if m == method:
            model.save(out / "model", overwrite=True)
            for key in (
                "spearman_theta_vs_wnn",
                "spearman_theta_vs_truth",
                "ari",
                "nmi",
                "diagnostics",
                "embedding_weights",
                "lambda_choice",
            ):
                if key in entry:
                    report[key] = entry[key]
    if compare and labelled:
        rows = [
            {"method": m, **{k: v for k, v in e.items() if isinstance(v, float)}} for m, e in report["methods"].items()
        ]
        rho = "spearman_theta_vs_truth" if "spearman_theta_vs_truth" in report else "spearman_theta_vs_wnn"
        pl.method_comparison([r for r in rows if rho in r], metric=rho, save=figures / "comparison_rho.png")
        pl.method_comparison(rows, metric="ari", save=figures / "comparison_ari.png")
        plt.close("all")
    if measured is not mdata:  # the scores of the measured cells, NaN for the others
        new = measured.obs.columns.difference(mdata.obs.columns)
        mdata.obs[new] = measured.obs[new].reindex(mdata.obs_names)
        mdata.uns.update({k: v for k, v in measured.uns.items() if k not in mdata.uns})
    mdata.write_h5mu(out / "result.h5mu")
    return report
