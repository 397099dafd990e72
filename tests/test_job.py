"""``indiseek run`` is the whole job: training, theta, WNN weights, rank correlations, metrics, figures, report."""

import json

import mudata as md
import pytest

from indiseek import IndiSeek
from indiseek.cli import main


def test_run_writes_report_and_figures(tmp_path):
    out = tmp_path / "out"
    main(["run", "--n-cells", "400", "--max-epochs", "2", "--compare", "--out", str(out), "--quiet"])
    report = json.loads((out / "report.json").read_text())
    for key in ("spearman_theta_vs_wnn", "spearman_theta_vs_truth", "ari", "nmi"):
        assert -1 <= report[key] <= 1
    assert set(report["methods"]) == {"indiseek", "factorizedcl", "infodisen", "clip"}
    assert {"inputs", "shared", "specific", "fits"} == set(report["methods"]["indiseek"]["train_seconds"])
    assert report["theta_fits"] == 5 and "fits" not in report["methods"]["clip"]["train_seconds"]
    assert "wnn_weights" in report["seconds"]
    for modality in ("rna", "protein"):  # label-free diagnostics of the main method, on held-out cells
        diag = report["diagnostics"][modality]
        assert -1 <= diag["independence_r2"] <= 1 and 0 < diag["independence_p_value"] <= 1
        assert diag["completeness_r2_joint"] <= 1
    weights = report["embedding_weights"]  # the blocks' weights in X_indiseek, as the saved model has them
    assert set(weights) == {"shared_rna", "shared_protein", "specific_rna", "specific_protein"}
    figures = {p.name for p in (out / "figures").iterdir()}
    assert {"indiseek_theta_ranking.png", "indiseek_rank_vs_wnn.png", "indiseek_rank_vs_truth.png",
            "indiseek_umaps.png", "comparison_rho.png", "comparison_ari.png"} <= figures  # fmt: skip
    result = md.read_h5mu(out / "result.h5mu")
    assert {"theta", "theta_factorizedcl", "wnn_rna_weight"} <= set(result.obs)
    assert "X_infodisen_specific_protein" in result.obsm and (out / "model" / "model.json").is_file()
    saved = IndiSeek.load(str(out / "model"), mdata=result)
    assert saved.embedding_weights == pytest.approx(weights, abs=1e-4)
