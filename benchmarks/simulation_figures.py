"""Draw the importance panels of the recorded simulation runs with :func:`indiseek.pl.importance`.

Reads ``benchmarks/results/simulation_setting{1,2}.json`` (records of ``indiseek simulate``). For each setting it
draws one figure of the lambda sweep (rows: methods with the default Gaussian CLUB, columns: lambda) and, when
there are records with the critic estimator, puts them in a row of their own. Where a (method, estimator, lambda)
cell was recorded more than once, the record with the most runs is drawn.

Usage: ``python benchmarks/simulation_figures.py [--out docs/figures]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import indiseek

RESULTS = Path(__file__).parent / "results"
METHOD_ORDER = ("indiseek", "factorizedcl", "infodisen")


def _key(record: dict) -> tuple:
    estimator = (record.get("options") or {}).get("club_estimator", "gaussian")
    return (estimator != "gaussian", METHOD_ORDER.index(record["method"]), record["lambda"])


def best_records(records: list[dict], lambdas: tuple[float, ...]) -> list[dict]:
    """The record with the most runs per (estimator, method, lambda) among ``lambdas``, in drawing order."""
    best: dict[tuple, dict] = {}
    for record in records:
        if record["lambda"] not in lambdas:
            continue
        key = _key(record)
        if key not in best or record["runs"] > best[key]["runs"]:
            best[key] = record
    return [best[k] for k in sorted(best)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    parser.add_argument("--lambdas", default="0.01,0.1,1,10", help="Columns of the sweep.")
    args = parser.parse_args()
    lambdas = tuple(float(x) for x in args.lambdas.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    for setting in (1, 2):
        records = json.loads((RESULTS / f"simulation_setting{setting}.json").read_text())
        path = args.out / f"simulation_setting{setting}.png"
        indiseek.pl.importance(best_records(records, lambdas), save=path, dpi=110)
        print(f"Wrote {path}")  # noqa: T201


if __name__ == "__main__":
    main()
