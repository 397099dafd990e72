"""Cost of choosing lambda without labels: ``indiseek run --lambda auto`` against ``indiseek run``, in one run.

Both run with ``--theta-fits 1``: theta from the model's own fit, so that the ratio is that of the training alone.

Runs both commands on the default data (5,000 simulated cells, seed 0) as separate processes, one core and one torch
thread each on a 2-core machine: the automatic run on one core and, on the other, single runs back to back for as
long as the automatic run lasts (at least one). Both cores stay busy throughout, so both kinds of run meet the same
machine, whose speed drifts by tens of percent within twenty minutes on a shared host. Records the wall and CPU time
and peak resident memory of every run, the ratio of the automatic run to the mean single run, the machine's
description, and where each run's time went (each training stage or the sweep, diagnostics and the method's total,
from its ``report.json``).

Usage: ``python benchmarks/bench_lambda_auto.py [--out benchmarks/results/bench_lambda_auto.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _biology import versions

from indiseek.defaults import CITESEQ

_RUN = (
    "import resource, sys, time, torch; torch.set_num_threads(1); from indiseek.cli import main; "
    "t = time.perf_counter(); rc = main(sys.argv[1:]); u = resource.getrusage(resource.RUSAGE_SELF); "
    "print('WALL', time.perf_counter() - t, 'CPU', u.ru_utime + u.ru_stime, 'RSS_KB', u.ru_maxrss); sys.exit(rc)"
)
_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _RUN, *args], env=_ENV, stdout=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, out_dir: Path) -> dict:
    """Wait for a run; its times, memory and where its time went."""
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"indiseek {' '.join(proc.args[3:])} failed with status {proc.returncode}")
    fields = out.split()
    value = lambda name: float(fields[fields.index(name) + 1])  # noqa: E731
    report = json.loads((out_dir / "report.json").read_text())
    entry = report["methods"][report["main_method"]]
    result = {
        "wall_seconds": round(value("WALL"), 1),
        "cpu_seconds": round(value("CPU"), 1),
        "peak_rss_gb": round(value("RSS_KB") / 1024**2, 2),
        "seconds": {  # where the time went, as the run's report.json gives it
            "train": entry["train_seconds"],
            "diagnostics": entry.get("diagnostics_seconds"),
            "method_total": entry["total_seconds"],
            **report["seconds"],
        },
    }
    if "lambda_choice" in entry:
        result["chosen_lambda"] = entry["lambda_choice"]["lambda"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/bench_lambda_auto.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        auto_dir = Path(tmp) / "auto"
        auto = _start(["run", "--lambda", "auto", "--theta-fits", "1", "--out", str(auto_dir), "--quiet"])
        singles = []
        while not singles or auto.poll() is None:
            single_dir = Path(tmp) / f"single_{len(singles)}"
            single = _start(["run", "--theta-fits", "1", "--out", str(single_dir), "--quiet"])
            singles.append(_finish(single, single_dir))
        auto_result = _finish(auto, auto_dir)
        total = time.perf_counter() - start
    mean = {k: float(np.mean([s[k] for s in singles])) for k in ("wall_seconds", "cpu_seconds")}
    record = {
        "data": "simulate_citeseq defaults, 5,000 cells, seed 0",
        "defaults": {k: getattr(CITESEQ, k) for k in ("lambda_", "n_layers", "n_layers_shared", "batch_size")},
        "auto": auto_result,
        "single": singles,
        "single_mean_wall_seconds": round(mean["wall_seconds"], 1),
        "ratio_wall_auto_to_single": round(auto_result["wall_seconds"] / mean["wall_seconds"], 2),
        "ratio_cpu_auto_to_single": round(auto_result["cpu_seconds"] / mean["cpu_seconds"], 2),
        "benchmark_seconds": round(total, 1),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": versions(),
    }
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record))  # noqa: T201


if __name__ == "__main__":
    main()
