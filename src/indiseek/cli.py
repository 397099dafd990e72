"""Command line: ``indiseek run`` (the whole CITE-seq job) and ``indiseek simulate`` (the paper's simulations)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from indiseek.defaults import CITESEQ, SIMULATION
from indiseek.module import CLUB_ESTIMATORS, METHODS
from indiseek.train import OPTIMIZERS

SPECIFIC_METHODS = tuple(m for m in METHODS if m != "clip")

logger = logging.getLogger("indiseek")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="indiseek", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="Train on a CITE-seq MuData (default: simulated data) and write the results.")
    run.add_argument("--input", type=Path, help="A .h5mu file with 'rna' and 'prot' raw counts (default: simulate).")
    run.add_argument("--out", type=Path, default=Path("indiseek_out"), help="Output directory.")
    run.add_argument("--method", default=CITESEQ.method, choices=METHODS)
    run.add_argument(
        "--lambda", dest="lambda_", type=float, default=CITESEQ.lambda_, help="Weight of the capture term."
    )
    run.add_argument("--max-epochs", type=int, default=CITESEQ.max_epochs, help="Epochs of each training stage.")
    run.add_argument("--lr", type=float, default=CITESEQ.lr, help="Learning rate.")
    run.add_argument("--n-cells", type=int, default=5000, help="Cells to simulate when no --input is given.")
    run.add_argument("--rna-modality", default="rna")
    run.add_argument("--protein-modality", default="prot")
    run.add_argument("--label-key", default="celltype.l2", help="Cell-type labels in mdata.obs for theta and metrics.")
    run.add_argument("--level1-key", default="celltype.l1", help="Coarser labels that colour the figures.")
    run.add_argument("--compare", action="store_true", help="Also run the baselines and draw a comparison.")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--quiet", action="store_true", help="No progress bars.")

    sim = sub.add_parser("simulate", help="Feature importance in the paper's simulation settings.")
    sim.add_argument("--setting", type=int, required=True, choices=[1, 2, 3, 4])
    sim.add_argument("--method", default=SIMULATION.method, help=f"One of {SPECIFIC_METHODS}, or a comma list.")
    sim.add_argument("--lambda", dest="lambda_", type=float, default=SIMULATION.lambda_)
    sim.add_argument("--lambdas", help="Comma-separated sweep, e.g. 0.01,0.1,1,10 (overrides --lambda).")
    sim.add_argument("--runs", type=int, default=10)
    sim.add_argument("--n", type=int, default=10_000, help="Training points per run.")
    sim.add_argument("--max-epochs", type=int, default=None)
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument(
        "--club-estimator",
        choices=CLUB_ESTIMATORS,
        default=SIMULATION.club_estimator,
        help="Estimator of the CLUB term.",
    )
    sim.add_argument("--optimizer", choices=OPTIMIZERS, default=SIMULATION.optimizer, help="Optimiser of the encoder.")
    sim.add_argument("--weight-decay", type=float, default=SIMULATION.weight_decay, help="Weight decay of the encoder.")
    sim.add_argument("--out", type=Path, default=Path("results.json"))
    sim.add_argument("--figure", type=Path, help="Also draw the importance panels to this file.")
    sim.add_argument("--quiet", action="store_true")
    return parser


def _run(args: argparse.Namespace) -> dict:
    import mudata as md

    from indiseek import IndiSeek
    from indiseek._job import run_job
    from indiseek.datasets import simulate_citeseq

    start = time.perf_counter()
    if args.input is None:
        mdata = simulate_citeseq(n_cells=args.n_cells, seed=args.seed, progress_bar=not args.quiet)
        source = f"simulated ({args.n_cells} cells, seed {args.seed})"
    else:
        mdata = md.read_h5mu(args.input)
        source = str(args.input)
    IndiSeek.setup_mudata(mdata, modalities={"rna_layer": args.rna_modality, "protein_layer": args.protein_modality})
    report = run_job(
        mdata, args.out, method=args.method, lambda_=args.lambda_, compare=args.compare, label_key=args.label_key,
        level1_key=args.level1_key, max_epochs=args.max_epochs, lr=args.lr, seed=args.seed,
        enable_progress_bar=not args.quiet,
    )  # fmt: skip
    report = {"input": source, **report, "total_seconds": round(time.perf_counter() - start, 2)}
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    return report


def _simulate(args: argparse.Namespace) -> list[dict]:
    from indiseek.sim import run_sweep

    lambdas = [float(x) for x in args.lambdas.split(",")] if args.lambdas else [args.lambda_]
    methods = args.method.split(",")
    records = run_sweep(
        args.setting, methods, lambdas, runs=args.runs, n=args.n, max_epochs=args.max_epochs, seed=args.seed,
        club_estimator=args.club_estimator, optimizer=args.optimizer, weight_decay=args.weight_decay,
        progress_bar=not args.quiet,
    )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records if len(records) > 1 else records[0], indent=1))
    if args.figure is not None:
        from indiseek.pl import importance

        importance(records, save=args.figure)
    return records


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``indiseek`` command."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    if args.command == "run":
        report = _run(args)
        print(json.dumps({k: v for k, v in report.items() if k != "methods"}, indent=1))  # noqa: T201
        for method, entry in report["methods"].items():
            figures = {k: round(v, 3) for k, v in entry.items() if isinstance(v, float)}
            print(f"{method}: {figures}")  # noqa: T201
        print(f"Wrote {args.out}/: result.h5mu, report.json, model/, figures/")  # noqa: T201
    else:
        records = _simulate(args)
        for r in records:
            vec = ", ".join(f"{v:.3f}" for v in r["importance"])
            print(f"setting {r['setting']} {r['method']} lambda={r['lambda']}: importance [{vec}]")  # noqa: T201
        print(f"Wrote {args.out}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
