"""Batch-integration metrics against hand-computed values and brute-force implementations of their definitions."""

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from mudata import MuData
from scipy import sparse

from indiseek import tl
from indiseek.tl._integration import _neighbour_probabilities


def _adata(x, batch=None, label=None, key: str = "X_rep") -> AnnData:
    x = np.asarray(x, dtype=float)
    adata = AnnData(np.zeros((len(x), 1)))
    adata.obsm[key] = x if x.ndim == 2 else x[:, None]
    if batch is not None:
        adata.obs["batch"] = pd.Categorical(batch)
    if label is not None:
        adata.obs["celltype"] = pd.Categorical(label)
    return adata


def _silhouettes(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Rousseeuw's silhouette of every point, from the definition (0 for a point alone in its group)."""
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    s = np.zeros(len(x))
    for i in range(len(x)):
        same = (groups == groups[i]) & (np.arange(len(x)) != i)
        if not same.any():
            continue
        a = d[i, same].mean()
        b = min(d[i, groups == g].mean() for g in np.unique(groups) if g != groups[i])
        s[i] = (b - a) / max(a, b)
    return s


def _lisi_brute_force(x: np.ndarray, batch: np.ndarray, n_neighbors: int, perplexity: float) -> np.ndarray:
    """LISI one cell at a time, as Korsunsky et al. describe it: bisection on beta of exp(-beta * d)."""
    d_all = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    out = np.empty(len(x))
    for i in range(len(x)):
        order = [j for j in np.argsort(d_all[i], kind="stable") if j != i][: n_neighbors - 1]
        d = d_all[i, order]

        def entropy(beta, d=d):
            w = np.exp(-beta * d)
            p = w / w.sum()
            return -(p[p > 0] * np.log(p[p > 0])).sum(), p

        beta, lo, hi = 1.0, -np.inf, np.inf
        h, p = entropy(beta)
        for _ in range(50):
            if abs(h - np.log(perplexity)) < 1e-5:
                break
            if h > np.log(perplexity):
                lo, beta = beta, beta * 2 if np.isinf(hi) else (beta + hi) / 2
            else:
                hi, beta = beta, beta / 2 if np.isinf(lo) else (beta + lo) / 2
            h, p = entropy(beta)
        shares = np.array([p[batch[order] == b].sum() for b in np.unique(batch)])
        out[i] = 1 / (shares**2).sum()
    return out


# ------------------------------------------------------------------------------------------------ worked examples
def test_asw_worked_example():
    # one cell type, four cells on a line, batch u at 0 and 1, batch v at 3 and 4:
    # s = (3.5 - 1) / 3.5 = 5/7 at the ends, (2.5 - 1) / 2.5 = 3/5 in the middle
    adata = _adata([0, 1, 3, 4], batch=["u", "u", "v", "v"], label=["t"] * 4)
    expected = np.mean([1 - 5 / 7, 1 - 3 / 5, 1 - 3 / 5, 1 - 5 / 7])
    assert tl.batch_asw(adata, "batch", "celltype", "X_rep") == pytest.approx(expected)
    adata.obs["celltype"] = adata.obs["batch"]
    assert tl.cell_type_asw(adata, "celltype", "X_rep") == pytest.approx(
        (np.mean([5 / 7, 3 / 5, 3 / 5, 5 / 7]) + 1) / 2
    )


def test_asw_matches_the_definition_on_random_points():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(10, 2))
    batch = np.array(list("aabbbabaab"))
    label = np.array(list("xxxxxyyyyy"))
    adata = _adata(x, batch, label)
    per_label = [np.mean(1 - np.abs(_silhouettes(x[label == g], batch[label == g]))) for g in "xy"]
    assert tl.batch_asw(adata, "batch", "celltype", "X_rep") == pytest.approx(np.mean(per_label))
    assert tl.cell_type_asw(adata, "celltype", "X_rep") == pytest.approx((_silhouettes(x, label).mean() + 1) / 2)


def test_batch_asw_skips_labels_with_one_batch():
    x = [0, 1, 3, 4, 10, 11]
    adata = _adata(x, batch=["u", "u", "v", "v", "u", "u"], label=["t"] * 4 + ["w"] * 2)
    expected = np.mean([1 - 5 / 7, 1 - 3 / 5, 1 - 3 / 5, 1 - 5 / 7])  # label w (batch u only) is skipped
    assert tl.batch_asw(adata, "batch", "celltype", "X_rep") == pytest.approx(expected)
    adata.obs["batch"] = "u"
    with pytest.warns(UserWarning, match="undefined"):
        assert np.isnan(tl.batch_asw(adata, "batch", "celltype", "X_rep"))


def test_ilisi_equilateral_triangle():
    # both neighbours at the same distance: perplexity 2 gives them weight 1/2 each
    x = np.array([[0, 0], [1, 0], [0.5, np.sqrt(3) / 2]])
    adata = _adata(x, batch=["a", "a", "b"])
    result = tl.ilisi(adata, "batch", "X_rep", perplexity=2, n_neighbors=3)
    assert result["ilisi"] == pytest.approx(5 / 3)  # per cell: 2, 2, 1
    assert result["ilisi_median"] == pytest.approx(2)
    assert result["ilisi_scaled"] == pytest.approx(1)


def test_ilisi_matches_a_brute_force_implementation():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(20, 3)), rng.normal(loc=1.0, size=(20, 3))])
    batch = np.array(list("abc") * 13 + ["a"])
    adata = _adata(x, batch=batch)
    expected = _lisi_brute_force(x, batch, n_neighbors=16, perplexity=5)
    result = tl.ilisi(adata, "batch", "X_rep", perplexity=5, n_neighbors=16)
    assert result["ilisi"] == pytest.approx(expected.mean(), rel=1e-6)
    assert result["ilisi_median"] == pytest.approx(np.median(expected), rel=1e-6)
    assert result["ilisi_scaled"] == pytest.approx((np.median(expected) - 1) / 2, rel=1e-6)


def test_lisi_weights_have_the_requested_perplexity():
    rng = np.random.default_rng(1)
    distances = np.sort(rng.uniform(0, 50, size=(30, 89)), axis=1)  # far enough for exp(-d) to underflow
    p = _neighbour_probabilities(distances, perplexity=30)
    entropy = -(p * np.log(np.where(p > 0, p, 1))).sum(axis=1)
    np.testing.assert_allclose(np.exp(entropy), 30, rtol=1e-4)
    np.testing.assert_allclose(p.sum(axis=1), 1)


def test_graph_connectivity_with_a_known_graph():
    # label A (cells 0-4): components {0, 1, 2} and {3, 4}: 3/5; label B (cells 5-7): one path: 1; the edge 2-5
    # between labels does not count
    edges = [(0, 1), (1, 2), (3, 4), (5, 6), (6, 7), (2, 5)]
    rows, cols = zip(*edges, strict=True)
    adata = _adata(np.zeros(8), label=list("AAAAABBB"))
    adata.obsp["connectivities"] = sparse.csr_matrix((np.ones(len(edges)), (rows, cols)), shape=(8, 8))
    assert tl.graph_connectivity(adata, "celltype", obsp_key="connectivities") == pytest.approx(0.8)


def test_graph_connectivity_from_a_representation():
    # one neighbour per cell; 0.25 -> 0.1 is one-way (0.1's nearest is 0) and still joins, as in a symmetric graph
    x = [0, 0.1, 0.25, 10, 10.1, 5, 5.1, 5.25]
    adata = _adata(x, label=list("AAAAABBB"))
    assert tl.graph_connectivity(adata, "celltype", use_rep="X_rep", n_neighbors=2) == pytest.approx(0.8)
    # edges between labels do not join a label's pieces: 10's three nearest others are 10.1 and two B cells
    assert tl.graph_connectivity(adata, "celltype", use_rep="X_rep", n_neighbors=4) == pytest.approx(0.8)
    # six others reach 0.25 from 10
    assert tl.graph_connectivity(adata, "celltype", use_rep="X_rep", n_neighbors=7) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------------- extremes
def _two_batches(mixed: bool, n: int = 60, seed: int = 0) -> AnnData:
    """Two cell types far apart; within each, batches share the same points (mixed) or sit at two far points."""
    rng = np.random.default_rng(seed)
    blocks, batch, label = [], [], []
    for t, centre in enumerate((0.0, 100.0)):
        points = centre + rng.normal(size=(n, 2))
        for b in ("b1", "b2"):
            offset = 0.0 if mixed else (0.0 if b == "b1" else 30.0)
            # separated batches: every cell of a batch at one point, so silhouettes are exactly 1
            blocks.append(points + offset if mixed else np.full((n, 2), centre + offset))
            batch += [b] * n
            label += [f"t{t}"] * n
    return _adata(np.concatenate(blocks), batch=batch, label=label)


def test_extremes_of_batch_mixing():
    n = 60
    mixed, separated = _two_batches(True, n), _two_batches(False, n)
    # mixed: each cell's own batch holds the same points but itself, so s = (n - 1) / n - 1 = -1/n exactly
    assert tl.batch_asw(mixed, "batch", "celltype", "X_rep") == pytest.approx(1 - 1 / n)
    assert tl.batch_asw(separated, "batch", "celltype", "X_rep") == pytest.approx(0)
    # mixed: a cell's twin in the other batch is its nearest neighbour, so its neighbourhood leans slightly that way
    lisi_mixed = tl.ilisi(mixed, "batch", "X_rep")
    lisi_separated = tl.ilisi(separated, "batch", "X_rep")
    assert lisi_mixed["ilisi_scaled"] > 0.9 and lisi_mixed["ilisi"] > 1.9
    assert lisi_separated["ilisi"] == pytest.approx(1) and lisi_separated["ilisi_scaled"] == pytest.approx(0)


def test_integration_metrics_table_compares_representations():
    mixed = _two_batches(True)
    mixed.obsm["X_separated"] = _two_batches(False).obsm["X_rep"]
    table = tl.integration_metrics(mixed, "batch", "celltype", use_rep=["X_rep", "X_separated"], perplexity=10)
    assert list(table.index) == ["X_rep", "X_separated"] and table.index.name == "use_rep"
    assert list(table.columns) == ["batch_asw", "ilisi", "ilisi_scaled", "graph_connectivity", "cell_type_asw"]
    for column in ("batch_asw", "ilisi", "ilisi_scaled"):
        assert table.loc["X_rep", column] > table.loc["X_separated", column]
    assert table.loc["X_rep", "batch_asw"] == pytest.approx(tl.batch_asw(mixed, "batch", "celltype", "X_rep"))
    assert table.loc["X_rep", "cell_type_asw"] == pytest.approx(tl.cell_type_asw(mixed, "celltype", "X_rep"))
    assert table.loc["X_rep", "graph_connectivity"] == pytest.approx(1.0)
    # separated: each type is two far blobs of identical points, each blob its own component: 1/2
    assert table.loc["X_separated", "graph_connectivity"] == pytest.approx(0.5)
    assert table["cell_type_asw"].between(0.5, 1).all()
    single = tl.integration_metrics(mixed, "batch", "celltype", use_rep="X_rep", perplexity=10)
    pd.testing.assert_frame_equal(single, table.loc[["X_rep"]])


# ------------------------------------------------------------------------------------------------------ MuData
def test_mudata_with_modality_columns():
    adata = _two_batches(True, n=20)
    rna = AnnData(np.zeros((adata.n_obs, 2)), obs=adata.obs.copy())
    prot = AnnData(np.zeros((adata.n_obs, 2)), obs=adata.obs[["batch"]].copy())
    prot.var_names = ["p0", "p1"]
    mdata = MuData({"rna": rna, "prot": prot})
    mdata.obsm["X_rep"] = adata.obsm["X_rep"]
    expected = tl.batch_asw(adata, "batch", "celltype", "X_rep")
    assert tl.batch_asw(mdata, "rna:batch", "rna:celltype", "X_rep") == pytest.approx(expected)
    assert tl.batch_asw(mdata, "batch", "celltype", "X_rep") == pytest.approx(expected)  # rna:batch == prot:batch
    mdata.obs["prot:batch"] = mdata.obs["prot:batch"].cat.rename_categories({"b1": "x1", "b2": "x2"})
    with pytest.raises(KeyError, match=r"batch_key 'batch'.*\['rna:batch', 'prot:batch'\]"):
        tl.batch_asw(mdata, "batch", "celltype", "X_rep")
    table = tl.integration_metrics(mdata, "rna:batch", "celltype", use_rep="X_rep", perplexity=5)
    assert table.loc["X_rep", "graph_connectivity"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------------ errors
@pytest.fixture
def mixed() -> AnnData:
    return _two_batches(True, n=20)


def test_errors_name_the_argument(mixed):
    with pytest.raises(KeyError, match="batch_key 'missing'.*Pass as batch_key the column that holds the cells' batch"):
        tl.batch_asw(mixed, "missing", "celltype", "X_rep")
    with pytest.raises(KeyError, match="label_key 'missing'.*Pass as label_key the column that holds the cells' types"):
        tl.cell_type_asw(mixed, "missing", "X_rep")
    with pytest.raises(KeyError, match=r"use_rep: \.obsm\['X_missing'\] not found"):
        tl.ilisi(mixed, "batch", "X_missing", perplexity=5)
    with pytest.raises(TypeError, match="use_rep must be"):
        tl.cell_type_asw(mixed, "celltype", 3)
    with pytest.raises(ValueError, match="perplexity"):
        tl.ilisi(mixed, "batch", "X_rep", perplexity=10, n_neighbors=10)
    with pytest.raises(ValueError, match="n_neighbors must be at most the number of cells"):
        tl.ilisi(mixed, "batch", "X_rep")  # 90 neighbours, 80 cells
    with pytest.raises(ValueError, match="exactly one of use_rep"):
        tl.graph_connectivity(mixed, "celltype")
    with pytest.raises(KeyError, match="obsp_key"):
        tl.graph_connectivity(mixed, "celltype", obsp_key="connectivities")
    with pytest.raises(TypeError, match="data must be"):
        tl.batch_asw(mixed.obsm["X_rep"], "batch", "celltype", "X_rep")
    with pytest.raises(KeyError, match="use_rep: .*'X_missing'"):
        tl.integration_metrics(mixed, "batch", "celltype", use_rep=["X_rep", "X_missing"], perplexity=5)
    with pytest.raises(ValueError, match="more than once"):
        tl.integration_metrics(mixed, "batch", "celltype", use_rep=["X_rep", "X_rep"], perplexity=5)
    with pytest.raises(ValueError, match="graph_neighbors"):
        tl.integration_metrics(mixed, "batch", "celltype", use_rep="X_rep", perplexity=5, graph_neighbors=500)
    mixed.obs["celltype"] = "t"
    with pytest.raises(ValueError, match="at least 2 labels"):
        tl.cell_type_asw(mixed, "celltype", "X_rep")


def test_a_representation_with_nan_rows_is_an_error(mixed):
    mixed.obsm["X_rep"][[3, 7]] = np.nan
    for call in (
        lambda: tl.batch_asw(mixed, "batch", "celltype", "X_rep"),
        lambda: tl.ilisi(mixed, "batch", "X_rep", perplexity=5),
        lambda: tl.graph_connectivity(mixed, "celltype", use_rep="X_rep"),
        lambda: tl.cell_type_asw(mixed, "celltype", "X_rep"),
        lambda: tl.integration_metrics(mixed, "batch", "celltype", use_rep="X_rep", perplexity=5),
    ):
        with pytest.raises(ValueError, match=r"use_rep: \.obsm\['X_rep'\] contains NaN .* \(in 2 of 80 cells\)"):
            call()
