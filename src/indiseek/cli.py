"""Command line: ``indiseek run`` (the whole CITE-seq job) and ``indiseek simulate`` (the paper's simulations)."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from indiseek._keys import MODALITIES
from indiseek.defaults import CITESEQ, SIMULATION
from indiseek.module import CLUB_ESTIMATORS, METHODS
from indiseek.train import OPTIMIZERS

SPECIFIC_METHODS = tuple(m for m in METHODS if m != "clip")
#: Fewest training points per run of ``indiseek simulate``: one full batch.
MIN_POINTS = SIMULATION.batch_size
#: Errors the package raises for bad user input; they end the command with one line and exit status 2.
USER_ERRORS = (ValueError, KeyError, TypeError, FileNotFoundError, FileExistsError)

logger = logging.getLogger("indiseek")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``indiseek: error: <message>``, with exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"indiseek: error: {message}\n")


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}.") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}.")
    return value


def _non_negative(text: str) -> float:
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite non-negative number, got {text!r}.")
    return value


def _positive(text: str) -> float:
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite positive number, got {text!r}.")
    return value


def _int_at_least(minimum: int, why: str = "") -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}.") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}{why}, got {value}.")
        return value

    return parse


def _lambda_or_auto(text: str) -> float | str:
    return "auto" if text.strip().lower() == "auto" else _non_negative(text)


class _LambdaAction(argparse.Action):
    """``--lambda``: ``auto``, one weight for both specific stages, or the RNA one and the protein one."""

    def __call__(self, parser, namespace, values, option_string=None):
        if len(values) > len(MODALITIES) or ("auto" in values and len(values) > 1):
            shown = " ".join(str(v) for v in values)
            parser.error(f"{option_string} takes 'auto', one weight, or two (RNA, then protein), got {shown}.")
        setattr(namespace, self.dest, values[0] if len(values) == 1 else dict(zip(MODALITIES, values, strict=True)))


def _lambda_list(text: str) -> list[float]:
    items = [x.strip() for x in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}.")
    return [_non_negative(x) for x in items]


def _method_list(text: str) -> list[str]:
    methods = [m.strip().lower() for m in text.split(",")]
    for m in methods:
        if m not in SPECIFIC_METHODS:
            raise argparse.ArgumentTypeError(f"unknown method {m!r}: use {', '.join(SPECIFIC_METHODS)}.")
    return methods


def _input_file(text: str) -> Path:
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist.")
    if not path.is_file() or not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text} is not a readable file.")
    suffix = path.suffix.lower()
    if suffix == ".h5ad":
        raise argparse.ArgumentTypeError(
            f"{text} is an AnnData file; a MuData (.h5mu) is needed: convert it in Python with "
            "`mdata = indiseek.datasets.from_anndata(adata)` then `mdata.write_h5mu('data.h5mu')`."
        )
    if suffix != ".h5mu":
        raise argparse.ArgumentTypeError(f"expected a MuData .h5mu file, got {text}.")
    return path


def _add_common(parser: argparse.ArgumentParser, quiet_help: str | None = None) -> None:
    parser.add_argument("--quiet", action="store_true", help=quiet_help)
    parser.add_argument("--debug", action="store_true", help="Show the full traceback of an error.")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="indiseek", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="Train on a CITE-seq MuData (default: simulated data) and write the results.")
    run.add_argument(
        "--input", type=_input_file, help="A .h5mu file with 'rna' and 'prot' raw counts (default: simulate)."
    )
    run.add_argument("--out", type=Path, default=Path("indiseek_out"), help="Output directory.")
    run.add_argument("--method", default=CITESEQ.method, choices=METHODS)
    run.add_argument(
        "--lambda",
        dest="lambda_",
        type=_lambda_or_auto,
        nargs="+",
        action=_LambdaAction,
        default=CITESEQ.lambda_,
        metavar="LAMBDA",
        help="Weight of the capture term: one for both specific stages, or the RNA one and the protein one "
        "(default: 200 300); 'auto' chooses one without labels over 10^-3 .. 10^3.",
    )
    run.add_argument(
        "--max-epochs",
        type=_int_at_least(1),
        default=None,
        help="Epochs of each training stage (default: 300, at most 128,000 minibatch steps, the specific stage at "
        "least 6,000).",
    )
    run.add_argument("--lr", type=_positive, default=CITESEQ.lr, help="Learning rate.")
    run.add_argument(
        "--batch-size",
        type=_int_at_least(2),
        default=CITESEQ.batch_size,
        help="Cells per training batch (128 halves the training time, at some cost to the finer cell types).",
    )
    run.add_argument("--n-cells", type=_int_at_least(2), default=5000, help="Cells to simulate when no --input.")
    run.add_argument("--rna-modality", default="rna")
    run.add_argument("--protein-modality", default="prot")
    run.add_argument("--batch-key", default=None, help="Column of mdata.obs with each cell's batch.")
    run.add_argument("--label-key", default="celltype.l2", help="Cell-type labels in mdata.obs for theta and metrics.")
    run.add_argument("--level1-key", default="celltype.l1", help="Coarser labels that colour the figures.")
    run.add_argument("--compare", action="store_true", help="Also run the baselines and draw a comparison.")
    run.add_argument(
        "--theta-fits",
        type=_int_at_least(1),
        default=5,
        help="Fits of the specific stages whose same-label counts theta averages (1: the model's own fit alone).",
    )
    run.add_argument("--seed", type=_int_at_least(0), default=0)
    _add_common(run, "No progress bars.")

    sim = sub.add_parser("simulate", help="Feature importance in the paper's simulation settings.")
    sim.add_argument("--setting", type=int, required=True, choices=[1, 2, 3, 4])
    sim.add_argument(
        "--method", type=_method_list, default=SIMULATION.method, help=f"One of {SPECIFIC_METHODS}, or a comma list."
    )
    sim.add_argument("--lambda", dest="lambda_", type=_non_negative, default=SIMULATION.lambda_)
    sim.add_argument(
        "--lambdas", type=_lambda_list, help="Comma-separated sweep, e.g. 0.01,0.1,1,10 (overrides --lambda)."
    )
    sim.add_argument("--runs", type=_int_at_least(1), default=10)
    sim.add_argument(
        "--n",
        type=_int_at_least(MIN_POINTS, " (one full training batch)"),
        default=10_000,
        help="Training points per run.",
    )
    sim.add_argument("--max-epochs", type=_int_at_least(1), default=None)
    sim.add_argument("--seed", type=_int_at_least(0), default=0)
    sim.add_argument(
        "--club-estimator",
        choices=CLUB_ESTIMATORS,
        default=SIMULATION.club_estimator,
        help="Estimator of the CLUB term.",
    )
    sim.add_argument("--optimizer", choices=OPTIMIZERS, default=SIMULATION.optimizer, help="Optimiser of the encoder.")
    sim.add_argument(
        "--weight-decay", type=_non_negative, default=SIMULATION.weight_decay, help="Weight decay of the encoder."
    )
    sim.add_argument("--out", type=Path, default=Path("results.json"))
    sim.add_argument("--figure", type=Path, help="Also draw the importance panels to this file.")
    _add_common(sim)
    return parser


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse arguments that training or the outputs would refuse later, before any work; nothing is created here."""
    if args.command == "run":
        needed = _min_cells(args.batch_size)
        if args.input is None and args.n_cells < needed:
            parser.error(
                f"argument --n-cells: {args.n_cells} cells do not fill one training batch of --batch-size "
                f"{args.batch_size}; simulate at least {needed} cells or pass a smaller --batch-size."
            )
        if args.out.exists() and not args.out.is_dir():
            parser.error(f"argument --out: {args.out} exists and is not a directory.")
        from indiseek.model._save import check_destination

        try:  # the model is saved to --out/model at the end: refuse now what save() would refuse then
            check_destination(args.out / "model", overwrite=True)
        except FileExistsError as err:
            parser.error(f"argument --out: {err}")
        return
    if args.out.is_dir():
        parser.error(f"argument --out: {args.out} is a directory; give a file such as results.json.")
    if args.figure is not None and args.figure.suffix:
        from matplotlib.figure import Figure

        formats = Figure().canvas.get_supported_filetypes()
        if args.figure.suffix[1:].lower() not in formats:
            parser.error(f"argument --figure: unsupported format {args.figure.suffix!r}; use one of {sorted(formats)}.")


def _min_cells(batch_size: int) -> int:
    """Fewest cells ``indiseek run`` trains on: its training split holds one full batch (partial ones are dropped)."""
    return math.ceil(batch_size / CITESEQ.train_size)


def _read_input(path: Path, batch_size: int):
    import mudata as md

    try:
        mdata = md.read_h5mu(path)
    except OSError as err:
        raise ValueError(f"cannot read --input {path} as a MuData .h5mu file ({err}).") from err
    needed = _min_cells(batch_size)
    if mdata.n_obs < needed:
        raise ValueError(
            f"--input {path} has {mdata.n_obs} cells; at least {needed} are needed for training with --batch-size "
            f"{batch_size}: pass a smaller --batch-size."
        )
    return mdata


def _run(args: argparse.Namespace) -> dict:
    from indiseek import IndiSeek
    from indiseek._job import run_job
    from indiseek.datasets import simulate_citeseq

    start = time.perf_counter()
    if args.input is None:
        mdata = simulate_citeseq(n_cells=args.n_cells, seed=args.seed, progress_bar=not args.quiet)
        source = f"simulated ({args.n_cells} cells, seed {args.seed})"
    else:
        mdata = _read_input(args.input, args.batch_size)
        source = str(args.input)
    IndiSeek.setup_mudata(
        mdata, modalities={"rna_layer": args.rna_modality, "protein_layer": args.protein_modality},
        batch_key=args.batch_key,
    )  # fmt: skip
    report = run_job(
        mdata, args.out, method=args.method, lambda_=args.lambda_, compare=args.compare, label_key=args.label_key,
        level1_key=args.level1_key, modalities=(args.rna_modality, args.protein_modality),
        theta_fits=args.theta_fits, max_epochs=args.max_epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed,
        enable_progress_bar=not args.quiet,
    )  # fmt: skip
    report = {"input": source, **report, "total_seconds": round(time.perf_counter() - start, 2)}
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    return report


def _simulate(args: argparse.Namespace) -> list[dict]:
    from indiseek.sim import run_sweep

    lambdas = args.lambdas if args.lambdas else [args.lambda_]
    records = run_sweep(
        args.setting, args.method, lambdas, runs=args.runs, n=args.n, max_epochs=args.max_epochs, seed=args.seed,
        club_estimator=args.club_estimator, optimizer=args.optimizer, weight_decay=args.weight_decay,
        progress_bar=not args.quiet,
    )  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records if len(records) > 1 else records[0], indent=1))
    if args.figure is not None:
        from indiseek.pl import importance

        importance(records, save=args.figure)
    return records


def _one_line(err: BaseException) -> str:
    # str(KeyError("x")) quotes its message; the message itself reads better
    message = err.args[0] if isinstance(err, KeyError) and len(err.args) == 1 else err
    return " ".join(str(message).split()) or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``indiseek`` command.

    Parameters
    ----------
    argv
        Arguments after the command name; ``None`` reads ``sys.argv``.

    Returns
    -------
    The exit status, 0. A user error (a bad argument, an unreadable input, or a ``ValueError``, ``KeyError``,
    ``TypeError``, ``FileNotFoundError`` or ``FileExistsError`` of the package) prints one line
    ``indiseek: error: <message>`` and exits with status 2 (:class:`SystemExit`), before any output is written
    when the arguments are at fault; ``--debug`` re-raises it with its traceback.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    _check_arguments(parser, args)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    try:
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
    except USER_ERRORS as err:
        if args.debug:
            raise
        parser.error(_one_line(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
