import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from indiseek.tl._metrics import cluster_metrics, rank_correlation


def _grouped(n_groups: int = 6, n_per: int = 10, seed: int = 0) -> AnnData:
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"t{g}" for g in range(n_groups)], n_per)
    level = np.repeat(np.arange(n_groups, dtype=float), n_per)
    adata = AnnData(np.zeros((len(groups), 1)))
    adata.obs["celltype.l2"] = pd.Categorical(groups)
    adata.obs["theta"] = level + rng.normal(scale=0.1, size=len(groups))
    adata.obs["wnn_rna_weight"] = 0.1 + 0.1 * level + rng.normal(scale=0.01, size=len(groups))
    return adata


def test_rank_correlation_recovers_planted_order():
    adata = _grouped()
    rho, table = rank_correlation(adata)
    assert rho == pytest.approx(1.0)
    assert list(table.columns) == ["mean_score", "mean_reference", "score_rank", "reference_rank", "n_cells"]
    assert table.index[0] == "t5" and table.loc["t5", "score_rank"] == 1
    assert (table["score_rank"] == table["reference_rank"]).all()
    assert (table["n_cells"] == 10).all()


def test_rank_correlation_with_a_mapping_reference(caplog):
    adata = _grouped()
    truth = {f"t{g}": -float(g) for g in range(5)}  # reversed order; t5 has no reference value
    rho, table = rank_correlation(adata, reference=truth)
    assert rho == pytest.approx(-1.0)
    assert "t5" not in table.index and len(table) == 5
    assert "t5" in caplog.text


def test_rank_correlation_ignores_unlabelled_cells_and_nan_scores():
    adata = _grouped()
    adata.obs["celltype.l2"] = adata.obs["celltype.l2"].astype(object)
    adata.obs.iloc[0, 0] = np.nan
    adata.obs.loc[adata.obs_names[1], "theta"] = np.nan
    rho, table = rank_correlation(adata)
    assert rho == pytest.approx(1.0)
    assert table.loc["t0", "n_cells"] == 9


def test_rank_correlation_errors():
    adata = _grouped()
    with pytest.raises(KeyError, match="theta_scores"):
        rank_correlation(adata, score_key="missing")
    with pytest.raises(KeyError, match="wnn_weights"):
        rank_correlation(adata, reference_key="missing")


def test_cluster_metrics_separated_and_random():
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b", "c"], 40)
    centres = {"a": (0, 0), "b": (20, 0), "c": (0, 20)}
    adata = AnnData(np.zeros((len(labels), 1)))
    adata.obs["celltype.l2"] = labels
    adata.obsm["X_blobs"] = np.array([centres[c] for c in labels], float) + rng.normal(size=(len(labels), 2))
    adata.obsm["X_random"] = rng.normal(size=(len(labels), 2))
    good = cluster_metrics(adata, "X_blobs", n_seeds=3)
    assert good["k"] == 3 and good["ari"] > 0.95 and good["nmi"] > 0.9
    assert set(good) == {"ari", "nmi", "ari_std", "nmi_std", "k", "n_cells"}
    bad = cluster_metrics(adata, "X_random", n_seeds=3)
    assert abs(bad["ari"]) < 0.1 and bad["nmi"] < 0.15


def test_cluster_metrics_drops_unlabelled_cells():
    adata = AnnData(np.zeros((6, 1)))
    adata.obs["lab"] = ["a", "a", "b", "b", None, None]
    adata.obsm["X"] = np.array([[0.0], [0.1], [5.0], [5.1], [9.0], [-9.0]])
    result = cluster_metrics(adata, "X", label_key="lab", n_seeds=2)
    assert result["k"] == 2 and result["n_cells"] == 4 and result["ari"] == pytest.approx(1.0)
