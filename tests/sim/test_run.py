import numpy as np
import pytest

from indiseek.sim import pool_records, run_setting, run_sweep


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


def test_pool_records_equals_one_longer_record():
    kwargs = dict(n=300, n_test=0, max_epochs=1, progress_bar=False, batch_size=100)
    whole = run_setting(1, runs=3, seed=0, **kwargs)
    parts = [run_setting(1, runs=1, seed=2, **kwargs), run_setting(1, runs=2, seed=0, **kwargs)]
    pooled = pool_records(parts)
    assert pooled["runs"] == 3 and pooled["seed"] == 0
    np.testing.assert_allclose(pooled["importance_runs"], whole["importance_runs"], rtol=1e-5)
    np.testing.assert_allclose(pooled["importance"], whole["importance"], rtol=1e-5)
    assert np.isclose(pooled["ideal_share"], whole["ideal_share"], rtol=1e-5)


def test_pool_records_refuses_other_cells_and_gaps():
    kwargs = dict(n=300, n_test=0, max_epochs=1, progress_bar=False, batch_size=100)
    a = run_setting(1, runs=1, seed=0, **kwargs)
    with pytest.raises(ValueError, match="differ in \\['lambda'\\]"):
        pool_records([a, run_setting(1, lambda_=1.0, runs=1, seed=1, **kwargs)])
    with pytest.raises(ValueError, match="missing seeds"):
        pool_records([a, run_setting(1, runs=1, seed=2, **kwargs)])
    with pytest.raises(ValueError, match="No records"):
        pool_records([])
