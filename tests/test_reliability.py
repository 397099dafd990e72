"""What a user can rely on when something goes wrong: nothing lost, nothing silently wrong, one clear error."""

import json
import os
import signal

import lightning.pytorch as pl
import numpy as np
import pytest
import scvi
import torch
from scipy import sparse

from indiseek import IndiSeek

TINY = {"n_shared": 4, "n_specific": 4, "n_hidden": 8, "n_layers": 2, "n_pcs": 10}
FIT = {"max_epochs": 2, "batch_size": 64, "enable_progress_bar": False, "seed": 0}


@pytest.fixture(scope="module")
def model(small_mdata):
    mdata = small_mdata.copy()
    IndiSeek.setup_mudata(mdata)
    model = IndiSeek(mdata, **TINY)
    model.train(**FIT)
    return model


def _dense(x):
    return x.toarray() if sparse.issparse(x) else np.asarray(x)


# ------------------------------------------------------------------ saving never deletes or replaces what is not ours
def test_save_refuses_a_directory_with_other_files(model, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        model.save(tmp_path, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_save_overwrites_only_its_own_files(model, tmp_path):
    target = tmp_path / "model"
    model.save(target, save_mudata=True)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save(target)
    model.save(target, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == ["model.json", "model.safetensors"]
    IndiSeek.load(target, model.adata)


def test_save_refuses_a_regular_file(model, tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("keep me")
    with pytest.raises(FileExistsError, match="not a directory"):
        model.save(target, overwrite=True)
    assert target.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.txt"]


def test_save_into_the_working_directory(model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model.save(".")
    model.save(".", overwrite=True)
    assert IndiSeek.load(".", model.adata).is_trained_


# ------------------------------------------------------------------ no seed: scvi-tools' own (None in a fresh session)
@pytest.mark.parametrize("lambda_", [10.0, "auto"])
def test_train_without_a_seed(small_mdata, lambda_):
    mdata = small_mdata.copy()
    IndiSeek.setup_mudata(mdata)
    model = IndiSeek(mdata, lambda_=lambda_, **TINY)
    before = scvi.settings.seed
    scvi.settings.seed = None
    try:
        model.train(**{**FIT, "seed": None, "max_epochs": 1})
    finally:
        scvi.settings.seed = before
    assert model.is_trained_
    assert np.isfinite(model.get_latent_representation()).all()


# ------------------------------------------------------------------ a training that does not finish changes nothing
def test_failed_retrain_leaves_the_model_as_it_was(model, tmp_path):
    before = model.get_latent_representation()
    history = {k: v.copy() for k, v in model.history_.items()}
    with pytest.raises(FloatingPointError):
        model.train(**{**FIT, "lr": 1e30})
    assert model.is_trained_
    np.testing.assert_array_equal(model.get_latent_representation(), before)
    assert history.keys() == model.history_.keys()
    model.save(tmp_path / "m")
    np.testing.assert_array_equal(IndiSeek.load(tmp_path / "m", model.adata).get_latent_representation(), before)


class _Interrupt(pl.Callback):
    def on_train_epoch_end(self, trainer, pl_module):
        if type(pl_module).__name__ == "SpecificTrainingPlan":
            raise KeyboardInterrupt


def test_interrupted_retrain_leaves_the_model_as_it_was(model):
    before = model.get_latent_representation()
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises((KeyboardInterrupt, SystemExit)):
            model.train(**FIT, callbacks=[_Interrupt()])
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores Ctrl-C after catching one
    assert model.is_trained_
    np.testing.assert_array_equal(model.get_latent_representation(), before)


def test_non_finite_weights_are_never_saved(model, tmp_path):
    state = {k: v.clone() for k, v in model.module.state_dict().items()}
    try:
        next(p for p in model.module.parameters() if p.ndim == 2).data[0, 0] = float("nan")
        with pytest.raises(ValueError, match="NaN or infinite"):
            model.save(tmp_path / "m")
        assert not (tmp_path / "m").exists()
    finally:
        model.module.load_state_dict(state)


# ------------------------------------------------------------------ damaged, edited or linked saves are refused
@pytest.fixture
def saved(model, tmp_path):
    model.save(tmp_path / "m")
    return tmp_path / "m"


def test_corrupted_weights_are_refused(model, saved):
    raw = bytearray((saved / "model.safetensors").read_bytes())
    raw[-64:-32] = np.full(8, np.nan, dtype=np.float32).tobytes()  # NaN bit patterns in the tensor data
    (saved / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="model.safetensors"):
        IndiSeek.load(saved, model.adata)


def test_edited_record_is_refused(model, saved):
    info = json.loads((saved / "model.json").read_text())
    info["var_names"]["rna"][0], info["var_names"]["rna"][1] = info["var_names"]["rna"][1], info["var_names"]["rna"][0]
    (saved / "model.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="modified after it was saved"):
        IndiSeek.load(saved, model.adata)


def test_malformed_record_is_refused(model, saved):
    (saved / "model.json").write_text('{"format": 2, ')
    with pytest.raises(ValueError, match="model.json is not valid JSON"):
        IndiSeek.load(saved, model.adata)


def test_linked_save_is_refused(model, saved, tmp_path):
    link = tmp_path / "link"
    os.symlink(saved, link)
    with pytest.raises(ValueError, match="symbolic link"):
        IndiSeek.load(link, model.adata)


def test_unusable_device_names_the_fix(model, saved):
    if torch.cuda.device_count() > 1:
        pytest.skip("a second GPU exists")
    with pytest.raises(ValueError, match="accelerator='cpu'"):
        IndiSeek.load(saved, model.adata, accelerator="gpu", device=1)


# ------------------------------------------------------------------ rows always land on their cells
def test_write_embeddings_match_cells_by_name(model):
    mdata = model.adata.copy()
    order = mdata.obs_names[::-1]
    mdata.mod["rna"] = mdata["rna"][order].copy()
    mdata.mod["prot"] = mdata["prot"][order].copy()  # mdata.obs_names keep their order: no update
    model.write_embeddings(mdata)
    np.testing.assert_allclose(mdata.obsm["X_indiseek"], model.get_latent_representation(), atol=1e-5)


def test_write_embeddings_refuse_cells_missing_from_obs_names(model):
    mdata = model.adata.copy()
    rna = mdata["rna"].copy()
    rna.obs_names = [f"new{i}" for i in range(rna.n_obs)]
    mdata.mod["rna"] = rna
    if mdata.obs_names.isin(rna.obs_names).any():
        pytest.skip("this mudata version updates obs on assignment")
    with pytest.raises(ValueError, match=r"not in mdata.obs_names .*mdata.update\(\)"):
        model.write_embeddings(mdata)
    assert not any(k.startswith("X_indiseek") for k in mdata.obsm)


# ------------------------------------------------------------ wrong data are refused at setup, naming the modality
def test_log_normalised_counts_are_refused(small_mdata):
    mdata = small_mdata.copy()
    mdata["prot"].X = np.log1p(_dense(mdata["prot"].X)).astype(np.float32)
    with pytest.raises(ValueError, match="prot counts are not whole numbers.*allow_non_integer=True"):
        IndiSeek.setup_mudata(mdata)
    IndiSeek.setup_mudata(mdata, allow_non_integer=True)  # the explicit opt-out for corrected counts
    model = IndiSeek(mdata, **TINY)
    model.train(**FIT)
    assert np.isfinite(model.get_latent_representation()).all()


def test_swapped_modalities_warn(small_mdata):
    mdata = small_mdata.copy()
    with pytest.warns(UserWarning, match="swapped"):
        IndiSeek.setup_mudata(mdata, modalities={"rna_layer": "prot", "protein_layer": "rna"})


@pytest.mark.parametrize("n_proteins", [1, "constant"])
def test_proteins_must_vary(small_mdata, n_proteins):
    import mudata as md

    mdata = small_mdata.copy()
    prot = mdata["prot"][:, :1].copy() if n_proteins == 1 else mdata["prot"].copy()
    if n_proteins == "constant":
        prot.X = np.full(prot.shape, 5.0, dtype=np.float32)
    mdata = md.MuData({"rna": mdata["rna"], "prot": prot})
    with pytest.raises(ValueError, match="needs at least 2 proteins that vary across cells"):
        IndiSeek.setup_mudata(mdata)


def test_overflowing_totals_are_refused(small_mdata):
    mdata = small_mdata.copy()
    x = _dense(mdata["rna"].X).astype(np.float32)
    x[0, :5] = 3e38
    mdata["rna"].X = x
    with pytest.raises(ValueError, match="beyond what a sequencer counts"):
        IndiSeek.setup_mudata(mdata)


def test_dense_float16_counts_train(small_mdata):
    mdata = small_mdata.copy()
    mdata["rna"].X = _dense(mdata["rna"].X).astype(np.float16)
    IndiSeek.setup_mudata(mdata)
    model = IndiSeek(mdata, **TINY)
    model.train(**FIT)
    assert np.isfinite(model.get_latent_representation()).all()


def test_duplicate_feature_names_are_refused(small_mdata):
    mdata = small_mdata.copy()
    names = list(mdata["rna"].var_names)
    names[1] = names[0]
    mdata["rna"].var_names = names
    with pytest.raises(ValueError, match="var_names_make_unique"):
        IndiSeek.setup_mudata(mdata)


def test_too_sparse_rna_is_refused(small_mdata):
    import anndata as ad
    import mudata as md

    from indiseek.pp import fit_rna_inputs

    x = np.zeros((5, 3), dtype=np.float32)
    x[:, 0], x[1, 1] = 1, 1  # one gene detected everywhere, one in a single cell
    x[1, 0] = 2
    with pytest.raises(ValueError, match="n_top_genes=3 to keep every gene"):  # scanpy's IndexError, explained
        fit_rna_inputs(sparse.csr_matrix(np.c_[x[:, :1], np.zeros((5, 2), np.float32)]), n_top_genes=1, n_pcs=2)
    prot = small_mdata["prot"][:5].copy()
    rna = ad.AnnData(np.c_[x[:, :1], np.zeros((5, 2), np.float32)], obs=prot.obs[[]])
    with pytest.raises(ValueError, match="needs at least 2 genes that vary across cells"):
        IndiSeek.setup_mudata(md.MuData({"rna": rna, "prot": prot}))


# ------------------------------------------------------------------ every argument is checked up front, by name
def test_model_needs_setup(small_mdata):
    with pytest.raises(ValueError, match=r"IndiSeek.setup_mudata\(mdata\)"):
        IndiSeek(small_mdata.copy())


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_shared": 0}, "n_shared"),
        ({"n_specific": 0}, "n_specific"),
        ({"n_top_genes": -5}, "n_top_genes"),
        ({"n_pcs": 0}, "n_pcs"),
        ({"n_protein_pcs": 0}, "n_protein_pcs"),
        ({"n_layers_estimator": 0}, "n_layers_estimator"),
        ({"activation": "tanh"}, "activation"),
        ({"lambda_": float("nan")}, "lambda_"),
        ({"lambda_": "10"}, "lambda_"),
        ({"temperature": 0.0}, "temperature"),
        ({"capture_temperature": -1.0}, "capture_temperature"),
        ({"learn_temperature": "yes"}, "learn_temperature"),
        ({"club_sample": 1}, "club_sample"),
    ],
)
def test_bad_model_arguments(model, kwargs, name):
    with pytest.raises((ValueError, TypeError), match=name):
        IndiSeek(model.adata, **{**TINY, **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"batch_size": 1}, "batch_size"),
        ({"batch_size": 0}, "batch_size"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"max_epochs": 2.5}, "max_epochs"),
        ({"lr": -1.0}, "lr"),
        ({"train_size": 0.0}, "train_size"),
        ({"train_size": 1.5}, "train_size"),
        ({"validation_size": 0.5, "train_size": 0.9}, "validation_size"),
        ({"early_stopping_patience": 0}, "early_stopping_patience"),
        ({"estimator_lr": 0.0}, "estimator_lr"),
        ({"seed": "a"}, "seed"),
        ({"early_stopping": "no"}, "early_stopping"),
    ],
)
def test_bad_train_arguments(model, kwargs, name):
    before = model.get_latent_representation()
    with pytest.raises((ValueError, TypeError), match=name):
        model.train(**{**FIT, **kwargs})
    np.testing.assert_array_equal(model.get_latent_representation(), before)


def test_bad_output_batch_size(model):
    with pytest.raises(ValueError, match="batch_size"):
        model.get_latent_representation(batch_size=0)
