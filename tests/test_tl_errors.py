"""Bad arguments to the tools fail early, naming the argument; undefined results come with a warning."""

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from mudata import MuData

from indiseek import tl

N = 60


def _mdata(seed: int = 0) -> MuData:
    """Three labelled groups of cells with random features in ``.obsm`` and small counts in both modalities."""
    rng = np.random.default_rng(seed)
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(N)])
    rna = AnnData(rng.poisson(2, size=(N, 20)).astype(np.float32), obs=obs.copy())
    prot = AnnData(rng.poisson(5, size=(N, 4)).astype(np.float32), obs=obs.copy())
    prot.var_names = [f"p{j}" for j in range(4)]
    mdata = MuData({"rna": rna, "prot": prot})
    mdata.obs["celltype.l2"] = pd.Categorical(np.repeat(["a", "b", "c"], N // 3))
    for kind in ("shared", "specific"):
        for m in ("rna", "protein"):
            mdata.obsm[f"X_indiseek_{kind}_{m}"] = rng.normal(size=(N, 3))
    mdata.obsm["X_const"] = np.ones((N, 2))
    return mdata


@pytest.fixture
def mdata() -> MuData:
    return _mdata()


def _grouped(mdata: MuData, score: object = None) -> MuData:
    rng = np.random.default_rng(1)
    mdata.obs["theta"] = rng.normal(size=N) if score is None else score
    mdata.obs["wnn_rna_weight"] = rng.normal(size=N)
    return mdata


# ---------------------------------------------------------------------------------------------------- theta_scores
def test_theta_all_missing_labels_is_an_error_and_writes_nothing(mdata):
    mdata.obs["celltype.l2"] = np.nan
    with pytest.raises(ValueError, match=r"\.obs\['celltype.l2'\] \(label_key\) are all missing"):
        tl.theta_scores(mdata)
    assert "theta" not in mdata.obs and "theta" not in mdata.uns


def test_theta_single_label_warns(mdata):
    mdata.obs["one"] = "a"
    with pytest.warns(UserWarning, match="single label"):
        tl.theta_scores(mdata, label_key="one")


def test_theta_zero_pseudocount_warns_about_infinite_scores(mdata):
    with pytest.warns(UserWarning, match="pseudocount=0: .* infinite or undefined"):
        tl.theta_scores(mdata, n_neighbors=1, pseudocount=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"pseudocount": "a"}, TypeError, "pseudocount must be a number"),
        ({"pseudocount": np.nan}, ValueError, "pseudocount must be finite"),
        ({"n_neighbors": 2.5}, TypeError, "n_neighbors must be an integer"),
        ({"n_neighbors": N}, ValueError, "less than the number of cells"),
        ({"label_key": ["celltype.l2"]}, TypeError, "label_key must be a string"),
        ({"label_key": "celltype"}, KeyError, r"'celltype' is not a column of .obs .*Pass as label_key the column"),
        ({"rna_key": "X_missing"}, KeyError, r"rna_key: .obsm\['X_missing'\] not found \(keys: \["),
        ({"protein_key": "X_text"}, TypeError, r"protein_key: .obsm\['X_text'\] must hold numbers"),
    ],
)
def test_theta_bad_arguments(mdata, kwargs, error, match):
    mdata.obsm["X_text"] = np.full((N, 2), "x")
    with pytest.raises(error, match=match):
        tl.theta_scores(mdata, **kwargs)
    assert "theta" not in mdata.obs


# ---------------------------------------------------------------------------------------------------- rank_correlation
def test_rank_correlation_of_a_constant_score_warns(mdata):
    with pytest.warns(UserWarning, match="rho is undefined .* mean score is the same in every group"):
        rho, _ = tl.rank_correlation(_grouped(mdata, score=1.0))
    assert np.isnan(rho)


def test_rank_correlation_of_infinite_scores_warns(mdata):
    score = np.where(np.arange(N) == 0, np.inf, 0.1 * np.arange(N))
    with pytest.warns(UserWarning, match=r"\(score_key\) has 1 infinite values"):
        tl.rank_correlation(_grouped(mdata, score=score))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"groupby": "missing"}, KeyError, "groupby 'missing' is not a column"),
        ({"groupby": "all_nan"}, ValueError, r"\(groupby\) are all missing"),
        ({"score_key": "all_nan"}, ValueError, r"\(score_key\) is all missing"),
        ({"score_key": "text"}, TypeError, r"\(score_key\) must hold numbers"),
        ({"reference_key": "text"}, TypeError, r"\(reference_key\) must hold numbers"),
        ({"reference": [0.1, 0.2]}, TypeError, "reference must be a mapping"),
        ({"reference": {"a": "high", "b": "low"}}, TypeError, "reference must map each group to a number"),
        ({"reference": {"x": 1.0, "y": 2.0}}, ValueError, "reference has no value for any group"),
    ],
)
def test_rank_correlation_bad_arguments(mdata, kwargs, error, match):
    mdata = _grouped(mdata)
    mdata.obs["all_nan"] = np.nan
    mdata.obs["text"] = "x"
    with pytest.raises(error, match=match):
        tl.rank_correlation(mdata, **kwargs)


# ---------------------------------------------------------------------------------------------------- cluster_metrics
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"label_key": "all_nan"}, ValueError, r"\(label_key\) are all missing"),
        ({"n_seeds": 0}, ValueError, "n_seeds must be >= 1"),
        ({"rep": np.zeros((N, 2))}, TypeError, "rep must be an .obsm key"),
        ({"rep": "X_missing"}, KeyError, r"rep: .obsm\['X_missing'\] not found"),
    ],
)
def test_cluster_metrics_bad_arguments(mdata, kwargs, error, match):
    mdata.obs["all_nan"] = np.nan
    with pytest.raises(error, match=match):
        tl.cluster_metrics(mdata, **{"rep": "X_indiseek_specific_rna", **kwargs})


# ---------------------------------------------------------------------------------------------------- wnn_weights
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_neighbors": N}, ValueError, f"n_neighbors must be between 2 and {N - 2}"),
        ({"n_neighbors": 1}, ValueError, "n_neighbors must be between 2"),
        ({"rna_rep": "X_missing"}, KeyError, r"rna_rep 'X_missing' is in neither .* \(keys: \["),
        ({"protein_rep": "X_nan"}, ValueError, "protein_rep: .* NaN or infinite values"),
        ({"backend": "fast"}, ValueError, "Unknown backend 'fast'"),
    ],
)
def test_wnn_weights_bad_arguments_write_nothing(mdata, kwargs, error, match):
    x = np.ones((N, 2))
    x[0, 0] = np.nan
    mdata.obsm["X_nan"] = x
    columns = list(mdata.obs.columns)
    args = {"rna_rep": "X_indiseek_specific_rna", "protein_rep": "X_indiseek_specific_protein", "backend": "exact"}
    with pytest.raises(error, match=match):
        tl.wnn_weights(mdata, **{**args, "n_neighbors": 5, **kwargs})
    assert list(mdata.obs.columns) == columns and "wnn" not in mdata.uns


def test_wnn_weights_needs_a_mudata(mdata):
    with pytest.raises(TypeError, match="mdata must be a MuData, got AnnData"):
        tl.wnn_weights(mdata["rna"])


# ---------------------------------------------------------------------------------------------------- diagnostics
def test_independence_of_constant_shared_features_warns(mdata):
    with pytest.warns(UserWarning, match=r"R\^2 is undefined .*X_const.*shared_key"):
        result = tl.independence(mdata, "X_indiseek_specific_rna", "X_const", n_neighbors=5, n_permutations=0)
    assert np.isnan(result["r2"])


def test_completeness_of_constant_inputs_warns(mdata):
    with pytest.warns(UserWarning, match=r"R\^2 is undefined .*X_const.*input_key"):
        tl.completeness(mdata, "X_const", "X_indiseek_specific_rna", "X_indiseek_shared_rna", n_neighbors=5)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_neighbors": 0}, ValueError, "n_neighbors must be >= 1"),
        ({"max_cells": 10.5}, TypeError, "max_cells must be an integer"),
        ({"n_permutations": 2.5}, TypeError, "n_permutations must be an integer"),
        ({"specific_key": np.full((N, 2), "x")}, TypeError, "specific_key array must hold numbers"),
        ({"shared_key": 3}, TypeError, "shared_key must be an .obsm key or an array"),
    ],
)
def test_independence_bad_arguments(mdata, kwargs, error, match):
    args = {"specific_key": "X_indiseek_specific_rna", "shared_key": "X_indiseek_shared_protein"}
    with pytest.raises(error, match=match):
        tl.independence(mdata, **{**args, "n_permutations": 0, **kwargs})


def test_diagnostics_bad_input_keys_write_nothing(mdata):
    with pytest.raises(TypeError, match="input_keys must be a mapping"):
        tl.diagnostics(mdata, input_keys=["rna"])
    with pytest.raises(ValueError, match="n_neighbors must be >= 1"):
        tl.diagnostics(mdata, n_neighbors=0)
    assert "diagnostics" not in mdata.uns


# ------------------------------------------------------------------------------------------------ masking_importance
@pytest.mark.parametrize(
    ("fn", "d", "match"),
    [
        (3, 2, "fn must be a callable"),
        (lambda x: x, 2.5, "d must be an integer"),
        (lambda x: np.full(x.shape, "a"), 2, "`fn` must return numbers"),
    ],
)
def test_masking_importance_bad_arguments(fn, d, match):
    with pytest.raises(TypeError, match=match):
        tl.masking_importance(fn, d, n_points=10)
