import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from mudata import MuData

from indiseek.pl._embeddings import _subsample, embeddings


@pytest.fixture
def mdata() -> MuData:
    """120 cells of four types (60, 30, 20, 10 cells) with stored shared and specific features."""
    rng = np.random.default_rng(0)
    l2 = np.repeat(["A", "B", "C", "D"], [60, 30, 20, 10])
    obs = pd.DataFrame(index=[f"c{i}" for i in range(len(l2))])
    data = MuData({"rna": AnnData(obs=obs.copy()), "prot": AnnData(obs=obs.copy())})
    data.obs["celltype.l2"] = pd.Categorical(l2)
    data.obs["score"] = rng.normal(size=len(l2))
    codes = data.obs["celltype.l2"].cat.codes.to_numpy()
    for part in ("shared_rna", "specific_rna"):
        data.obsm[f"X_indiseek_{part}"] = 3.0 * np.eye(4)[codes] + rng.normal(size=(len(l2), 4))
    return data


def test_subsample_is_stratified_seeded_and_exact():
    labels = pd.Series(np.repeat(["a", "b", "c", None], [700, 200, 97, 3]))
    cells = _subsample(labels, 1000, 100, random_state=1)
    assert len(cells) == 100 and len(np.unique(cells)) == 100 and (np.diff(cells) > 0).all()
    counts = labels.iloc[cells].value_counts(dropna=False)
    assert counts["a"] == 70 and counts["b"] == 20 and counts["c"] == 10  # 9.7 rounds up by largest remainder
    assert np.array_equal(cells, _subsample(labels, 1000, 100, random_state=1))
    assert not np.array_equal(cells, _subsample(labels, 1000, 100, random_state=2))
    assert len(_subsample(None, 1000, 100)) == 100
    assert np.array_equal(_subsample(labels, 1000, 1000), np.arange(1000))


def test_embeddings_lays_out_at_most_max_cells(mdata):
    fig = embeddings(mdata, color=["score", "celltype.l2"], rows=("rna",), max_cells=40, store=True)
    assert fig._suptitle is not None
    note = fig._suptitle.get_text()
    assert "40 of 120 cells" in note and "stratified by celltype.l2" in note
    coords = mdata.obsm["X_umap_indiseek_rna"]
    drawn = ~np.isnan(coords).any(axis=1)
    assert coords.shape == (120, 2) and drawn.sum() == 40
    assert mdata.obs["celltype.l2"][drawn].value_counts().to_dict() == {"A": 20, "B": 10, "C": 7, "D": 3}
    embeddings(mdata, color="celltype.l2", rows=("rna",), max_cells=40, store=True)
    assert np.array_equal(~np.isnan(mdata.obsm["X_umap_indiseek_rna"]).any(axis=1), drawn)  # same seed, same cells
    plt.close("all")


def test_embeddings_max_cells_none_or_above_n_draws_every_cell(mdata):
    for max_cells in (None, 120):
        fig = embeddings(mdata, color="celltype.l2", rows=("rna",), max_cells=max_cells, store=True)
        assert fig._suptitle is None
        assert np.isfinite(mdata.obsm["X_umap_indiseek_rna"]).all()
    with pytest.raises(ValueError, match="max_cells"):
        embeddings(mdata, color="celltype.l2", max_cells=1)
    with pytest.raises(TypeError, match="max_cells"):
        embeddings(mdata, color="celltype.l2", max_cells=10.5)
    plt.close("all")
