"""Neighbour search at scale: theta scores and WNN weights with exact (scikit-learn) against pynndescent neighbours.

Data: :func:`indiseek.datasets.simulate_citeseq` (seed 0) of ``--n-large`` cells, and a random subset of
``--n-small`` of them. Theta is computed on the no-learning reference inputs (50 principal components of the scaled
highly variable genes; the protein CLR) with the level-2 types as labels; the WNN weights from the counts
(Seurat's standard inputs, as :func:`indiseek.tl.wnn_weights` prepares them, PCA included in the time):
``backend="exact"`` with exact and with pynndescent neighbours, and muon itself (``backend="muon"``) on per-modality
graphs found as ``neighbors="auto"`` says; at the large size muon also runs on exact graphs, which tells muon's own
approximations from those of the graphs.

Every measurement runs in a fresh process on one thread (``OMP``/``OPENBLAS``/``MKL``/``NUMBA_NUM_THREADS=1``), so
that its time and its peak memory (``ru_maxrss``, which starts at the parent's small footprint) are its own. Each
process first compiles pynndescent's numba kernels on a small set, and the muon runs call muon once on a small
subset, so that one-off compilation is not in the times; both costs are measured and reported on their own (muon
still compiles a kernel on every call, which its small-call time shows). muon on the large set is stopped after
``--muon-timeout`` seconds.

Neighbour agreement compares the neighbour lists themselves (``indiseek.tl._neighbors.knn_indices``, the search
both tools call; it has no public name). Writes JSON.

Usage: ``python benchmarks/bench_neighbors.py [--n-small 10000] [--n-large 100000] [--muon-timeout 600]
[--out benchmarks/results/bench_neighbors.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
CROSSOVER_SIZES = (2500, 5000, 10000, 20000, 40000)


def peak_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports ``ru_maxrss`` in kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def warm_pynndescent() -> float:
    """Seconds of a first pynndescent search on 1,000 points (mostly numba compilation)."""
    from indiseek.tl._neighbors import knn_indices

    start = time.perf_counter()
    knn_indices(np.random.default_rng(0).normal(size=(1000, 50)), 10, "pynndescent")
    return time.perf_counter() - start


# ---------------------------------------------------------------- workers (each in its own process)


def work_prepare(job: dict) -> dict:
    """Simulates the data, writes the counts (.h5mu) and the reference inputs (.npz) of both sizes."""
    import indiseek

    folder, n_large, n_small = Path(job["folder"]), job["n_large"], job["n_small"]
    start = time.perf_counter()
    mdata = indiseek.datasets.simulate_citeseq(n_cells=n_large, seed=0, progress_bar=False)
    out = {"simulate_seconds": time.perf_counter() - start}
    out["n_genes"], out["n_proteins"] = int(mdata["rna"].n_vars), int(mdata["prot"].n_vars)
    subset = np.sort(np.random.default_rng(0).choice(n_large, n_small, replace=False))
    for size, data in ((n_large, mdata), (n_small, mdata[subset].copy())):
        data.write(folder / f"sim{size}.h5mu")
        start = time.perf_counter()
        rna = indiseek.pp.standard_rna_pcs(data["rna"], n_top_genes=2000, n_pcs=50)
        protein = indiseek.pp.clr(data["prot"].X.toarray() if hasattr(data["prot"].X, "toarray") else data["prot"].X)
        out[f"reference_inputs_seconds_{size}"] = time.perf_counter() - start
        labels = data.obs["celltype.l2"].to_numpy(dtype=str)
        np.savez(folder / f"ref{size}.npz", rna=rna, protein=protein, labels=labels)
        truth = data.obs.groupby("celltype.l2", observed=True)["rna_specificity"].first()
        out[f"truth_{size}"] = {str(k): float(v) for k, v in truth.items()}
    return out


def work_compile(job: dict) -> dict:
    first = warm_pynndescent()
    return {"first_call_seconds": first, "second_call_seconds": warm_pynndescent()}


def work_crossover(job: dict) -> dict:
    from indiseek.tl._neighbors import knn_indices

    warm_pynndescent()
    x = np.load(job["reference"])["rna"]
    rng = np.random.default_rng(0)
    rows = []
    for n in job["sizes"]:
        sub = x[rng.choice(len(x), n, replace=False)]
        row = {"n_cells": n}
        for method in ("exact", "pynndescent"):
            start = time.perf_counter()
            knn_indices(sub, 10, method)
            row[f"{method}_seconds"] = time.perf_counter() - start
        rows.append(row)
    return {"rows": rows}


def work_agreement(job: dict) -> dict:
    """Recall@k and the fraction of identical neighbour sets of pynndescent against the exact search."""
    from indiseek.tl._neighbors import knn_indices

    warm_pynndescent()
    data = np.load(job["reference"])
    out = {}
    for modality in ("rna", "protein"):
        x = data[modality]
        for k in (10, 19):  # theta's default, and WNN's (20 counting the cell itself)
            times, found = {}, {}
            for method in ("exact", "pynndescent"):
                start = time.perf_counter()
                found[method] = knn_indices(x, k, method)
                times[method] = time.perf_counter() - start
            exact, approx = np.sort(found["exact"], axis=1), np.sort(found["pynndescent"], axis=1)
            hits = sum((approx[:, [j]] == exact).any(axis=1) for j in range(k))
            out[f"{modality}_k{k}"] = {
                "dims": int(x.shape[1]),
                "recall": float(hits.mean() / k),
                "identical_sets": float((approx == exact).all(axis=1).mean()),
                "exact_seconds": times["exact"],
                "pynndescent_seconds": times["pynndescent"],
            }
    return out


def work_theta(job: dict) -> dict:
    import anndata as ad

    import indiseek

    warm_pynndescent()
    data = np.load(job["reference"], allow_pickle=False)
    adata = ad.AnnData(
        obs=pd.DataFrame({"celltype.l2": data["labels"]}, index=[str(i) for i in range(len(data["labels"]))]),
        obsm={"X_ref_rna": data["rna"], "X_ref_protein": data["protein"]},
    )
    before = peak_mb()
    start = time.perf_counter()
    indiseek.tl.theta_scores(
        adata, rna_key="X_ref_rna", protein_key="X_ref_protein", neighbors=job["neighbors"], random_state=0
    )
    seconds = time.perf_counter() - start
    np.save(job["save"], adata.obs["theta"].to_numpy())
    return {
        "seconds": seconds,
        "neighbors_used": adata.uns["theta"]["params"]["neighbors"],
        "peak_rss_mb_before": before,
        "peak_rss_mb": peak_mb(),
    }


def work_wnn(job: dict) -> dict:
    import mudata as md

    import indiseek

    out = {"pynndescent_warmup_seconds": warm_pynndescent()}
    mdata = md.read_h5mu(job["data"])
    if job["backend"] == "muon":  # muon compiles its kernels on the first call, and some again on every call
        small = mdata[np.random.default_rng(1).choice(mdata.n_obs, 500, replace=False)].copy()
        for name in ("muon_warmup_seconds", "muon_small_call_seconds"):
            start = time.perf_counter()
            indiseek.tl.wnn_weights(small, backend="muon", key_added="warmup")
            out[name] = time.perf_counter() - start
    before = peak_mb()
    print("timed call starts", flush=True)  # the parent's timeout counts from here
    start = time.perf_counter()
    indiseek.tl.wnn_weights(mdata, backend=job["backend"], neighbors=job["neighbors"], random_state=0)
    out["seconds"] = time.perf_counter() - start
    out["neighbors_used"] = mdata.uns["wnn"]["params"]["neighbors"]
    out["peak_rss_mb_before"], out["peak_rss_mb"] = before, peak_mb()
    np.save(job["save"], mdata.obs["wnn_rna_weight"].to_numpy())
    return out


WORKERS = {
    f.__name__[5:]: f for f in (work_prepare, work_compile, work_crossover, work_agreement, work_theta, work_wnn)
}


def run_worker(job: dict, timeout: float | None = None) -> dict:
    """Runs one job in a fresh single-threaded process; its result, or why there is none."""
    env = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, "1")}
    cmd = [sys.executable, __file__, "--worker", json.dumps(job)]
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
        timed_from = None
        while proc.poll() is None:
            time.sleep(2)
            log.seek(0)
            if timed_from is None and "timed call starts" in log.read():
                timed_from = time.perf_counter()
            if timeout is not None and timed_from is not None and time.perf_counter() - timed_from > timeout:
                proc.kill()
                proc.wait()
                return {"status": "not finished", "reason": f"stopped after {timeout:.0f} s of the timed call"}
        log.seek(0)
        text = log.read()
    lines = [line for line in text.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"worker {job['task']} failed ({proc.returncode}):\n{text[-3000:]}", flush=True)  # noqa: T201
        errors = [line for line in text.splitlines() if "Error" in line or "Killed" in line]
        return {"status": "failed", "returncode": proc.returncode, "error": errors[-1] if errors else ""}
    result = json.loads(lines[-1])
    result["process_seconds"] = time.perf_counter() - start
    print(job["task"], job.get("n_cells", ""), {k: v for k, v in result.items() if "seconds" in k}, flush=True)  # noqa: T201
    return result


# ---------------------------------------------------------------- comparisons


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(spearmanr(a[ok], b[ok]).statistic)


def compare(a: np.ndarray, b: np.ndarray, labels: np.ndarray, truth: pd.Series) -> dict:
    """Agreement of two per-cell scores: per cell, and of the per-type means (and each against the truth)."""
    means = pd.DataFrame({"a": a, "b": b, "label": labels}).groupby("label")[["a", "b"]].mean()
    truth = truth.loc[means.index].to_numpy()
    return {
        "spearman_cells": spearman(a, b),
        "identical_cells": float(np.mean(a == b)),  # theta takes few values; WNN weights almost never tie
        "mean_abs_difference": float(np.nanmean(np.abs(a - b))),
        "spearman_type_means": spearman(means["a"].to_numpy(), means["b"].to_numpy()),
        "spearman_type_means_vs_truth": [spearman(means[c].to_numpy(), truth) for c in ("a", "b")],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-small", type=int, default=10000)
    parser.add_argument("--n-large", type=int, default=100000)
    parser.add_argument("--muon-timeout", type=float, default=600)
    parser.add_argument("--out", default="benchmarks/results/bench_neighbors.json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        job = json.loads(args.worker)
        load = os.getloadavg()[0]
        print(json.dumps({**WORKERS[job["task"]](job), "load_average_at_start": load}))  # noqa: T201
        return

    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp(prefix="bench_neighbors_"))
    prepared = run_worker({"task": "prepare", "folder": str(folder), "n_large": args.n_large, "n_small": args.n_small})
    sizes = (args.n_small, args.n_large)
    record = {
        "benchmark": "theta scores and WNN weights, exact (scikit-learn) against pynndescent neighbour search",
        "data": (
            f"simulate_citeseq(n_cells={args.n_large}, seed=0) and a random subset of {args.n_small} of its cells; "
            "theta on the reference inputs (50 RNA principal components, protein CLR) with celltype.l2 as labels; "
            "WNN weights from the counts (Seurat's standard inputs, PCA included in the time)"
        ),
        "n_genes": int(prepared["n_genes"]),
        "n_proteins": int(prepared["n_proteins"]),
        "threads": 1,
        "machine": {
            "platform": platform.platform(),
            "machine": platform.machine(),
            "processor": platform.processor(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "cpus_available": len(os.sched_getaffinity(0)),
            "load_average_at_start": list(os.getloadavg()),
            "memory_gb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3,
        },
        "versions": {p: version(p) for p in ("indiseek", "pynndescent", "scikit-learn", "muon", "scanpy", "numba")},
        "parent_peak_rss_mb": peak_mb(),  # a worker's ru_maxrss starts at its parent's resident memory (fork)
        "simulate_seconds": prepared["simulate_seconds"],
        "reference_inputs_seconds": {str(n): prepared[f"reference_inputs_seconds_{n}"] for n in sizes},
    }
    record["pynndescent_compile"] = run_worker({"task": "compile"})
    record["crossover_k10_rna50"] = run_worker(
        {
            "task": "crossover",
            "reference": str(folder / f"ref{args.n_large}.npz"),
            "sizes": [s for s in CROSSOVER_SIZES if s <= args.n_large],
        }
    )["rows"]
    record["neighbour_agreement"] = {
        str(n): run_worker({"task": "agreement", "n_cells": n, "reference": str(folder / f"ref{n}.npz")}) for n in sizes
    }

    record["wnn_runs_are"] = {
        "exact": "backend='exact', neighbors='exact'",
        "pynndescent": "backend='exact', neighbors='pynndescent'",
        "muon": "backend='muon' (muon.pp.neighbors itself) on per-modality graphs found with neighbors='auto'",
        "muon_exact_graphs": "backend='muon', neighbors='exact' (large size only)",
    }
    tasks = {
        "theta": {"exact": {"neighbors": "exact"}, "pynndescent": {"neighbors": "pynndescent"}},
        "wnn": {
            "exact": {"backend": "exact", "neighbors": "exact"},
            "pynndescent": {"backend": "exact", "neighbors": "pynndescent"},
            "muon": {"backend": "muon", "neighbors": "auto"},
            # at the large size only (at the small one "auto" is exact): muon's own drift from its exact formulas
            "muon_exact_graphs": {"backend": "muon", "neighbors": "exact"},
        },
    }
    pairs = {
        "theta": [("pynndescent", "exact")],
        "wnn": [
            ("pynndescent", "exact"),
            ("pynndescent", "muon"),
            ("exact", "muon"),
            ("exact", "muon_exact_graphs"),
            ("muon", "muon_exact_graphs"),
        ],
    }
    for task, runs in tasks.items():
        record[task] = {}
        for n in sizes:
            labels, truth = np.load(folder / f"ref{n}.npz")["labels"], pd.Series(prepared[f"truth_{n}"])
            results, values = {}, {}
            for name, options in runs.items():
                if name == "muon_exact_graphs" and n != args.n_large:
                    continue
                save = str(folder / f"{task}_{n}_{name}.npy")
                job = {"task": task, "n_cells": n, "reference": str(folder / f"ref{n}.npz"), "save": save, **options}
                job["data"] = str(folder / f"sim{n}.h5mu")
                timeout = args.muon_timeout if name.startswith("muon") and n == args.n_large else None
                results[name] = run_worker(job, timeout)
                if "seconds" in results[name]:
                    values[name] = np.load(save)
            record[task][str(n)] = {
                "runs": results,
                "agreement": {
                    f"{a}_vs_{b}": compare(values[a], values[b], labels, truth)
                    for a, b in pairs[task]
                    if a in values and b in values
                },
            }
            with open(args.out, "w") as fh:  # a partial record, in case a later run fails
                json.dump(record, fh, indent=1)
    record["total_seconds"] = time.perf_counter() - started
    shutil.rmtree(folder)
    with open(args.out, "w") as fh:
        json.dump(record, fh, indent=1)
    print(json.dumps(record, indent=1))  # noqa: T201


if __name__ == "__main__":
    main()
