import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from mudata import MuData

from indiseek.tl._theta import theta_scores


def planted_embeddings(n_per_type: int = 30, seed: int = 0) -> MuData:
    """Types A, B separate in the RNA-specific features only; C, D in the protein-specific features only."""
    rng = np.random.default_rng(seed)
    types = np.repeat(["A", "B", "C", "D"], n_per_type)
    centre_rna = {"A": (0, 0), "B": (10, 0), "C": (0, 10), "D": (0, 10)}
    centre_protein = {"A": (0, 0), "B": (0, 0), "C": (10, 0), "D": (0, 10)}
    z_rna = np.array([centre_rna[t] for t in types], float) + rng.normal(size=(len(types), 2))
    z_protein = np.array([centre_protein[t] for t in types], float) + rng.normal(size=(len(types), 2))
    obs = pd.DataFrame(
        {"celltype.l2": pd.Categorical(types), "celltype.l1": np.where(np.isin(types, ["A", "B"]), "AB", "CD")},
        index=[f"cell{i}" for i in range(len(types))],
    )
    index = pd.DataFrame(index=obs.index)
    rna = AnnData(rng.poisson(1, size=(len(types), 5)).astype(np.float32), obs=index.copy())
    prot = AnnData(rng.poisson(5, size=(len(types), 3)).astype(np.float32), obs=index.copy())
    prot.var_names = ["CD3", "CD4", "CD8"]
    mdata = MuData({"rna": rna, "prot": prot})
    mdata.obs["celltype.l1"] = obs["celltype.l1"].to_numpy()
    mdata.obs["celltype.l2"] = obs["celltype.l2"].values
    mdata.obsm["X_indiseek_specific_rna"] = z_rna
    mdata.obsm["X_indiseek_specific_protein"] = z_protein
    return mdata


@pytest.fixture
def planted() -> MuData:
    return planted_embeddings()


def test_theta_sign_follows_the_informative_modality(planted):
    assert theta_scores(planted) is None
    obs = planted.obs
    assert {"beta_rna", "beta_protein", "theta"} <= set(obs.columns)
    assert obs["beta_rna"].between(0, 1).all() and obs["beta_protein"].between(0, 1).all()
    mean_theta = obs.groupby("celltype.l2", observed=True)["theta"].mean()
    assert mean_theta["A"] > 0.5 and mean_theta["B"] > 0.5
    assert mean_theta["C"] < -0.5 and mean_theta["D"] < -0.5
    assert planted.uns["theta"]["params"]["n_neighbors"] == 10


def test_theta_formula_and_pseudocount(planted):
    theta_scores(planted, n_neighbors=5, pseudocount=1.0, key_added="t5")
    obs = planted.obs
    k_rna, k_protein = obs["t5_beta_rna"] * 5, obs["t5_beta_protein"] * 5
    np.testing.assert_allclose(obs["t5"], np.log((k_rna + 1) / (k_protein + 1)))
    np.testing.assert_allclose(k_rna, np.round(k_rna))


def test_theta_excludes_the_cell_itself():
    # two cells per label far apart: each cell's single nearest other cell shares its label
    x = np.array([[0.0], [0.1], [10.0], [10.1]])
    adata = AnnData(np.zeros((4, 1)), obsm={"X_m_specific_rna": x, "X_m_specific_protein": x[::-1].copy()})
    adata.obs["lab"] = ["a", "a", "b", "b"]
    theta_scores(adata, label_key="lab", n_neighbors=1, method="m")
    np.testing.assert_array_equal(adata.obs["beta_rna"], 1.0)
    np.testing.assert_array_equal(adata.obs["beta_protein"], 1.0)


def test_theta_missing_labels_and_copy(planted):
    planted.obs["celltype.l2"] = planted.obs["celltype.l2"].astype(object)
    planted.obs.iloc[:3, planted.obs.columns.get_loc("celltype.l2")] = np.nan
    result = theta_scores(planted, copy=True)
    assert "theta" not in planted.obs
    assert result.obs["theta"].iloc[:3].isna().all()
    assert result.obs["theta"].iloc[3:].notna().all()


def test_theta_errors(planted):
    with pytest.raises(KeyError, match="write_embeddings"):
        theta_scores(planted, method="factorizedcl")
    with pytest.raises(KeyError, match="celltype.l3"):
        theta_scores(planted, label_key="celltype.l3")
    with pytest.raises(ValueError, match="n_neighbors"):
        theta_scores(planted, n_neighbors=planted.n_obs)


def test_theta_records_separation_and_warns_when_the_labels_are_at_chance(planted, recwarn):
    theta_scores(planted)
    separation = planted.uns["theta"]["separation"]
    assert separation["chance"] == pytest.approx(4 * 30 * 29 / (120 * 119))
    for m in ("rna", "protein"):  # each modality separates two types fully and mixes the other two
        assert separation[f"beta_{m}"] == pytest.approx(planted.obs[f"beta_{m}"].mean())
        assert separation[m] > 0.5
    assert not [w for w in recwarn if "chance" in str(w.message)]

    planted.obs["shuffled"] = np.random.default_rng(0).permutation(planted.obs["celltype.l2"].to_numpy())
    with pytest.warns(UserWarning, match="much better than chance.*shared features"):
        theta_scores(planted, label_key="shuffled", key_added="t")
    assert abs(planted.uns["t"]["separation"]["rna"]) < 0.1 and abs(planted.uns["t"]["separation"]["protein"]) < 0.1


def test_theta_warns_when_one_side_is_at_chance(planted, recwarn):
    # types A-D grouped by the protein-specific features only: theta then ranks them by the protein side alone
    rng = np.random.default_rng(1)
    centre = {"A": (0, 0), "B": (10, 0), "C": (0, 10), "D": (10, 10)}
    types = planted.obs["celltype.l2"].to_numpy()
    planted.obsm["X_indiseek_specific_protein"] = np.array([centre[t] for t in types], float) + rng.normal(
        size=(len(types), 2)
    )
    planted.obsm["X_indiseek_specific_rna"] = rng.normal(size=(len(types), 2))
    with pytest.warns(
        UserWarning, match="RNA side of theta is close to chance.*X_indiseek_specific_rna.*protein-specific"
    ):
        theta_scores(planted)
    separation = planted.uns["theta"]["separation"]
    assert separation["rna"] < 0.1 < 0.5 < separation["protein"]
    assert not [w for w in recwarn if "Neither modality" in str(w.message)]


def test_theta_averages_the_counts_over_several_fits(planted):
    """A cells x fits x features array: each fit's same-label counts, averaged; one fit is the matrix itself."""
    z = {m: planted.obsm[f"X_indiseek_specific_{m}"] for m in ("rna", "protein")}
    noise = np.random.default_rng(2).normal(size=z["rna"].shape)  # a second RNA fit that lost the types
    planted.obsm["X_noise"] = noise
    planted.obsm["X_rna_fits"] = np.stack([z["rna"], noise], axis=1)
    planted.obsm["X_protein_one_fit"] = z["protein"][:, None]
    theta_scores(planted, key_added="t_one")
    theta_scores(planted, rna_key="X_noise", key_added="t_noise")
    theta_scores(planted, rna_key="X_rna_fits", protein_key="X_protein_one_fit", key_added="t_fits")
    obs = planted.obs
    np.testing.assert_allclose(obs["t_fits_beta_rna"], (obs["t_one_beta_rna"] + obs["t_noise_beta_rna"]) / 2)
    np.testing.assert_array_equal(obs["t_fits_beta_protein"], obs["t_one_beta_protein"])
    k_rna, k_protein = obs["t_fits_beta_rna"] * 10, obs["t_fits_beta_protein"] * 10
    np.testing.assert_allclose(obs["t_fits"], np.log((k_rna + 0.5) / (k_protein + 0.5)))

    planted.obsm["X_4d"] = planted.obsm["X_rna_fits"][..., None]
    with pytest.raises(ValueError, match=r"rna_key.*cells x fits x features array, got shape \(120, 2, 2, 1\)"):
        theta_scores(planted, rna_key="X_4d")
