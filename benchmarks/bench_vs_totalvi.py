"""The whole default ``indiseek run`` against scvi-tools' ``TOTALVI(...).train()`` with its defaults, on the same cells.

Simulates ``--n-cells`` cells (default 30,000, seed 0, the simulator's defaults: 2,000 genes, 25 proteins) once and
writes them to an ``.h5mu`` file; then, one after the other, each in a process of its own (so that each peak
resident memory is its own), with the same threads (``--threads``, default 2, for torch and the numerical
libraries; OpenMP's passive wait policy, so that idle threads sleep):

- ``indiseek run --input data.h5mu --theta-fits K`` (``--theta-fits``, default 5 as in ``indiseek run``; 1 gives
  theta from the model's own fit) through the command's own entry point (:func:`indiseek.cli.main`) with its
  defaults: read, register, WNN weights, both training stages (early stopping), the K - 1 further fits of the specific
  stages, diagnostics, theta, metrics, UMAPs, figures, model and result files;
- ``TOTALVI.setup_mudata`` then ``TOTALVI(mdata).train()`` with every default (``max_epochs`` from scvi-tools'
  heuristic, ``lr=4e-3``, early stopping); its wall time is that of ``train()`` alone, the file read and the
  registration are recorded apart. A training that fails (e.g. NaN at the default learning rate) is recorded as it
  failed, and then run again at ``lr=1e-3`` as a second record that says so.

Writes JSON with the machine's description and the ratio of the wall times (``indiseek run`` over ``train()``;
with K > 1 also the run less the further fits' training, ``train_seconds["fits"]``, over ``train()``), after each
part, so that a run stopped during totalVI's training keeps the IndiSeek record and when totalVI began.

Usage: ``python benchmarks/bench_vs_totalvi.py [--n-cells 30000] [--threads 2] [--theta-fits 5]
[--out benchmarks/results/bench_vs_totalvi.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _biology import versions

from indiseek.defaults import CITESEQ

_INDISEEK = """
import json, resource, sys, time, torch
torch.set_num_threads({threads})
from indiseek.cli import main
start = time.perf_counter()
rc = main(["run", "--input", {data!r}, "--out", {out!r}, "--theta-fits", "{theta_fits}", "--quiet"])
wall = time.perf_counter() - start
report = json.load(open({out!r} + "/report.json"))
print("RESULT", json.dumps({{"wall_seconds": wall, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
      / 2**20, "threads": torch.get_num_threads(), "epochs": report["methods"]["indiseek"]["epochs"],
      "seconds": report["methods"]["indiseek"]["train_seconds"], "wnn_seconds": report["seconds"],
      "theta_fits": report["theta_fits"],
      "spearman_theta_vs_truth": report.get("spearman_theta_vs_truth")}}))
"""

_TOTALVI = """
import json, resource, time, torch
torch.set_num_threads({threads})
import mudata as md, numpy as np, scvi
start = time.perf_counter()
mdata = md.read_h5mu({data!r})
scvi.settings.seed = 0
scvi.model.TOTALVI.setup_mudata(mdata, modalities={{"rna_layer": "rna", "protein_layer": "prot"}})
model = scvi.model.TOTALVI(mdata)
setup = time.perf_counter() - start
record = {{"lr": {lr!r}, "threads": torch.get_num_threads(), "read_and_setup_seconds": setup}}
kwargs = {{}} if {lr!r} is None else {{"lr": {lr!r}}}
train_start = time.perf_counter()
try:
    model.train(enable_progress_bar=False, **kwargs)
except Exception as err:
    record["error"] = f"{{type(err).__name__}}: {{' '.join(str(err).split())[:400]}}"
record["train_seconds"] = time.perf_counter() - train_start
if "error" not in record:
    history = np.asarray(model.history["elbo_train"], dtype=float).ravel()
    record.update(epochs=len(history), final_elbo_train=float(history[-1]), nan_in_elbo=bool(np.isnan(history).any()))
record["max_epochs_default"] = int(scvi.model._utils.get_max_epochs_heuristic(mdata.n_obs))
record["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
print("RESULT", json.dumps(record))
"""


def _child(code: str, env: dict) -> dict:
    """Run ``code`` in a fresh interpreter; its ``RESULT`` line, with the whole process's wall time."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if not lines:
        return {"error": f"exit status {proc.returncode}: {proc.stderr[-2000:]}", "process_seconds": wall}
    return {**json.loads(lines[-1][len("RESULT ") :]), "process_seconds": round(wall, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-cells", type=int, default=30_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--theta-fits", type=int, default=5)
    parser.add_argument("--out", default="benchmarks/results/bench_vs_totalvi.json")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_scale import machine

    import indiseek

    threads = str(args.threads)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "OPENBLAS_NUM_THREADS": threads, "NUMBA_NUM_THREADS": threads,
           # idle OpenMP threads sleep: spinning ones slow torch 10-30x when other processes share the cores
           "OMP_WAIT_POLICY": "PASSIVE"}  # fmt: skip
    result = {
        "benchmark": "whole default `indiseek run` against TOTALVI(mdata).train() with its defaults, same cells",
        "command": "python benchmarks/bench_vs_totalvi.py " + " ".join(sys.argv[1:]),
        "n_cells": args.n_cells,
        "data": "indiseek.datasets.simulate_citeseq(n_cells, seed=0): 2,000 genes, 25 proteins, written to .h5mu",
        "indiseek_defaults": CITESEQ.asdict(),
        "versions": versions(),
        "machine": machine(args.threads, "cpu"),
        "environment": {k: v for k, v in env.items() if k.startswith(("OMP_", "MKL_", "OPENBLAS_", "NUMBA_"))},
    }

    def write(**fields) -> None:  # after each part, so that a run stopped in totalVI keeps IndiSeek's record
        result.update(fields)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))

    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "data.h5mu")
        indiseek.datasets.simulate_citeseq(n_cells=args.n_cells, seed=0, progress_bar=False).write_h5mu(data)
        code = _INDISEEK.format(threads=args.threads, theta_fits=args.theta_fits, data=data, out=str(Path(tmp) / "run"))
        run = _child(code, env)
        print("indiseek run:", json.dumps(run), flush=True)  # noqa: T201
        write(indiseek_run=run, totalvi=[], totalvi_started=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        totalvi = [_child(_TOTALVI.format(threads=args.threads, data=data, lr=None), env)]
        print("TOTALVI:", json.dumps(totalvi[0]), flush=True)  # noqa: T201
        write(totalvi=totalvi)
        if "error" in totalvi[0] or totalvi[0].get("nan_in_elbo"):
            retry = _child(_TOTALVI.format(threads=args.threads, data=data, lr=1e-3), env)
            retry["note"] = "second run at lr=1e-3 because the default lr=4e-3 failed or gave NaN"
            totalvi.append(retry)
            print("TOTALVI lr=1e-3:", json.dumps(retry), flush=True)  # noqa: T201
    walls = {}
    if "wall_seconds" in run:
        walls["indiseek run"] = run["wall_seconds"]
        if "fits" in run["seconds"]:
            walls["indiseek run less the further fits"] = run["wall_seconds"] - run["seconds"]["fits"]
    ratios = {
        f"{name}, lr={'default (4e-3)' if t['lr'] is None else t['lr']}": round(wall / t["train_seconds"], 3)
        for name, wall in walls.items()
        for t in totalvi
        if "train_seconds" in t and "error" not in t
    }
    write(totalvi=totalvi, indiseek_run_over_totalvi_train=ratios)
    print(json.dumps(ratios))  # noqa: T201


if __name__ == "__main__":
    main()
