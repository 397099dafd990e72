import mudata as md
import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from sklearn.decomposition import PCA
from sklearn.model_selection import cross_val_predict
from sklearn.neighbors import KNeighborsClassifier

import indiseek
from indiseek.datasets import simulate_citeseq


@pytest.fixture(scope="module")
def mdata():
    return simulate_citeseq(
        n_cells=400, n_genes=150, n_proteins=12, n_lineages=3, n_types=8, seed=3, progress_bar=False
    )


def test_shapes_and_names(mdata):
    assert set(mdata.mod) == {"rna", "prot"}
    assert mdata["rna"].shape == (400, 150)
    assert mdata["prot"].shape == (400, 12)
    assert mdata["rna"].var_names[0] == "gene_0001"
    assert mdata["prot"].var_names[-1] == "prot_12"
    assert mdata.obs_names[0] == "cell_00001"
    assert list(mdata["rna"].obs_names) == list(mdata["prot"].obs_names) == list(mdata.obs_names)


def test_cell_types(mdata):
    sim = mdata.uns["simulation"]
    for obs in (mdata.obs, mdata["rna"].obs, mdata["prot"].obs):
        for key in ("celltype.l1", "celltype.l2"):
            assert obs[key].dtype == "category"
        assert obs["celltype.l1"].nunique() == 3
        assert obs["celltype.l2"].nunique() == 8
        # each level-2 type belongs to one lineage
        pairs = obs.groupby("celltype.l2", observed=True)["celltype.l1"].nunique()
        assert (pairs == 1).all()
        lineage = obs.groupby("celltype.l2", observed=True)["celltype.l1"].first().astype(str).to_dict()
        assert lineage == sim["lineage"]
    sizes = mdata.obs.groupby("celltype.l1", observed=True)["celltype.l2"].nunique()
    assert sizes.max() - sizes.min() <= 1


def test_ground_truth(mdata):
    s = mdata.uns["simulation"]["rna_specificity"]
    assert set(s) == set(mdata.obs["celltype.l2"].cat.categories)
    assert all(0.0 <= v <= 1.0 for v in s.values())
    assert np.allclose(mdata.obs["rna_specificity"], mdata.obs["celltype.l2"].astype(str).map(s).astype(float))
    assert mdata.obsm["sim_shared"].shape == (400, mdata.uns["simulation"]["n_shared_programs"])


def test_counts(mdata):
    rna, prot = mdata["rna"].X, mdata["prot"].X
    assert sparse.issparse(rna) and rna.format == "csr"
    assert isinstance(prot, np.ndarray)
    for x in (rna.data, prot):
        assert (x >= 0).all() and np.array_equal(x, np.round(x))
    assert (np.asarray(rna.sum(axis=1)) > 0).all()
    assert (prot.sum(axis=1) > 0).all()
    assert 1500 < np.median(np.asarray(rna.sum(axis=1))) < 6000


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_protein_counts_on_the_scale_of_real_adt_data(seed):
    # 10x PBMC CITE-seq runs (../shared/data/real): max 4e3-1e4, median per-cell total 3e3-6e3 over 14-29
    # antibodies, positive markers in the hundreds to thousands, negative ones in the tens
    prot = simulate_citeseq(500, 50, 25, seed=seed, progress_bar=False)["prot"].X
    assert prot.max() < 1e5
    assert 1000 < np.median(prot.sum(axis=1)) < 20000
    q05, q95 = np.quantile(prot, [0.05, 0.95], axis=0)
    assert np.median(q05) < 50
    assert q95.max() > 300
    assert np.median(np.log10((q95 + 1) / (q05 + 1))) > 0.8  # markers separate positive from negative cells


def test_protein_foreground_sets_the_scale():
    kw = {"n_cells": 300, "n_genes": 50, "n_proteins": 10, "seed": 0, "progress_bar": False}
    low, high = simulate_citeseq(protein_foreground=50.0, **kw), simulate_citeseq(protein_foreground=5000.0, **kw)
    assert (low["rna"].X != high["rna"].X).nnz == 0  # the RNA counts do not depend on the protein settings
    assert np.median(high["prot"].X.sum(axis=1)) > 5 * np.median(low["prot"].X.sum(axis=1))
    assert high.uns["simulation"]["protein_foreground"] == 5000.0
    with pytest.raises(ValueError, match="protein_foreground"):
        simulate_citeseq(100, 50, 5, protein_foreground=0.0)


def test_no_empty_cells_when_depth_is_tiny():
    m = simulate_citeseq(200, 20, 5, 2, 4, library_size_median=1.0, protein_background=0.01, progress_bar=False)
    assert (np.asarray(m["rna"].X.sum(axis=1)) > 0).all()
    assert (m["prot"].X.sum(axis=1) > 0).all()


def test_seed_reproducible():
    kw = {"n_cells": 100, "n_genes": 50, "n_proteins": 6, "n_lineages": 2, "n_types": 4, "progress_bar": False}
    a, b, c = simulate_citeseq(seed=1, **kw), simulate_citeseq(seed=1, **kw), simulate_citeseq(seed=2, **kw)
    assert (a["rna"].X != b["rna"].X).nnz == 0
    assert np.array_equal(a["prot"].X, b["prot"].X)
    assert a.uns["simulation"]["rna_specificity"] == b.uns["simulation"]["rna_specificity"]
    assert not np.array_equal(a["prot"].X, c["prot"].X)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="n_lineages"):
        simulate_citeseq(100, 50, 5, n_lineages=4, n_types=3)
    with pytest.raises(ValueError, match="n_cells"):
        simulate_citeseq(0)


def test_h5mu_round_trip(mdata, tmp_path):
    path = tmp_path / "sim.h5mu"
    mdata.write(path)
    with md.set_options(pull_on_update=False):
        back = md.read_h5mu(path)
    assert back.uns["simulation"]["rna_specificity"] == pytest.approx(mdata.uns["simulation"]["rna_specificity"])
    assert back.uns["simulation"]["lineage"] == mdata.uns["simulation"]["lineage"]
    assert np.array_equal(back["prot"].X, mdata["prot"].X)
    assert (back["rna"].X != mdata["rna"].X).nnz == 0
    assert list(back.obs["celltype.l2"]) == list(mdata.obs["celltype.l2"])


def _within_lineage_accuracy(x, l1, l2):
    """Per-cell correctness of a cross-validated kNN classifier of level-2 types within each lineage."""
    pred = np.empty(len(l2), dtype=object)
    for lineage in np.unique(l1):
        idx = l1 == lineage
        pred[idx] = cross_val_predict(KNeighborsClassifier(15), x[idx], l2[idx], cv=5)
    return pred == l2


def test_specificity_is_visible_without_learning():
    m = simulate_citeseq(1500, 400, 25, n_lineages=2, n_types=10, seed=0, progress_bar=False)
    counts = m["rna"].X.toarray()
    lognorm = np.log1p(1e4 * counts / counts.sum(axis=1, keepdims=True))
    rna = PCA(30, random_state=0).fit_transform(lognorm)
    logp = np.log1p(m["prot"].X)
    prot = logp - logp.mean(axis=1, keepdims=True)
    l1, l2 = m.obs["celltype.l1"].to_numpy(), m.obs["celltype.l2"].to_numpy()
    high = m.obs["rna_specificity"].to_numpy() > 0.5
    rna_ok, prot_ok = _within_lineage_accuracy(rna, l1, l2), _within_lineage_accuracy(prot, l1, l2)
    assert rna_ok[high].mean() > rna_ok[~high].mean() + 0.05
    assert prot_ok[~high].mean() > prot_ok[high].mean() + 0.05


def test_crossed_types_make_the_specific_programs_independent_of_the_shared_ones():
    kw = {"n_cells": 1500, "n_genes": 100, "n_proteins": 10, "n_lineages": 3, "n_types": 12, "progress_bar": False}
    leak = {}
    for crossed in (False, True):
        m = simulate_citeseq(seed=0, crossed_types=crossed, **kw)
        leak[crossed] = indiseek.tl.independence(m, "sim_rna_specific", "sim_shared", seed=0)["r2"]
    assert leak[False] > 0.2 and leak[True] < 0.05
    s = m.uns["simulation"]["rna_specificity"]
    assert m.uns["simulation"]["crossed_types"] is True
    assert s["T_2"] == s["B_2"] == s["Mono_2"]  # the same states in every lineage
    offsets = pd.DataFrame(m.obsm["sim_rna_specific"]).groupby(m.obs["celltype.l2"].to_numpy()).mean()
    assert np.abs(offsets.loc["T_3"] - offsets.loc["Mono_3"]).max() < 0.5  # same offset, up to cell noise
    with pytest.raises(ValueError, match="n_types=12"):
        simulate_citeseq(seed=0, crossed_types=True, **(kw | {"n_types": 13}))
