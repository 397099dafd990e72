"""Time and memory of every step of an IndiSeek analysis against the number of cells, with a linear fit.

For each size (default 10,000, 100,000 and 1,000,000 simulated cells), in a process of its own so that each size's
peak memory is its own: simulate (chunked, sparse RNA counts), register (``setup_mudata``), train ONE epoch of each
stage (``max_epochs=1``, no early stopping; each stage's epoch timed by a callback), embed every cell
(``get_latent_representation``), theta scores (``tl.theta_scores``) and WNN weights (``tl.wnn_weights`` with its
``backend="exact"``) with the neighbour search ``--neighbors`` (default pynndescent at every size, so that one
algorithm is fitted). Each step's seconds and peak resident memory (the kernel's high-water mark, reset before the
step) are recorded; then, per step, a least-squares line of seconds against cells with its R^2 and the exponent of a
power law fitted on the log scale (1 is linear). pynndescent's compilation (numba, once per process) is timed
apart, before the steps. Every library runs on ``--threads`` threads, with OpenMP's passive wait policy. A size
that runs out of time or memory (``--max-rss-gb``, checked every 0.2 s) is recorded as far as it got, with the
step it stopped in.

Usage: ``python benchmarks/bench_scale.py [--sizes 10000,100000,1000000] [--n-genes 1000] [--threads 2]
[--accelerator cpu|gpu] [--neighbors pynndescent] [--max-rss-gb 16] [--timeout 14400] [--malloc-mmap-threshold N]
[--skip theta,wnn] [--append] [--out benchmarks/results/bench_scale.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

_THREAD_VARIABLES = ("OMP_", "MKL_", "OPENBLAS_", "NUMBA_", "MALLOC_")
STEPS = ("simulate", "setup", "inputs", "shared_epoch", "specific_epoch", "embedding", "theta", "wnn")


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> bool:
    """Reset the kernel's high-water mark of resident memory (Linux); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def machine(threads: int, accelerator: str) -> dict:
    """Where the figures were measured."""
    import torch

    with open("/proc/meminfo") as fh:
        total_kb = int(fh.readline().split()[1])
    from _biology import processor

    info = {
        "platform": platform.platform(),
        "cpu": processor(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "torch_threads": threads,
        "total_ram_gb": round(total_kb / 2**20, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "accelerator": accelerator,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


class _Record:
    """The record of one size, written to ``path`` after every step so that a killed run leaves what it did."""

    def __init__(self, path: Path, **fields):
        self.path, self.data = path, {**fields, "seconds": {}, "peak_rss_gb": {}, "completed": False}
        self.lock = threading.Lock()

    def write(self) -> None:
        with self.lock:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=1))
            tmp.replace(self.path)

    def step(self, name: str, fn, *args, **kwargs):
        """Run one step, recording its seconds and the peak resident memory while it ran."""
        self.data["current_step"] = name
        self.write()
        _reset_peak()
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        self.data["seconds"][name] = round(time.perf_counter() - start, 3)
        self.data["peak_rss_gb"][name] = round(_status_kb("VmHWM") / 2**20, 3)
        self.write()
        return out


def _memory_callback(record: _Record):
    """A Lightning callback recording the peak memory of the input preparation and of each stage's epoch."""
    from lightning.pytorch.callbacks import Callback

    class StageMemory(Callback):
        def on_fit_start(self, trainer, plan):
            if plan.stage == "shared":  # train() began with a reset: this is the input preparation's peak
                record.data["peak_rss_gb"]["inputs"] = round(_status_kb("VmHWM") / 2**20, 3)

        def on_train_epoch_start(self, trainer, plan):
            _reset_peak()

        def on_train_epoch_end(self, trainer, plan):
            record.data["peak_rss_gb"][f"{plan.stage}_epoch"] = round(_status_kb("VmHWM") / 2**20, 3)
            _reset_peak()

    return StageMemory()


def _watch_memory(record: _Record, limit_gb: float) -> None:
    """Stop the process when its resident memory passes ``limit_gb``, recording where."""
    while True:
        rss = _status_kb("VmRSS") / 2**20
        if rss > limit_gb:
            record.data["failed"] = (
                f"resident memory {rss:.1f} GB passed the limit of {limit_gb} GB during {record.data['current_step']}"
            )
            record.write()
            os._exit(3)
        time.sleep(0.2)


def _compile_pynndescent() -> None:
    from pynndescent import NNDescent

    NNDescent(np.random.default_rng(0).normal(size=(2000, 50)), n_neighbors=30, random_state=0, n_jobs=1)


def run_size(args: argparse.Namespace) -> None:
    """One size, in this process: every step, recorded in ``args.record``."""
    import torch

    torch.set_num_threads(args.threads)
    from bench_train import EpochTimer

    import indiseek
    from indiseek import IndiSeek
    from indiseek.defaults import CITESEQ

    n = args.child
    record = _Record(Path(args.record), n_cells=n, n_genes=args.n_genes, n_proteins=25, neighbors=args.neighbors)
    record.data["peak_reset_per_step"] = _reset_peak()
    threading.Thread(target=_watch_memory, args=(record, args.max_rss_gb), daemon=True).start()

    skip = set(args.skip.split(",")) if args.skip else set()
    if args.neighbors != "exact" and not {"theta", "wnn"} <= skip:
        # numba compiles pynndescent on its first call in a process: not a cost per cell
        record.step("pynndescent_compile", _compile_pynndescent)
    mdata = record.step(
        "simulate", indiseek.datasets.simulate_citeseq, n_cells=n, n_genes=args.n_genes, seed=0, progress_bar=False
    )
    x = mdata["rna"].X
    record.data["rna_nnz"] = int(x.nnz)
    record.data["rna_counts_gb"] = round((x.data.nbytes + x.indices.nbytes + x.indptr.nbytes) / 2**30, 3)
    record.step("setup", IndiSeek.setup_mudata, mdata)

    model = IndiSeek(mdata)
    timer = EpochTimer()
    record.step(
        "train", model.train, max_epochs=1, early_stopping=False, accelerator=args.accelerator, seed=0,
        callbacks=[_memory_callback(record), timer], enable_progress_bar=False,
    )  # fmt: skip
    # the high-water mark train() ends with is that of the last part, the features' scales on the training cells
    record.data["peak_rss_gb"]["scales"] = record.data["peak_rss_gb"].pop("train")
    for stage in ("shared", "specific"):
        record.data["seconds"][f"{stage}_epoch"] = round(timer.seconds[stage][0], 3)
    record.data["seconds"]["inputs"] = round(model.train_times_["inputs"], 3)
    record.data["train_seconds"] = record.data["seconds"].pop("train")
    record.data["batch_size"] = CITESEQ.batch_size
    record.data["n_layers_shared"] = CITESEQ.n_layers_shared
    record.data["device"] = str(model.device)
    record.write()

    latent = record.step("embedding", model.get_latent_representation)
    record.data["embedding_shape"] = list(latent.shape)
    del latent
    if "theta" not in skip:
        model.write_embeddings()  # theta reads the specific features from .obsm
        record.step("theta", indiseek.tl.theta_scores, mdata, label_key="celltype.l2", neighbors=args.neighbors)
    if "wnn" not in skip:
        record.step("wnn", indiseek.tl.wnn_weights, mdata, backend="exact", neighbors=args.neighbors)
    record.data["skipped"] = sorted(skip)
    if torch.cuda.is_available():
        record.data["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    record.data["current_step"] = None
    record.data["completed"] = True
    record.write()


def fit(records: list[dict]) -> dict:
    """Per step: seconds = intercept + slope * cells (least squares) with R^2, and the exponent of a power law."""
    out = {}
    for step in STEPS:
        points = sorted((r["n_cells"], r["seconds"][step]) for r in records if step in r.get("seconds", {}))
        if len(points) < 2:
            continue
        n, t = np.array(points, dtype=float).T
        slope, intercept = np.polyfit(n, t, 1)
        residual = ((t - (intercept + slope * n)) ** 2).sum()
        total = ((t - t.mean()) ** 2).sum()
        out[step] = {
            "sizes": n.astype(int).tolist(),
            "seconds_per_million_cells": round(slope * 1e6, 2),
            "intercept_seconds": round(intercept, 2),
            "r2": round(1 - residual / total, 4) if total > 0 else None,
            "loglog_exponent": round(float(np.polyfit(np.log(n), np.log(t), 1)[0]), 3) if (t > 0).all() else None,
        }
    return out


def main() -> None:
    from indiseek.defaults import CITESEQ

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--n-genes", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--accelerator", default="cpu", help="Passed to IndiSeek.train: cpu, gpu or auto.")
    parser.add_argument("--neighbors", default="pynndescent", choices=("auto", "exact", "pynndescent"))
    parser.add_argument("--max-rss-gb", type=float, default=16.0, help="Stop a size above this resident memory.")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="Seconds allowed per size.")
    parser.add_argument(
        "--malloc-mmap-threshold", type=int, help="Bytes: glibc's MALLOC_MMAP_THRESHOLD_ in each size's process."
    )
    parser.add_argument("--skip", default="", help="Steps to leave out, among theta,wnn (e.g. on a GPU machine).")
    parser.add_argument("--append", action="store_true", help="Keep the other sizes' records of an existing --out.")
    parser.add_argument("--out", default="benchmarks/results/bench_scale.json")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--record", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        run_size(args)
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    out = Path(args.out)
    records = []
    if args.append and out.exists():
        records = [r for r in json.loads(out.read_text())["records"] if r["n_cells"] not in sizes]
    threads = str(args.threads)
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "OPENBLAS_NUM_THREADS": threads, "NUMBA_NUM_THREADS": threads,
           # idle OpenMP threads sleep: spinning ones slow torch 10-30x when other processes share the cores
           "OMP_WAIT_POLICY": "PASSIVE"}  # fmt: skip
    if args.malloc_mmap_threshold is not None:  # a fixed threshold: freed blocks go back to the system
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.malloc_mmap_threshold)
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            path = Path(tmp) / f"{n}.json"
            command = [sys.executable, __file__, "--child", str(n), "--record", str(path)]
            command += ["--n-genes", str(args.n_genes), "--threads", threads, "--accelerator", args.accelerator]
            command += ["--neighbors", args.neighbors, "--max-rss-gb", str(args.max_rss_gb), "--skip", args.skip]
            start, load = time.perf_counter(), os.getloadavg()[0]
            try:
                proc = subprocess.run(command, env=env, timeout=args.timeout, capture_output=True, text=True)
                code, error = proc.returncode, proc.stderr[-3000:]
            except subprocess.TimeoutExpired:
                code, error = None, None
            record = json.loads(path.read_text()) if path.exists() else {"n_cells": n, "seconds": {}}
            record["wall_seconds"] = round(time.perf_counter() - start, 1)
            record["load_average_1min"] = {"start": round(load, 2), "end": round(os.getloadavg()[0], 2)}
            record["peak_rss_gb_max"] = max(record.get("peak_rss_gb", {}).values(), default=None)
            if code is None:
                record["failed"] = f"no result within --timeout {args.timeout:.0f} s, during {record['current_step']}"
            elif code != 0 and "failed" not in record:
                record["failed"] = f"exit status {code} during {record.get('current_step')}: {error}"
            records.append(record)
            print(json.dumps({k: record.get(k) for k in ("n_cells", "seconds", "peak_rss_gb", "failed")}), flush=True)  # noqa: T201
    records.sort(key=lambda r: r["n_cells"])
    result = {
        "benchmark": "one epoch of each training stage, embedding, theta and WNN weights against cells",
        "command": "python benchmarks/bench_scale.py " + " ".join(sys.argv[1:]),
        "machine": machine(args.threads, args.accelerator),
        "simulation": {"n_genes": args.n_genes, "n_proteins": 25, "library_size_median": 3000, "seed": 0},
        "training": {
            "max_epochs": 1,
            "early_stopping": False,
            "batch_size": CITESEQ.batch_size,
            "n_layers_shared": CITESEQ.n_layers_shared,
            "train_size": CITESEQ.train_size,
        },
        "malloc_mmap_threshold": args.malloc_mmap_threshold,
        "environment": {
            k: v for k, v in env.items() if k.startswith(("OMP_", "MKL_", "OPENBLAS_", "NUMBA_", "MALLOC_"))
        },
        "records": records,
        "fit": fit([r for r in records if "n_cells" in r]),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["fit"], indent=1))  # noqa: T201


if __name__ == "__main__":
    main()
