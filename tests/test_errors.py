import numpy as np
import pytest
from scipy import sparse

from indiseek import IndiSeek


def _copy(mdata):
    return mdata.copy()


def test_unknown_modality_name(small_mdata):
    with pytest.raises(KeyError, match="Modality 'adt' is not in the MuData"):
        IndiSeek.setup_mudata(_copy(small_mdata), modalities={"rna_layer": "rna", "protein_layer": "adt"})


def test_unknown_modalities_key(small_mdata):
    with pytest.raises(ValueError, match="protein_layer"):
        IndiSeek.setup_mudata(_copy(small_mdata), modalities={"rna": "rna"})


def test_missing_layer(small_mdata):
    with pytest.raises(KeyError, match="Layer 'counts' is not in mdata\\['rna'\\].layers"):
        IndiSeek.setup_mudata(_copy(small_mdata), rna_layer="counts")


def test_layer_is_used(small_mdata):
    mdata = _copy(small_mdata)
    mdata["prot"].layers["counts"] = mdata["prot"].X.copy()
    mdata["prot"].X = np.log1p(np.asarray(mdata["prot"].X)) - 1.0  # negative: would fail if read
    IndiSeek.setup_mudata(mdata, protein_layer="counts")


@pytest.mark.parametrize("bad", [-1.0, np.nan, np.inf])
def test_bad_protein_values(small_mdata, bad):
    mdata = _copy(small_mdata)
    x = np.asarray(mdata["prot"].X, dtype=np.float32).copy()
    x[3, 2] = bad
    mdata["prot"].X = x
    with pytest.raises(ValueError, match="negative|NaN or infinite"):
        IndiSeek.setup_mudata(mdata)


def test_negative_rna_counts(small_mdata):
    mdata = _copy(small_mdata)
    x = sparse.csr_matrix(mdata["rna"].X, dtype=np.float32, copy=True)
    x.data[0] = -2
    mdata["rna"].X = x
    with pytest.raises(ValueError, match="rna counts contain negative values"):
        IndiSeek.setup_mudata(mdata)


def test_zero_count_cells(small_mdata):
    mdata = _copy(small_mdata)
    x = sparse.csr_matrix(mdata["rna"].X, dtype=np.float32, copy=True).tolil()
    x[7, :] = 0
    mdata["rna"].X = x.tocsr()
    with pytest.raises(ValueError, match="1 cells have zero rna counts"):
        IndiSeek.setup_mudata(mdata)


def test_modalities_in_another_order_are_registered_aligned(small_mdata):
    mdata = _copy(small_mdata)
    prot = mdata["prot"]
    mdata.mod["prot"] = prot[prot.obs_names[::-1]].copy()
    IndiSeek.setup_mudata(mdata)
    model = IndiSeek(mdata)
    assert model.mdata is mdata and model.adata is not mdata  # a copy with both modalities in mdata's order
    assert model.adata["prot"].obs_names.equals(model.adata.obs_names)


def test_not_a_mudata(small_mdata):
    with pytest.raises(TypeError, match="MuData"):
        IndiSeek.setup_mudata(small_mdata["rna"])


def test_too_few_cells_for_a_batch(small_mdata):
    mdata = small_mdata[:100].copy()
    IndiSeek.setup_mudata(mdata)
    model = IndiSeek(mdata, n_shared=4, n_specific=4, n_hidden=8, n_layers=2, n_pcs=10)
    with pytest.raises(ValueError, match="smaller batch_size"):
        model.train(max_epochs=1, batch_size=128, enable_progress_bar=False)


def test_nan_loss_names_stage(small_mdata):
    mdata = small_mdata.copy()
    IndiSeek.setup_mudata(mdata)
    model = IndiSeek(mdata, n_shared=4, n_specific=4, n_hidden=8, n_layers=2, n_pcs=10)
    with pytest.raises(FloatingPointError, match="shared stage"):
        model.train(max_epochs=3, batch_size=64, lr=1e30, enable_progress_bar=False)


def test_unknown_optimizer_before_anything_is_fitted(small_mdata):
    mdata = small_mdata.copy()
    IndiSeek.setup_mudata(mdata)
    model = IndiSeek(mdata, n_shared=4, n_specific=4, n_hidden=8, n_layers=2, n_pcs=10)
    with pytest.raises(ValueError, match="Unknown optimizer 'SGD'"):
        model.train(max_epochs=1, plan_kwargs={"optimizer": "SGD"}, enable_progress_bar=False)
    with pytest.raises(ValueError, match="weight_decay must be non-negative"):
        model.train(max_epochs=1, plan_kwargs={"weight_decay": -1.0}, enable_progress_bar=False)
    assert not model.is_trained_


@pytest.mark.parametrize("value", [-0.1, 1.0])
@pytest.mark.parametrize("name", ["input_dropout", "specific_input_dropout"])
def test_input_dropout_outside_0_1(small_mdata, name, value):
    mdata = small_mdata.copy()
    IndiSeek.setup_mudata(mdata)
    with pytest.raises(ValueError, match=f"^{name}"):
        IndiSeek(mdata, **{name: value})


@pytest.mark.parametrize(
    ("value", "match"),
    [({"protein": 1.0}, r"^specific_input_dropout\['protein'\] must be below 1"), ({"prot": 0.1}, "keys \\['prot'\\]")],
)
def test_specific_input_dropout_per_modality_errors(small_mdata, value, match):
    mdata = small_mdata.copy()
    IndiSeek.setup_mudata(mdata)
    with pytest.raises(ValueError, match=match):
        IndiSeek(mdata, specific_input_dropout=value)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ({"rna": 300.0}, r"^lambda_ has keys \['rna'\].*a missing one is not allowed"),
        ({"rna": 300.0, "prot": 100.0}, r"^lambda_ has keys \['prot', 'rna'\]"),
        ({"rna": 300.0, "protein": -1.0}, r"^lambda_\['protein'\] must be >= 0"),
    ],
)
def test_lambda_per_modality_errors(small_mdata, value, match):
    mdata = small_mdata.copy()
    IndiSeek.setup_mudata(mdata)
    with pytest.raises(ValueError, match=match):
        IndiSeek(mdata, lambda_=value)
