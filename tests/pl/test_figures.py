import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from matplotlib.figure import Figure
from mudata import MuData

from indiseek.pl._comparison import method_comparison
from indiseek.pl._embeddings import embeddings
from indiseek.pl._theta import rank_scatter, theta_ranking


@pytest.fixture
def mdata() -> MuData:
    """100 cells, five level-2 types in two level-1 types, embeddings of two methods, theta and WNN weights."""
    rng = np.random.default_rng(0)
    l2 = np.repeat(["CD4 T", "CD8 T", "B naive", "B memory", "Mono"], 20)
    l1 = pd.Series(l2).map({"CD4 T": "T", "CD8 T": "T", "B naive": "B", "B memory": "B", "Mono": "Mono"}).to_numpy()
    obs = pd.DataFrame(index=[f"c{i}" for i in range(len(l2))])
    rna = AnnData(rng.poisson(1, (len(l2), 4)).astype(np.float32), obs=obs.copy())
    prot = AnnData(rng.poisson(3, (len(l2), 3)).astype(np.float32), obs=obs.copy())
    prot.var_names = ["p0", "p1", "p2"]
    data = MuData({"rna": rna, "prot": prot})
    data.obs["celltype.l1"] = pd.Categorical(l1)
    data.obs["celltype.l2"] = pd.Categorical(l2)
    codes = data.obs["celltype.l2"].cat.codes.to_numpy()
    for method in ("indiseek", "clip"):
        parts = {}
        for part in ("shared_rna", "shared_protein", "specific_rna", "specific_protein"):
            parts[part] = 3.0 * np.eye(5)[codes] + rng.normal(size=(len(l2), 5))
            data.obsm[f"X_{method}_{part}"] = parts[part]
        data.obsm[f"X_{method}"] = np.hstack(list(parts.values()))
    for part in ("specific_rna", "specific_protein"):
        del data.obsm[f"X_clip_{part}"]
    data.obs["theta"] = codes - 2.0 + rng.normal(scale=0.3, size=len(l2))
    data.obs["wnn_rna_weight"] = 0.3 + 0.05 * codes + rng.normal(scale=0.02, size=len(l2))
    return data


def _written(path) -> bool:
    return path.exists() and path.stat().st_size > 1000


def test_theta_ranking(mdata, tmp_path):
    fig = theta_ranking(mdata, save=tmp_path / "ranking.png")
    assert isinstance(fig, Figure) and _written(tmp_path / "ranking.png")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    heights = [p.get_height() for p in ax.patches]
    assert len(labels) == 5 and heights == sorted(heights, reverse=True)
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"T", "B", "Mono"}
    plt.close(fig)
    _, given = plt.subplots()
    assert theta_ranking(mdata, color_by=None, ax=given) is given
    plt.close("all")


def test_rank_scatter(mdata, tmp_path):
    from indiseek.tl._metrics import rank_correlation

    rho, table = rank_correlation(mdata)
    fig = rank_scatter(table, rho=rho, save=tmp_path / "ranks.png")
    assert isinstance(fig, Figure) and _written(tmp_path / "ranks.png")
    assert f"{rho:.3f}" in fig.axes[0].get_title()
    fig2 = rank_scatter((rho, table), annotate=False)
    assert f"{rho:.3f}" in fig2.axes[0].get_title()
    with pytest.raises(KeyError, match="rank_correlation"):
        rank_scatter(pd.DataFrame({"a": [1]}))
    plt.close("all")


def test_embeddings(mdata, tmp_path):
    before = set(mdata.obsm.keys())
    fig = embeddings(mdata, save=tmp_path / "umaps.png")
    assert isinstance(fig, Figure) and _written(tmp_path / "umaps.png")
    assert len(fig.axes) >= 6  # 3 rows x 2 colour keys (plus any colour bars)
    assert set(mdata.obsm.keys()) == before
    fig = embeddings(mdata, method="clip", color="celltype.l1", rows=("rna", "all"), store=True)
    assert mdata.obsm["X_umap_clip_rna"].shape == (100, 2) and "X_umap_clip_all" in mdata.obsm
    assert "C_RNA" in fig.axes[0].get_title() and "Z_RNA" not in fig.axes[0].get_title()
    with pytest.raises(KeyError, match="write_embeddings"):
        embeddings(mdata, method="infodisen")
    plt.close("all")


def test_method_comparison(tmp_path):
    records = [
        {"method": m, "seed": s, "lambda": lam, "rho": base + 0.05 * s + 0.01 * np.log10(lam)}
        for m, base in (("indiseek", 0.8), ("factorizedcl", 0.5), ("infodisen", 0.4))
        for s in range(3)
        for lam in (0.1, 1.0, 10.0)
    ]
    fig = method_comparison(records, save=tmp_path / "bars.png")
    assert isinstance(fig, Figure) and _written(tmp_path / "bars.png")
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["IndiSeek", "FactorizedCL", "InfoDisen"]
    fig = method_comparison(pd.DataFrame(records), x="lambda", save=tmp_path / "lines.png")
    assert _written(tmp_path / "lines.png") and fig.axes[0].get_xscale() == "log"
    with pytest.raises(KeyError, match="ari"):
        method_comparison(records, metric="ari")
    plt.close("all")
