"""Cost of choosing lambda without labels: ``indiseek run --lambda auto`` against ``indiseek run``, in one run.

Runs both commands on the default data (5,000 simulated cells, seed 0) as separate processes, side by side (one core
each on a 2-core machine, one torch thread each), and records the wall time and peak resident memory of each and
their ratio as JSON, with the machine's description and where each run's time went (training, diagnostics and the
method's total from its ``report.json``).

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

_RUN = (
    "import resource, sys, time, torch; torch.set_num_threads(1); from indiseek.cli import main; "
    "t = time.perf_counter(); rc = main(sys.argv[1:]); u = resource.getrusage(resource.RUSAGE_SELF); "
    "print('WALL', time.perf_counter() - t, 'CPU', u.ru_utime + u.ru_stime, 'RSS_KB', u.ru_maxrss); sys.exit(rc)"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/bench_lambda_auto.json")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    with tempfile.TemporaryDirectory() as tmp:
        commands = {
            "single": ["run", "--out", str(Path(tmp) / "single"), "--quiet"],
            "auto": ["run", "--lambda", "auto", "--out", str(Path(tmp) / "auto"), "--quiet"],
        }
        start = time.perf_counter()
        procs = {
            name: subprocess.Popen([sys.executable, "-c", _RUN, *cmd], env=env, stdout=subprocess.PIPE, text=True)
            for name, cmd in commands.items()
        }
        result = {}
        for name, proc in procs.items():
            out, _ = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"indiseek {' '.join(commands[name])} failed with status {proc.returncode}")
            fields = out.split()
            wall = float(fields[fields.index("WALL") + 1])
            cpu = float(fields[fields.index("CPU") + 1])
            rss = int(fields[fields.index("RSS_KB") + 1])
            report = json.loads((Path(tmp) / name / "report.json").read_text())
            entry = report["methods"][report["main_method"]]
            result[name] = {
                "wall_seconds": round(wall, 1),
                "cpu_seconds": round(cpu, 1),
                "peak_rss_gb": round(rss / 1024**2, 2),
                "seconds": {  # where the time went, as the run's report.json gives it
                    "train": entry["train_seconds"],
                    "diagnostics": entry.get("diagnostics_seconds"),
                    "method_total": entry["total_seconds"],
                    **report["seconds"],
                },
            }
            if name == "auto":
                result[name]["chosen_lambda"] = entry["lambda_choice"]["lambda"]
                result[name]["seconds"]["sweep_per_lambda"] = entry["lambda_choice"]["seconds"]
        total = time.perf_counter() - start
    record = {
        "data": "simulate_citeseq defaults, 5,000 cells, seed 0",
        **result,
        "ratio_wall_auto_to_single": round(result["auto"]["wall_seconds"] / result["single"]["wall_seconds"], 2),
        "ratio_cpu_auto_to_single": round(result["auto"]["cpu_seconds"] / result["single"]["cpu_seconds"], 2),
        "benchmark_seconds": round(total, 1),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
    }
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record))  # noqa: T201


if __name__ == "__main__":
    main()
