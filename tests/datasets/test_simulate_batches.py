import mudata as md
import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier

from indiseek.datasets import simulate_citeseq

KW = {"n_cells": 600, "n_genes": 400, "n_proteins": 15, "n_lineages": 3, "n_types": 8, "seed": 0, "progress_bar": False}
SMALL = {
    "n_cells": 150,
    "n_genes": 60,
    "n_proteins": 8,
    "n_lineages": 2,
    "n_types": 4,
    "seed": 7,
    "progress_bar": False,
}


@pytest.fixture(scope="module")
def batched():
    return simulate_citeseq(**KW, n_batches=2)  # the default batch_effect


@pytest.fixture(scope="module")
def labels_only():
    return simulate_citeseq(**KW, n_batches=2, batch_effect=0.0)


def _counts(m):
    return m["rna"].X.toarray(), m["prot"].X


def _batch_accuracy(m):
    """Cross-validated kNN accuracy of the batch from RNA log-normalised PCs and protein CLR, as in an analysis."""
    rna, prot = _counts(m)
    pcs = PCA(20, random_state=0).fit_transform(np.log1p(1e4 * rna / rna.sum(axis=1, keepdims=True)))
    logp = np.log1p(prot)
    x = np.hstack([pcs, logp - logp.mean(axis=1, keepdims=True)])
    return cross_val_score(KNeighborsClassifier(15), x, m.obs["batch"].to_numpy(), cv=3).mean()


def test_one_batch_is_the_simulator_as_it_was():
    default = simulate_citeseq(**SMALL)
    rna, prot = (x.astype(np.int64) for x in _counts(default))
    # sums of the counts of this call before batches existed: a change of the default random stream fails here
    assert (rna.sum(), prot.sum()) == (505302, 207664)
    assert ((rna * np.arange(1, 61)).sum(), (prot * np.arange(1, 9)).sum()) == (11291079, 635063)
    assert ((rna.sum(axis=1) * np.arange(1, 151)).sum(), (prot.sum(axis=1) * np.arange(1, 151)).sum()) == (
        39176241,
        14944123,
    )
    for kwargs in ({"n_batches": 1}, {"n_batches": 1, "batch_effect": 2.0}, {"n_batches": 3, "batch_effect": 0.0}):
        other = simulate_citeseq(**SMALL, **kwargs)
        assert (other["rna"].X != default["rna"].X).nnz == 0, kwargs
        assert np.array_equal(other["prot"].X, default["prot"].X), kwargs
        assert np.array_equal(other.obsm["sim_shared"], default.obsm["sim_shared"]), kwargs
        assert list(other.obs["celltype.l2"]) == list(default.obs["celltype.l2"]), kwargs
    assert list(default.obs["batch"].cat.categories) == ["batch0"]
    assert all(np.all(f == 1.0) for f in default.uns["simulation"]["batch_factors"].values())


def test_batch_labels(batched):
    for obs in (batched.obs, batched["rna"].obs, batched["prot"].obs):
        assert obs["batch"].dtype == "category"
        assert list(obs["batch"].cat.categories) == ["batch0", "batch1"]
        assert list(obs["batch"]) == list(batched.obs["batch"])
    sizes = simulate_citeseq(301, 20, 5, 2, 4, n_batches=3, progress_bar=False).obs["batch"].value_counts()
    assert sizes.max() - sizes.min() <= 1


def test_batch_is_visible_only_with_an_effect(batched, labels_only):
    assert _batch_accuracy(batched) > 0.8
    assert _batch_accuracy(labels_only) < 0.6
    # the batch effect acts on the counts only: the latent programs and cell types are the same
    assert np.array_equal(batched.obsm["sim_shared"], labels_only.obsm["sim_shared"])
    assert list(batched.obs["celltype.l2"]) == list(labels_only.obs["celltype.l2"])


def test_cell_types_are_not_confounded_with_batch(batched):
    shares = batched.obs.groupby("batch", observed=True)["celltype.l2"].value_counts(normalize=True).unstack()
    assert 0.5 * np.abs(shares.iloc[0] - shares.iloc[1]).sum() < 0.2  # total variation distance


def test_true_factors_are_recorded_and_act_as_documented(batched):
    sim = batched.uns["simulation"]
    assert sim["n_batches"] == 2 and sim["batch_effect"] == pytest.approx(0.3)
    f = sim["batch_factors"]
    assert f["rna_gene"].shape == (2, 400) and f["protein"].shape == (2, 15)
    assert f["rna_library"].shape == f["protein_ambient"].shape == (2,)
    for factor in f.values():
        assert np.allclose(np.log(factor).mean(axis=0), 0.0)  # centred over batches on the log scale
    b = batched.obs["batch"].cat.codes.to_numpy()
    rna, prot = _counts(batched)
    total = rna.sum(axis=1)
    assert np.log(total[b == 1].mean() / total[b == 0].mean()) == pytest.approx(
        np.log(f["rna_library"][1] / f["rna_library"][0]), abs=0.1
    )
    share = rna / total[:, None]
    seen = rna.mean(axis=0) > 0.5
    gene_ratio = np.log(share[b == 1].mean(axis=0)[seen] / share[b == 0].mean(axis=0)[seen])
    assert np.corrcoef(gene_ratio, np.log(f["rna_gene"][1] / f["rna_gene"][0])[seen])[0, 1] > 0.8
    protein_ratio = np.log(prot[b == 1].mean(axis=0) / prot[b == 0].mean(axis=0))
    assert np.corrcoef(protein_ratio, np.log(f["protein"][1] / f["protein"][0]))[0, 1] > 0.8


def test_h5mu_round_trip_keeps_batches(tmp_path):
    m = simulate_citeseq(100, 30, 5, 2, 4, n_batches=2, progress_bar=False)
    m.write(tmp_path / "sim.h5mu")
    with md.set_options(pull_on_update=False):
        back = md.read_h5mu(tmp_path / "sim.h5mu")
    assert list(back.obs["batch"]) == list(m.obs["batch"])
    for key, factor in m.uns["simulation"]["batch_factors"].items():
        assert np.allclose(back.uns["simulation"]["batch_factors"][key], factor)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_batches": 0}, ValueError, "n_batches must be between 1 and 100, got 0"),
        ({"n_batches": 2.0}, TypeError, "n_batches must be an integer"),
        ({"n_batches": 101}, ValueError, "n_batches must be between 1 and 100, got 101. Every batch needs a cell"),
        ({"batch_effect": -0.1}, ValueError, "batch_effect must be >= 0"),
        ({"batch_effect": float("nan")}, ValueError, "batch_effect must be finite"),
        ({"batch_effect": "strong"}, TypeError, "batch_effect must be a number"),
    ],
)
def test_invalid_batch_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        simulate_citeseq(100, 20, 5, 2, 4, progress_bar=False, **kwargs)
