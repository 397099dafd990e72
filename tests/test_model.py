import inspect

import numpy as np
import pytest
import scanpy as sc
from sklearn.decomposition import PCA

import indiseek
from indiseek import IndiSeek


def _fresh(mdata, **kwargs):
    mdata = mdata.copy()
    IndiSeek.setup_mudata(mdata)
    return mdata, IndiSeek(mdata, n_shared=8, n_specific=6, n_hidden=16, n_layers=3, n_pcs=20, **kwargs)


def test_latent_shapes_and_order(trained):
    n = trained.adata.n_obs
    z = trained.get_latent_representation(modality="rna", kind="specific")
    c = trained.get_latent_representation(modality="protein", kind="shared")
    both = trained.get_latent_representation()
    assert z.shape == (n, 6) and c.shape == (n, 8) and both.shape == (n, 8 + 8 + 6 + 6)
    w = trained.embedding_weights
    np.testing.assert_allclose(both[:, 8:16], c * np.sqrt(w["shared_protein"]), rtol=1e-5)
    np.testing.assert_allclose(both[:, 16:22], z * np.sqrt(w["specific_rna"] * 8 / 6), rtol=1e-5)
    assert trained.get_latent_representation(kind="specific").shape == (n, 12)
    assert trained.get_latent_representation(modality="rna").shape == (n, 14)


def test_concatenation_weighs_each_block_by_the_inputs_it_explains(trained):
    # C_i weighs what it explains alone, Z_i what it adds to C_i
    train = np.sort(trained.train_indices_)
    weights = trained.embedding_weights
    both = trained.get_latent_representation()[train]
    columns = {"shared_rna": slice(0, 8), "shared_protein": slice(8, 16),
               "specific_rna": slice(16, 22), "specific_protein": slice(22, 28)}  # fmt: skip
    for modality in ("rna", "protein"):
        x = trained.get_prepared_inputs(modality=modality)[train]
        z, c = (trained.get_latent_representation(modality=modality, kind=k)[train] for k in ("specific", "shared"))
        r2 = indiseek.tl.completeness(trained.adata, x, z, c, seed=0)
        shared = max(r2["r2_shared"], 0.0)
        for kind, explained in (("shared", shared), ("specific", max(r2["r2_joint"] - shared, 0.0))):
            name = f"{kind}_{modality}"
            assert weights[name] == pytest.approx(explained, abs=1e-6)
            # a block's total variance over the training cells: its weight times n_shared
            assert both[:, columns[name]].var(0).sum() == pytest.approx(8 * weights[name], rel=1e-3)
    assert 0 < sum(weights.values()) and all(0 <= v <= 1 for v in weights.values())


@pytest.mark.parametrize(
    ("kwargs", "allowed"), [({"modality": "adt"}, "'protein'"), ({"kind": "private"}, "'specific'")]
)
def test_invalid_modality_or_kind(trained, kwargs, allowed):
    with pytest.raises(ValueError, match=allowed):
        trained.get_latent_representation(**kwargs)


def test_write_embeddings_feed_scanpy(trained):
    mdata = trained.adata
    trained.write_embeddings()
    for key in ["shared_rna", "shared_protein", "specific_rna", "specific_protein"]:
        assert mdata.obsm[f"X_indiseek_{key}"].shape[0] == mdata.n_obs
    np.testing.assert_allclose(mdata.obsm["X_indiseek"], trained.get_latent_representation(), rtol=1e-6)
    sc.pp.neighbors(mdata, use_rep="X_indiseek_specific_rna", n_neighbors=10)
    sc.tl.umap(mdata)
    assert mdata.obsm["X_umap"].shape == (mdata.n_obs, 2)


def test_training_history_and_times(trained):
    history = trained.history  # scvi-tools' form: one DataFrame per logged metric, indexed by epoch
    for term in ("train_loss", "validation_loss", "independence_rna_train", "capture_protein_train"):
        frame = history[f"specific_{term}"]
        assert len(frame) == 3 and np.isfinite(frame.to_numpy()).all()
    assert "specific_estimator_train" not in history  # the default ridge estimator takes no fitting steps
    assert len(history["shared_train_loss"]) == 3
    assert trained.epochs_trained == {"shared": 3, "specific": 3}
    assert set(trained.train_times_) == {"inputs", "shared", "specific"}


def test_save_load_round_trip(trained, tmp_path):
    path = tmp_path / "model_dir"
    trained.save(path)
    assert sorted(p.name for p in path.iterdir()) == ["model.json", "model.safetensors"]
    loaded = IndiSeek.load(path, trained.adata.copy())
    np.testing.assert_array_equal(loaded.get_latent_representation(), trained.get_latent_representation())
    assert loaded.init_params_ == trained.init_params_
    with pytest.raises(FileExistsError, match="overwrite=True"):
        trained.save(path)
    trained.save(path, overwrite=True, save_mudata=True)
    reloaded = IndiSeek.load(path)
    np.testing.assert_array_equal(reloaded.get_latent_representation(), trained.get_latent_representation())


def test_protein_inputs_centred_clr_or_principal_components(small_mdata, trained, tmp_path):
    """Up to n_protein_pcs antibodies enter as their centred CLR; a larger panel as the CLR's leading principal
    components, while the imputed protein and a saved model still hold every antibody."""
    train = np.sort(trained.train_indices_)
    clr = indiseek.pp.clr(trained.adata["prot"].X)  # 12 antibodies, fewer than the default 50
    np.testing.assert_allclose(trained.get_prepared_inputs(modality="protein"), clr - clr[train].mean(0), atol=1e-5)

    mdata, model = _fresh(small_mdata, n_protein_pcs=5)
    model.train(max_epochs=2, batch_size=64, enable_progress_bar=False, seed=0)
    train = np.sort(model.train_indices_)
    pca = PCA(5).fit(clr[train])
    x = model.get_prepared_inputs(modality="protein")
    np.testing.assert_allclose(np.abs(x), np.abs(pca.transform(clr)), atol=1e-4)  # the sign of a component is free
    assert list(model.get_imputed_protein().columns) == list(mdata["prot"].var_names)
    model.save(tmp_path / "model_dir")
    loaded = IndiSeek.load(tmp_path / "model_dir", mdata.copy())
    np.testing.assert_array_equal(loaded.get_latent_representation(), model.get_latent_representation())
    assert loaded.get_prepared_inputs(modality="protein").shape == (mdata.n_obs, 5)


def test_failed_save_keeps_previous(trained, tmp_path, monkeypatch):
    import indiseek.model._save as save_mod

    path = tmp_path / "model_dir"
    trained.save(path)
    before = (path / "model.safetensors").read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(save_mod, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        trained.save(path, overwrite=True)
    assert (path / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model_dir"]


def test_load_rejects_missing_files(tmp_path, trained):
    with pytest.raises(FileNotFoundError, match="saved model"):
        IndiSeek.load(tmp_path, trained.adata)


def test_query_cells_embed_consistently(trained):
    mdata = trained.adata
    query = mdata[::3].copy()
    # same genes in another order: matched by name
    query.mod["rna"] = query["rna"][:, query["rna"].var_names[::-1]].copy()
    expected = trained.get_latent_representation(modality="rna", kind="specific")[::3]
    got = trained.get_latent_representation(query, modality="rna", kind="specific")
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    trained.write_embeddings(query)
    assert query.obsm["X_indiseek"].shape == (query.n_obs, 28)


def test_query_missing_genes(trained):
    query = trained.adata[:50].copy()
    query.mod["rna"] = query["rna"][:, 5:].copy()
    with pytest.raises(ValueError, match="registered features of modality 'rna' are missing"):
        trained.get_latent_representation(query)


def test_untrained_model_refuses_embeddings(small_mdata):
    _, model = _fresh(small_mdata)
    with pytest.raises(RuntimeError):
        model.get_latent_representation()


def test_setup_anndata_points_to_mudata(small_mdata):
    with pytest.raises(NotImplementedError, match="setup_mudata"):
        IndiSeek.setup_anndata(small_mdata["rna"])


def test_unknown_method(small_mdata):
    mdata = small_mdata.copy()
    IndiSeek.setup_mudata(mdata)
    with pytest.raises(ValueError, match="'factorizedcl'"):
        IndiSeek(mdata, method="vae")


def test_public_docstrings_have_their_shared_parameters_filled_in():
    """Every docstring that takes a shared parameter text (docrep's ``%(name)s``) has it substituted."""
    objects = [
        indiseek.IndiSeek,
        *[getattr(indiseek.IndiSeek, n) for n in dir(indiseek.IndiSeek) if not n.startswith("_")],
    ]
    for module in (indiseek.tl, indiseek.pl, indiseek.datasets):
        objects += [getattr(module, n) for n in getattr(module, "__all__", [])]
    objects.append(indiseek.fit_specific)
    unfilled = [getattr(o, "__qualname__", repr(o)) for o in objects if "%(" in (inspect.getdoc(o) or "")]
    assert not unfilled
