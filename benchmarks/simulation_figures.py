"""Draw the importance panels of the recorded simulation runs with :func:`indiseek.pl.importance`.

Reads ``benchmarks/results/simulation_setting{1,2,3,4}.json`` (records of ``indiseek simulate``). For each setting it
draws one figure of the lambda sweep (rows: methods with the default fit options, columns: lambda) and puts the
records with other options (the critic estimator, AdamW) in rows of their own. Where a (method, options, lambda)
cell was recorded more than once, the record with the most runs is drawn. With ``--table`` it also prints the
Markdown table of ``docs/results.md`` (every lambda recorded, not only the drawn ones). ``simulation_main.png`` puts
the paper's main comparison side by side for every recorded setting: FactorizedCL at lambda 1, InfoDisen at 0.1 and
at 0.001 (the paper's 0.1 when the orthogonality term is summed over batches of 100, as in its public code) and
IndiSeek at 0.1.

Usage: ``python benchmarks/simulation_figures.py [--out docs/figures] [--table]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from matplotlib.figure import Figure

import indiseek
from indiseek.defaults import record_label
from indiseek.sim import OPTION_DEFAULTS, record_options

RESULTS = Path(__file__).parent / "results"
METHOD_ORDER = ("indiseek", "factorizedcl", "infodisen")
#: Panels of the main comparison: (method, lambda).
MAIN = (("factorizedcl", 1.0), ("infodisen", 0.1), ("infodisen", 0.001), ("indiseek", 0.1))


def _default_options(record: dict) -> bool:
    """Whether the record was fitted with every default of :data:`indiseek.sim.OPTION_DEFAULTS`."""
    return record_options(record) == OPTION_DEFAULTS


def _key(record: dict) -> tuple:
    """Drawing order: default options first, then by method, variant and lambda."""
    return (not _default_options(record), METHOD_ORDER.index(record["method"]), record_label(record), record["lambda"])


def best_records(records: list[dict], lambdas: tuple[float, ...] | None = None) -> list[dict]:
    """The record with the most runs per (method and options, lambda) among ``lambdas`` (all if None), in order."""
    best: dict[tuple, dict] = {}
    for record in records:
        if lambdas is not None and record["lambda"] not in lambdas:
            continue
        key = _key(record)
        if key not in best or record["runs"] > best[key]["runs"]:
            best[key] = record
    return [best[k] for k in sorted(best)]


def table_rows(setting: int, records: list[dict]) -> list[str]:
    """Markdown rows ``| setting | method | lambda | runs | x1..x6 | on ideal |``, ideal coordinates in bold."""
    rows = []
    for record in best_records(records):
        label = record_label(record)
        cells = [f"**{v:.3f}**" if j in record["ideal"] else f"{v:.3f}" for j, v in enumerate(record["importance"])]
        lam = f"{record['lambda']:g}"
        rows.append(
            f"| {setting} | {label} | {lam} | {record['runs']} | {' | '.join(cells)} | {record['ideal_share']:.3f} |"
        )
    return rows


def main_comparison(by_setting: dict[int, list[dict]], path: Path) -> None:
    """One row per setting of the paper's main comparison (:data:`MAIN`), default options only."""
    rows = []
    for setting, records in by_setting.items():
        best = {(r["method"], r["lambda"]): r for r in best_records(records) if _default_options(r)}
        if all(cell in best for cell in MAIN):
            rows.append((setting, [best[cell] for cell in MAIN]))
    fig = Figure(figsize=(2.6 * len(MAIN), 2.3 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), len(MAIN), squeeze=False, sharey=True)
    for (setting, records), row in zip(rows, axes, strict=True):
        indiseek.pl.importance(records, ax=row)
        for ax in row:
            ax.set_title(f"S{setting}: {ax.get_title()}", fontsize="medium")
    fig.savefig(path, dpi=110)
    print(f"Wrote {path}")  # noqa: T201


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    parser.add_argument("--lambdas", default="0.01,0.1,1,10", help="Columns of the sweep.")
    parser.add_argument("--table", action="store_true", help="Also print the Markdown table of all records.")
    args = parser.parse_args()
    lambdas = tuple(float(x) for x in args.lambdas.split(","))
    args.out.mkdir(parents=True, exist_ok=True)
    rows = ["| setting | method | lambda | runs | x1 | x2 | x3 | x4 | x5 | x6 | on ideal |", "|---" * 11 + "|"]
    by_setting = {}
    for setting in (1, 2, 3, 4):
        source = RESULTS / f"simulation_setting{setting}.json"
        if not source.exists():
            continue
        by_setting[setting] = records = json.loads(source.read_text())
        sweep = best_records(records, lambdas)
        if len({r["lambda"] for r in sweep}) == len(lambdas):
            path = args.out / f"simulation_setting{setting}.png"
            indiseek.pl.importance(sweep, save=path, dpi=110)
            print(f"Wrote {path}")  # noqa: T201
        rows += table_rows(setting, records)
    main_comparison(by_setting, args.out / "simulation_main.png")
    if args.table:
        print("\n".join(rows))  # noqa: T201


if __name__ == "__main__":
    main()
