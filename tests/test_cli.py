import json

import mudata as md
import numpy as np

from indiseek import IndiSeek
from indiseek.cli import main


def test_run_trains_and_saves(tmp_path):
    """Without labels (here: an absent label key) the job trains, saves and reports timings only."""
    out = tmp_path / "out"
    args = ["run", "--n-cells", "300", "--max-epochs", "1", "--label-key", "absent", "--out", str(out), "--quiet"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["n_cells"] == 300 and report["methods"]["indiseek"]["epochs"]["shared"] == 1
    assert "spearman_theta_vs_wnn" not in report
    result = md.read_h5mu(out / "result.h5mu")
    assert result.obsm["X_indiseek_specific_rna"].shape == (300, 50)
    model = IndiSeek.load(out / "model", result)
    np.testing.assert_allclose(model.get_latent_representation(), result.obsm["X_indiseek"], rtol=1e-5, atol=1e-6)


def test_run_on_an_input_file(tmp_path, small_mdata):
    path = tmp_path / "in.h5mu"
    small_mdata.write_h5mu(path)
    out = tmp_path / "out"
    args = ["run", "--input", str(path), "--method", "clip", "--max-epochs", "1", "--label-key", "absent"]
    main([*args, "--out", str(out), "--quiet"])
    assert "X_clip_shared_protein" in md.read_h5mu(out / "result.h5mu").obsm


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
