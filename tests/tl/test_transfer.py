"""Label transfer: a known answer by hand, recovery of a simulated mixture, missing values, errors."""

import logging

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from mudata import MuData

from indiseek import tl


def _cells(x, labels=None, key: str = "X_rep") -> AnnData:
    x = np.asarray(x, dtype=float)
    adata = AnnData(np.zeros((len(x), 1)))
    adata.obs_names = [f"c{i}" for i in range(len(x))]
    adata.obsm[key] = x if x.ndim == 2 else x[:, None]
    if labels is not None:
        adata.obs["celltype"] = pd.Categorical(labels)
    return adata


def _mixture(n: int = 800, seed: int = 0) -> tuple[AnnData, AnnData, np.ndarray, np.ndarray]:
    """Four Gaussian clusters in 5-D split at random into reference and query; also the cluster centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(4, 5))
    truth = rng.integers(0, 4, size=n)
    x = centres[truth] + rng.normal(size=(n, 5))
    names = np.array(["B", "NK", "T", "mono"])[truth]
    in_query = rng.permutation(n) < n // 2
    reference = _cells(x[~in_query], names[~in_query])
    query = _cells(x[in_query])
    return reference, query, names[in_query], centres


def test_vote_by_hand():
    # reference a at 0, 1 and b at 3; query at 2 with 3 neighbours: weights 1/2 and 1 for a, 1 for b
    reference = _cells([0, 1, 3], ["a", "a", "b"])
    query = _cells([2])
    result = tl.transfer_labels(reference, query, "celltype", "X_rep", n_neighbors=3)
    assert result.loc["c0", "transferred_labels"] == "a"
    assert result.loc["c0", "transferred_labels_confidence"] == pytest.approx(1.5 / 2.5)
    pd.testing.assert_frame_equal(query.obs[list(result.columns)], result)


def test_exact_matches_take_the_vote():
    reference = _cells([0, 0, 0.5, 0.6], ["a", "b", "b", "b"])
    result = tl.transfer_labels(reference, _cells([0]), "celltype", "X_rep", n_neighbors=4)
    # only the two cells at distance 0 vote, equally: a tie, won by the first category
    assert result["transferred_labels"].iloc[0] == "a"
    assert result["transferred_labels_confidence"].iloc[0] == pytest.approx(0.5)


def test_recovers_the_labels_of_a_gaussian_mixture():
    reference, query, truth, _ = _mixture()
    result = tl.transfer_labels(reference, query, "celltype", "X_rep")
    assert (result["transferred_labels"].astype(str).to_numpy() == truth).mean() > 0.95
    assert list(result["transferred_labels"].cat.categories) == ["B", "NK", "T", "mono"]
    assert isinstance(query.obs["transferred_labels"].dtype, pd.CategoricalDtype)
    assert result["transferred_labels_confidence"].between(0, 1, inclusive="right").all()
    assert list(result.index) == list(query.obs_names)


def test_keeps_the_reference_categories_and_their_order():
    reference = _cells([0, 1, 5, 6], ["x", "x", "y", "y"])
    reference.obs["celltype"] = reference.obs["celltype"].cat.set_categories(["y", "unused", "x"])
    result = tl.transfer_labels(reference, _cells([0.5]), "celltype", "X_rep", n_neighbors=2)
    assert list(result["transferred_labels"].cat.categories) == ["y", "unused", "x"]
    assert result["transferred_labels"].iloc[0] == "x"


def test_confidence_is_lower_between_clusters():
    reference, _, _, centres = _mixture()
    between = [(centres[i] + centres[j]) / 2 for i in range(4) for j in range(i + 1, 4)]
    query = _cells(np.concatenate([centres, between]))
    confidence = tl.transfer_labels(reference, query, "celltype", "X_rep")["transferred_labels_confidence"]
    at_centres, at_midpoints = confidence.iloc[:4], confidence.iloc[4:]
    assert at_centres.min() > 0.95
    assert at_midpoints.mean() < at_centres.min() - 0.2


def test_missing_values(caplog):
    reference, query, truth, _ = _mixture(n=400)
    reference.obs["celltype"] = reference.obs["celltype"].astype(object)
    reference.obs.iloc[:5, 0] = np.nan  # unlabelled reference cells
    reference.obsm["X_rep"][5:8] = np.nan  # reference cells without the representation
    reference.obs.iloc[5:8, 0] = "B"  # their labels must not count
    query.obsm["X_rep"][[0, 3]] = np.nan  # query cells missing the modality
    with caplog.at_level(logging.INFO, logger="indiseek.tl._transfer"):
        result = tl.transfer_labels(reference, query, "celltype", "X_rep")
    assert "Ignoring 8 of" in caplog.text and "5 without a label" in caplog.text and "3 with NaN" in caplog.text
    assert "2 of 200 query cells have NaN" in caplog.text
    missing = result.iloc[[0, 3]]
    assert missing["transferred_labels"].isna().all() and missing["transferred_labels_confidence"].isna().all()
    assert query.obs["transferred_labels"].iloc[[0, 3]].isna().all()
    rest = result.drop(index=missing.index)
    assert rest.notna().all().all()
    keep = np.ones(len(truth), bool)
    keep[[0, 3]] = False
    assert (rest["transferred_labels"].astype(str).to_numpy() == truth[keep]).mean() > 0.95


def test_a_query_without_any_representation():
    reference, query, _, _ = _mixture(n=100)
    query.obsm["X_rep"][:] = np.nan
    result = tl.transfer_labels(reference, query, "celltype", "X_rep", key_added="pred")
    assert result["pred"].isna().all() and result["pred_confidence"].isna().all()
    assert list(result["pred"].cat.categories) == ["B", "NK", "T", "mono"]


def test_mudata_reference_and_query():
    reference, query, truth, _ = _mixture(n=400)
    ref_rna = AnnData(np.zeros((reference.n_obs, 2)), obs=reference.obs.copy())
    mref = MuData({"rna": ref_rna})
    mref.obsm["X_indiseek"] = reference.obsm["X_rep"]
    mquery = MuData({"rna": AnnData(np.zeros((query.n_obs, 2)), obs=pd.DataFrame(index=query.obs_names))})
    mquery.obsm["X_indiseek"] = query.obsm["X_rep"]
    # 'celltype' finds the reference's 'rna:celltype'
    result = tl.transfer_labels(mref, mquery, "celltype", "X_indiseek", key_added="celltype_pred")
    assert (mquery.obs["celltype_pred"].astype(str).to_numpy() == truth).mean() > 0.95
    assert result["celltype_pred"].equals(mquery.obs["celltype_pred"])
    assert "celltype_pred_confidence" in mquery.obs


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"label_key": "missing"}, KeyError, "label_key 'missing' is not a column"),
        ({"use_rep": "X_missing"}, KeyError, r"use_rep \(reference\): \.obsm\['X_missing'\] not found"),
        ({"use_rep": "X_query_only"}, KeyError, r"use_rep \(reference\): \.obsm\['X_query_only'\]"),
        ({"use_rep": "X_reference_only"}, KeyError, r"use_rep \(query\): \.obsm\['X_reference_only'\]"),
        ({"use_rep": "X_wide"}, ValueError, "use_rep: .obsm\\['X_wide'\\] has 3 columns in the reference but 2"),
        ({"n_neighbors": 500}, ValueError, "n_neighbors"),
        ({"n_neighbors": 0}, ValueError, "n_neighbors"),
        ({"key_added": 1}, TypeError, "key_added"),
        ({"use_rep": "X_inf"}, ValueError, "infinite"),
    ],
)
def test_errors_name_the_key_and_write_nothing(kwargs, error, match):
    reference, query, _, _ = _mixture(n=100)
    reference.obsm["X_reference_only"] = reference.obsm["X_rep"]
    query.obsm["X_query_only"] = query.obsm["X_rep"]
    reference.obsm["X_wide"] = np.ones((reference.n_obs, 3))
    query.obsm["X_wide"] = np.ones((query.n_obs, 2))
    reference.obsm["X_inf"] = reference.obsm["X_rep"].copy()
    reference.obsm["X_inf"][0, 0] = np.inf
    query.obsm["X_inf"] = query.obsm["X_rep"]
    before = query.obs.copy()
    arguments = {"label_key": "celltype", "use_rep": "X_rep"} | kwargs
    with pytest.raises(error, match=match):
        tl.transfer_labels(reference, query, **arguments)
    pd.testing.assert_frame_equal(query.obs, before)


def test_data_must_be_anndata_or_mudata():
    reference, query, _, _ = _mixture(n=100)
    with pytest.raises(TypeError, match="query must be"):
        tl.transfer_labels(reference, query.obsm["X_rep"], "celltype", "X_rep")
    with pytest.raises(TypeError, match="reference must be"):
        tl.transfer_labels(reference.obs, query, "celltype", "X_rep")
