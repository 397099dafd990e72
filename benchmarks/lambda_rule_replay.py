"""The present lambda rule applied again to every recorded sweep: what it chooses, and what that lambda leaks.

:func:`indiseek.tl.select_lambda` reads only a sweep's trade-off curve (completeness and leak per lambda), which
``lambda_auto.py`` records with the measures at every lambda (rho of theta, kNN accuracy). This script applies the
present rule to each recorded curve with CLUB's ridge estimator (main fits and refits) and records, next to the lambda
recorded when the sweep ran, the lambda chosen now, the leak and rho at each, and the lambda the rule now skips. Where
a record holds its whole sweep with the linear leak (``independence_r2_linear_<modality>``), the rule reads the sweep,
and the choice from the kNN leak alone is recorded too (``knn_leak_only``). No training. Writes one JSON object to
``--out``.

Usage: ``python benchmarks/lambda_rule_replay.py [--records benchmarks/results/lambda_auto.jsonl]
[--out benchmarks/results/lambda_rule_replay.json]``
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import pandas as pd

import indiseek

RESULTS = Path(__file__).resolve().parent / "results"


def sweeps(record: dict) -> list[tuple[str, dict, float, dict]]:
    """(name, sweep or trade-off curve, recorded choice, measures per lambda) of a record's main fit and each refit."""
    sweep = record.get("sweep") or {}
    if not any(k.startswith("independence_r2_linear_") for k in sweep):
        sweep = record["tradeoff"]  # the recorded curve: its leak is the kNN one, as the rule read it then
    out = [("main", sweep, record["chosen_lambda"], record.get("per_lambda") or {})]
    out += [
        (f"refit {f['seed']}", f["tradeoff"], f["chosen_lambda"], f["per_lambda"])
        for f in record.get("refits") or []
        if "tradeoff" in f
    ]
    return out


def choose(table: pd.DataFrame) -> tuple[float, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the reason carries the same sentence
        return indiseek.tl.select_lambda(table)


def replay(sweep: dict, recorded: float, per_lambda: dict) -> dict:
    """The present rule's choice on one sweep (or its curve), beside the recorded one."""
    table = pd.DataFrame(sweep).set_index("lambda")
    curve = indiseek.tl.lambda_tradeoff(table)
    chosen, reason = choose(table)

    def at(lambda_: float) -> dict:
        measures = per_lambda.get(f"{lambda_:g}", {})
        return {"lambda": lambda_, "leak": round(float(curve.loc[lambda_, "leak"]), 4), "rho": measures.get("rho")}

    out = {"recorded": at(recorded), "now": at(chosen), "changed": chosen != recorded, "reason": reason}
    linear = [c for c in table.columns if c.startswith("independence_r2_linear_")]
    if linear:
        out["knn_leak_only"] = at(choose(table.drop(columns=linear))[0])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=Path, default=RESULTS / "lambda_auto.jsonl")
    parser.add_argument("--out", type=Path, default=RESULTS / "lambda_rule_replay.json")
    args = parser.parse_args()
    rows = []
    for i, line in enumerate(args.records.read_text().splitlines()):
        record = json.loads(line)
        if record.get("club_estimator") != "ridge":
            continue
        for name, curve, recorded, per_lambda in sweeps(record):
            row = {"record": i, "fit": name, "data": record["data"], "seed": record["seed"]}
            row.update({k: record.get(k) for k in ("activation", "sweep_epoch", "embedding_weights_rule")})
            rows.append(row | replay(curve, recorded, per_lambda))
    changed = [r for r in rows if r["changed"]]
    summary = {
        "sweeps": len(rows),
        "changed": len(changed),
        "changed_data": sorted({r["data"] for r in changed}),
        "leak_recorded_where_changed": [r["recorded"]["leak"] for r in changed],
        "leak_now_where_changed": [r["now"]["leak"] for r in changed],
        "with_linear_leak": sum("knn_leak_only" in r for r in rows),
        "linear_leak_changes_choice": sum(
            r["knn_leak_only"]["lambda"] != r["now"]["lambda"] for r in rows if "knn_leak_only" in r
        ),
    }
    args.out.write_text(json.dumps({"summary": summary, "sweeps": rows}, indent=1) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
