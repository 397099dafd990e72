import numpy as np
import pandas as pd
import pytest
from anndata import AnnData
from mudata import MuData, read_h5mu
from sklearn.metrics import r2_score

from indiseek.tl import completeness, diagnostics, independence
from indiseek.tl._diagnostics import pooled_r2

N = 500


def _adata(**obsm: np.ndarray) -> AnnData:
    n = next(iter(obsm.values())).shape[0]
    return AnnData(np.zeros((n, 1), dtype=np.float32), obsm=obsm)


@pytest.fixture(scope="module")
def arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    c = rng.normal(size=(N, 2))
    z = rng.normal(size=(N, 2))
    return {
        "c": c,
        "z_independent": rng.normal(size=(N, 3)),
        # an invertible function of C, plus noise: C can be read back from Z
        "z_dependent": np.column_stack([np.tanh(c[:, 0]), c[:, 1] ** 3, c[:, 0] * c[:, 1]])
        + 0.05 * rng.normal(size=(N, 3)),
        # dependent, but the sign of C is lost: R^2 cannot see it, the kernel test can
        "z_square": c[:, :1] ** 2 + 0.05 * rng.normal(size=(N, 1)),
        "c_first": c[:, :1].copy(),
        # C in a direction of Z with little variance: neighbours in Z cannot find it, a linear map can
        "z_hidden": np.column_stack([z[:, 0] + 0.05 * c[:, 0], z[:, 0] - 0.05 * c[:, 0], z[:, 1]]),
        "z": z,
        # X = g(Z, C) exactly, half of its columns from each, one product of both
        "x": np.column_stack([c[:, 0], c[:, 1], z[:, 0], np.sin(2 * z[:, 1]), c[:, 0] * z[:, 0]]),
    }


@pytest.fixture
def data(arrays) -> AnnData:
    return _adata(**arrays)


def test_pooled_r2_is_variance_weighted():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(50, 3)) * [1.0, 5.0, 0.1]
    pred = y + rng.normal(size=y.shape)
    assert pooled_r2(y, pred) == pytest.approx(r2_score(y, pred, multioutput="variance_weighted"))
    assert pooled_r2(y, np.broadcast_to(y.mean(axis=0), y.shape)) == pytest.approx(0.0)


@pytest.mark.parametrize("statistic", ["hsic", "dcor"])
def test_independent_features(data, statistic):
    result = independence(data, "z_independent", "c", statistic=statistic, n_permutations=99)
    assert set(result) >= {"r2", statistic, "p_value", "n_test", "n_dependence"}
    assert abs(result["r2"]) < 0.15  # about -1/15 for pure noise
    assert abs(result["r2_linear"]) < 0.05
    assert result["p_value"] > 0.05
    assert result["n_test"] == 100 and result["n_dependence"] == N


@pytest.mark.parametrize("statistic", ["hsic", "dcor"])
def test_dependent_features(data, statistic):
    result = independence(data, "z_dependent", "c", statistic=statistic, n_permutations=99)
    assert result["r2"] > 0.8
    assert result["p_value"] == pytest.approx(1 / 100)  # no permutation comes close
    assert result[statistic] > 0


def test_kernel_test_sees_what_r2_misses(data):
    result = independence(data, "z_square", "c_first", n_permutations=99)
    assert result["r2"] < 0.1
    assert result["p_value"] < 0.05
    indep = independence(data, "z_independent", "c", n_permutations=99)
    assert result["hsic_normalized"] > 5 * indep["hsic_normalized"]


def test_linear_r2_sees_a_direction_of_little_variance(data):
    result = independence(data, "z_hidden", "c_first", n_permutations=0)
    assert result["r2"] < 0.3
    assert result["r2_linear"] > 0.95


def test_subsample_permutations_and_seed(data, arrays):
    a = independence(data, "z_dependent", "c", n_permutations=0, max_cells=100, seed=3)
    assert a["n_dependence"] == 100 and np.isnan(a["p_value"])
    assert a == pytest.approx(
        independence(data, "z_dependent", "c", n_permutations=0, max_cells=100, seed=3), nan_ok=True
    )
    # arrays are accepted in place of keys
    b = independence(data, arrays["z_dependent"], arrays["c"], n_permutations=0, max_cells=100, seed=3)
    assert b == pytest.approx(a, nan_ok=True)


def test_constant_features_are_independent(data):
    data.obsm["z_constant"] = np.ones((N, 2))
    result = independence(data, "z_constant", "c", n_permutations=20)
    assert result["hsic"] == pytest.approx(0.0, abs=1e-12)
    assert result["p_value"] == 1.0


@pytest.mark.parametrize("regressor", ["knn", "ridge"])
def test_completeness_known_answer(data, regressor):
    result = completeness(data, "x", "z", "c", regressor=regressor)
    assert set(result) == {"r2_joint", "r2_shared", "r2_specific", "n_test"}
    assert result["r2_joint"] > 0.65
    assert result["r2_joint"] > result["r2_shared"] + 0.2
    assert result["r2_joint"] > result["r2_specific"] + 0.2
    assert 0.2 < result["r2_shared"] < 0.6  # C makes two of the five unit-variance columns


def test_completeness_of_a_linear_map_by_ridge(data, arrays):
    data.obsm["x_linear"] = np.concatenate([arrays["z"], arrays["c"]], axis=1) @ np.array(
        [[1.0, 0.5, 0.0], [0.0, 1.0, 2.0], [0.3, 0.0, 1.0], [1.0, 1.0, 1.0]]
    )
    result = completeness(data, "x_linear", "z", "c", regressor="ridge")
    assert result["r2_joint"] > 0.999
    assert result["r2_shared"] < 0.9


def test_errors(data, arrays):
    with pytest.raises(KeyError, match="write_embeddings"):
        independence(data, "X_missing", "c")
    with pytest.raises(KeyError, match="prepared inputs"):
        completeness(data, "X_pca", "z", "c")
    with pytest.raises(ValueError, match="same order"):
        independence(data, arrays["z"][:-1], "c")
    with pytest.raises(ValueError, match="same order"):
        completeness(data, "x", "z", arrays["c"][:10])
    bad = arrays["z"].copy()
    bad[3, 1] = np.nan
    data.obsm["z_nan"] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        independence(data, "z_nan", "c")
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        completeness(data, "x", bad, "c")
    with pytest.raises(ValueError, match="test_size"):
        independence(data, "z", "c", test_size=1.0)
    with pytest.raises(ValueError, match="n_neighbors"):
        independence(data[:18].copy(), "z", "c")  # 14 training cells for 15 neighbours
    with pytest.raises(ValueError, match="statistic"):
        independence(data, "z", "c", statistic="mmd")
    with pytest.raises(ValueError, match="regressor"):
        completeness(data, "x", "z", "c", regressor="forest")


def _model_output(arrays) -> MuData:
    """Z_rna independent of C_protein; Z_protein = f(C_rna) + noise (a leak)."""
    rng = np.random.default_rng(2)
    c_rna = arrays["c"] + 0.1 * rng.normal(size=(N, 2))
    obs = pd.DataFrame(index=[f"cell{i}" for i in range(N)])
    rna, prot = AnnData(np.zeros((N, 2)), obs=obs.copy()), AnnData(np.zeros((N, 2)), obs=obs.copy())
    prot.var_names = ["CD3", "CD4"]
    mdata = MuData({"rna": rna, "prot": prot})
    mdata.obsm["X_indiseek_shared_rna"] = c_rna
    mdata.obsm["X_indiseek_shared_protein"] = arrays["c"]
    mdata.obsm["X_indiseek_specific_rna"] = arrays["z"]
    mdata.obsm["X_indiseek_specific_protein"] = arrays["z_dependent"]
    mdata.obsm["rna_inputs"] = np.column_stack([c_rna, arrays["z"]])
    mdata.obsm["protein_inputs"] = np.column_stack([arrays["c"], arrays["z_dependent"]])
    return mdata


def test_diagnostics_writes_uns_and_round_trips(arrays, tmp_path):
    mdata = _model_output(arrays)
    keys = {"rna": "rna_inputs", "protein": "protein_inputs"}
    assert diagnostics(mdata, input_keys=keys, n_permutations=50) is None
    result = mdata.uns["diagnostics"]
    assert set(result) == {"rna", "protein", "params"}
    rna, protein = result["rna"], result["protein"]
    assert rna["independence_r2"] < 0.1 and rna["independence_p_value"] > 0.05
    assert protein["independence_r2"] > 0.8 and protein["independence_p_value"] < 0.05
    assert rna["completeness_r2_joint"] > rna["completeness_r2_shared"]
    assert all(type(v) in (float, int) for v in rna.values())
    assert result["params"]["specific_keys"]["rna"] == "X_indiseek_specific_rna"
    table = pd.DataFrame({m: result[m] for m in ("rna", "protein")}).T
    assert table.shape == (2, 10)

    mdata.write(tmp_path / "d.h5mu")
    back = read_h5mu(tmp_path / "d.h5mu").uns["diagnostics"]
    assert float(back["protein"]["independence_r2"]) == pytest.approx(protein["independence_r2"])
    assert back["params"]["input_keys"]["rna"] == "rna_inputs"


def test_diagnostics_independence_only_copy_and_errors(arrays):
    mdata = _model_output(arrays)
    out = diagnostics(mdata, n_permutations=10, statistic="dcor", key_added="diag", copy=True)
    assert "diag" not in mdata.uns
    assert "completeness_r2_joint" not in out.uns["diag"]["rna"]
    assert "independence_dcor" in out.uns["diag"]["protein"]
    with pytest.raises(KeyError, match="write_embeddings"):
        diagnostics(mdata, method="infodisen")
    with pytest.raises(KeyError, match="unknown modalities"):
        diagnostics(mdata, input_keys={"adt": "protein_inputs"})
