import numpy as np

from indiseek.sim import run_setting, run_sweep


def test_run_setting_record():
    rec = run_setting(2, runs=2, n=500, n_test=100, max_epochs=2, seed=0, progress_bar=False, batch_size=100)
    for key in ("setting", "method", "lambda", "runs", "importance", "importance_std", "importance_runs", "ideal"):
        assert key in rec
    assert rec["setting"] == 2 and rec["method"] == "indiseek" and rec["lambda"] == 0.1 and rec["runs"] == 2
    assert len(rec["importance"]) == 6 and len(rec["importance_std"]) == 6
    assert np.shape(rec["importance_runs"]) == (2, 6)
    assert np.isclose(sum(rec["importance"]), 1.0)
    assert np.allclose(np.sum(rec["importance_runs"], axis=1), 1.0)
    assert rec["ideal"] == [4, 5]
    assert rec["seconds"] > 0 and rec["n"] == 500 and rec["max_epochs"] == 2


def test_run_sweep_order():
    recs = run_sweep(
        1, ["indiseek", "infodisen"], [0.1, 1.0], runs=1, n=200, n_test=0, max_epochs=1, progress_bar=False
    )
    assert [(r["method"], r["lambda"]) for r in recs] == [
        ("indiseek", 0.1),
        ("indiseek", 1.0),
        ("infodisen", 0.1),
        ("infodisen", 1.0),
    ]
