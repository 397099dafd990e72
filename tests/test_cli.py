import json
import subprocess
import sys

import anndata as ad
import mudata as md
import numpy as np
import pytest

from indiseek import IndiSeek
from indiseek.cli import main
from indiseek.defaults import CITESEQ


def test_run_trains_and_saves(tmp_path):
    """Without labels (here: an absent label key) the job trains, saves and reports timings only; two lambdas are
    the RNA one and the protein one."""
    out = tmp_path / "out"
    args = ["run", "--n-cells", "300", "--max-epochs", "1", "--label-key", "absent", "--lambda", "5", "50", "--out",
            str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["n_cells"] == 300 and report["methods"]["indiseek"]["epochs"]["shared"] == 1
    assert report["lambda"] == {"rna": 5.0, "protein": 50.0}
    assert "spearman_theta_vs_wnn" not in report
    result = md.read_h5mu(out / "result.h5mu")
    assert result.obsm["X_indiseek_specific_rna"].shape == (300, 50)
    model = IndiSeek.load(out / "model", result)
    assert model.lambda_in_use == {"rna": 5.0, "protein": 50.0}
    np.testing.assert_allclose(model.get_latent_representation(), result.obsm["X_indiseek"], rtol=1e-5, atol=1e-6)


def test_run_on_an_input_file(tmp_path, small_mdata):
    path = tmp_path / "in.h5mu"
    small_mdata.write_h5mu(path)
    out = tmp_path / "out"
    args = ["run", "--input", str(path), "--method", "clip", "--max-epochs", "1", "--label-key", "absent"]
    main([*args, "--out", str(out), "--quiet"])
    assert "X_clip_shared_protein" in md.read_h5mu(out / "result.h5mu").obsm


def test_batch_size_reaches_training(tmp_path, small_mdata, capsys):
    """400 cells leave 360 for training: a batch of 360 trains and is reported, one of 361 is refused, naming it."""
    path = tmp_path / "in.h5mu"
    small_mdata.write_h5mu(path)
    args = ["run", "--input", str(path), "--method", "clip", "--max-epochs", "1", "--label-key", "absent", "--quiet"]
    assert main([*args, "--batch-size", "360", "--out", str(tmp_path / "fits")]) == 0
    report = json.loads((tmp_path / "fits" / "report.json").read_text())
    assert report["train"] == {"max_epochs": 1, "lr": CITESEQ.lr, "batch_size": 360, "seed": 0}
    message = _user_error(capsys, [*args, "--batch-size", "361", "--out", str(tmp_path / "refused")])
    assert "--batch-size 361" in message and not (tmp_path / "refused").exists()


def test_run_on_unpaired_cells_with_batches(tmp_path, small_mdata):
    """RNA-only and protein-only cells, another protein modality name and batches: measured on the paired cells;
    theta averaged over two fits of the specific stages."""
    names = small_mdata.obs_names
    rna, adt = small_mdata["rna"][names[:360]].copy(), small_mdata["prot"][names[40:]].copy()
    mdata = md.MuData({"rna": rna, "adt": adt})
    for key in ("celltype.l1", "celltype.l2"):
        mdata.obs[key] = small_mdata.obs.loc[mdata.obs_names, key].to_numpy()
    mdata.obs["batch"] = np.where(np.arange(mdata.n_obs) % 2 == 0, "a", "b")
    path = tmp_path / "in.h5mu"
    mdata.write_h5mu(path)
    out = tmp_path / "out"
    args = ["run", "--input", str(path), "--protein-modality", "adt", "--batch-key", "batch", "--max-epochs", "2"]
    assert main([*args, "--theta-fits", "2", "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["n_cells"] == 400 and report["n_cells_measured"] == 320
    assert report["theta_fits"] == 2 and report["methods"]["indiseek"]["train_seconds"]["fits"] > 0
    assert np.isfinite(report["spearman_theta_vs_wnn"])
    result = md.read_h5mu(out / "result.h5mu")
    theta = result.obs["theta"].to_numpy()
    assert np.isnan(theta[:40]).all() and np.isnan(theta[360:]).all() and np.isfinite(theta[40:360]).all()
    assert np.isnan(result.obsm["X_indiseek_shared_rna"][360:]).all()
    assert np.isfinite(result.obsm["X_indiseek_shared_rna"][:360]).all()
    fits = result.obsm["X_indiseek_specific_rna_fits"]
    assert fits.shape[:2] == (400, 2) and np.isnan(fits[360:]).all() and np.isfinite(fits[:360]).all()
    assert result.uns["theta"]["params"]["rna_key"] == "X_indiseek_specific_rna_fits"


def test_simulate_writes_records(tmp_path):
    out = tmp_path / "res.json"
    figure = tmp_path / "imp.png"
    args = ["simulate", "--setting", "2", "--method", "indiseek,infodisen", "--lambdas", "0.1,1", "--runs", "1",
            "--n", "300", "--max-epochs", "1", "--out", str(out), "--figure", str(figure), "--quiet"]  # fmt: skip
    assert main(args) == 0
    records = json.loads(out.read_text())
    assert [(r["method"], r["lambda"]) for r in records] == [
        ("indiseek", 0.1), ("indiseek", 1.0), ("infodisen", 0.1), ("infodisen", 1.0)
    ]  # fmt: skip
    for r in records:
        assert {"setting", "method", "lambda", "runs", "importance", "importance_std", "seconds"} <= set(r)
        assert len(r["importance"]) == 6 and abs(sum(r["importance"]) - 1) < 1e-6
    assert figure.stat().st_size > 0


def test_simulate_with_the_critic_estimator(tmp_path):
    out = tmp_path / "res.json"
    args = ["simulate", "--setting", "2", "--club-estimator", "critic", "--runs", "1", "--n", "300",
            "--max-epochs", "1", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    record = json.loads(out.read_text())
    assert record["options"] == {"club_estimator": "critic", "optimizer": "Adam", "weight_decay": 0.0}
    assert np.isfinite(record["final_losses"][0]["independence_train"])


def test_simulate_with_adamw_records_the_options(tmp_path):
    out = tmp_path / "res.json"
    args = ["simulate", "--setting", "1", "--optimizer", "AdamW", "--weight-decay", "0.1", "--runs", "1", "--n", "300",
            "--max-epochs", "1", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    record = json.loads(out.read_text())
    assert record["options"] == {"club_estimator": "gaussian", "optimizer": "AdamW", "weight_decay": 0.1}


def _user_error(capsys, args: list[str]) -> str:
    """Run the command expecting a user error; return its one-line message."""
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("indiseek: error: "), err
    return lines[0]


# Small and short everywhere, so that a check that came too late would still end soon; the last value of an option wins
RUN = ["run", "--n-cells", "300", "--max-epochs", "1"]
SIMULATE = ["simulate", "--setting", "1", "--n", "300", "--runs", "1", "--max-epochs", "1"]
BAD_ARGUMENTS = {
    "run_negative_lambda": ([*RUN, "--lambda", "-1"], "--lambda"),
    "run_nan_lambda": ([*RUN, "--lambda", "nan"], "--lambda"),
    "run_three_lambdas": ([*RUN, "--lambda", "1", "2", "3"], "--lambda"),
    "run_auto_and_a_lambda": ([*RUN, "--lambda", "auto", "2"], "--lambda"),
    "run_negative_epochs": ([*RUN, "--max-epochs", "-1"], "--max-epochs"),
    "run_zero_lr": ([*RUN, "--lr", "0"], "--lr"),
    "run_too_few_cells": ([*RUN, "--n-cells", "10"], "--n-cells"),
    "run_batch_of_one": ([*RUN, "--batch-size", "1"], "--batch-size"),
    "run_batch_above_cells": ([*RUN, "--batch-size", "400"], "--batch-size"),
    "run_unknown_method": ([*RUN, "--method", "nope"], "--method"),
    "run_no_theta_fits": ([*RUN, "--theta-fits", "0"], "--theta-fits"),
    "simulate_no_points": ([*SIMULATE, "--n", "0"], "--n"),
    "simulate_nan_lambda": ([*SIMULATE, "--lambda", "nan"], "--lambda"),
    "simulate_bad_sweep": ([*SIMULATE, "--lambdas", "0.1,-1"], "--lambdas"),
    "simulate_negative_epochs": ([*SIMULATE, "--max-epochs", "-1"], "--max-epochs"),
    "simulate_unknown_method": ([*SIMULATE, "--method", "indiseek,clip"], "--method"),
    "simulate_no_runs": ([*SIMULATE, "--runs", "0"], "--runs"),
}


@pytest.mark.parametrize(("args", "option"), BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_bad_arguments_are_refused_before_any_work(tmp_path, capsys, args, option):
    """One line naming the option, exit status 2, and no output: the check comes before simulation or training."""
    out = tmp_path / "out" / ("res.json" if args[0] == "simulate" else "")
    message = _user_error(capsys, [*args, "--out", str(out), "--quiet"])
    assert option in message
    assert list(tmp_path.iterdir()) == []


def test_an_h5ad_input_is_refused_with_the_conversion(tmp_path, capsys):
    path = tmp_path / "cells.h5ad"
    ad.AnnData(np.ones((3, 2), dtype=np.float32)).write_h5ad(path)
    message = _user_error(capsys, ["run", "--input", str(path), "--out", str(tmp_path / "out")])
    assert "--input" in message and "from_anndata" in message and "write_h5mu" in message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["missing.h5mu", "cells.csv"])
def test_a_missing_or_foreign_input_is_refused(tmp_path, capsys, name):
    if name.endswith(".csv"):
        (tmp_path / name).write_text("a,b\n1,2\n")
    message = _user_error(capsys, ["run", "--input", str(tmp_path / name), "--out", str(tmp_path / "out")])
    assert "--input" in message and name in message
    assert not (tmp_path / "out").exists()


def test_a_package_error_is_one_line_and_debug_shows_it(tmp_path, capsys, small_mdata):
    """A KeyError of the package on user input (an absent modality) is one line; --debug re-raises it."""
    path = tmp_path / "in.h5mu"
    small_mdata.write_h5mu(path)
    args = ["run", "--input", str(path), "--rna-modality", "absent", "--out", str(tmp_path / "out"), "--quiet"]
    assert "absent" in _user_error(capsys, args)
    assert not (tmp_path / "out").exists()
    with pytest.raises((KeyError, ValueError)):
        main([*args, "--debug"])


def test_run_keeps_foreign_files_in_the_model_folder(tmp_path, capsys):
    """--out/model is replaced by a run: a folder there with other files is refused before any work."""
    notes = tmp_path / "out" / "model" / "notes.txt"
    notes.parent.mkdir(parents=True)
    notes.write_text("mine")
    message = _user_error(capsys, ["run", "--n-cells", "300", "--max-epochs", "1", "--out", str(tmp_path / "out")])
    assert "--out" in message
    assert notes.read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["model", "notes.txt"]


def test_the_command_exits_2_with_one_line(tmp_path):
    out = tmp_path / "out"
    # -W ignore: dependencies warn on import, which is not the command's output
    cmd = [sys.executable, "-W", "ignore", "-m", "indiseek.cli", "run", "--lambda", "-1", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "indiseek: error: argument --lambda: must be a finite non-negative number, got '-1'."
    ]
    assert not out.exists()
