"""Training on scvi-tools' Lightning stack: arguments reach the trainer, early stopping, checkpoints, DDP, inputs."""

import copy
import dataclasses
import json
import subprocess
import sys
import textwrap

import anndata as ad
import numpy as np
import pytest
import scanpy as sc
import torch
from lightning.pytorch.callbacks import Callback

from indiseek import IndiSeek

SMALL = dict(n_shared=8, n_specific=6, n_hidden=16, n_layers=3, n_pcs=20)


def _fresh(small_mdata, **kwargs):
    mdata = small_mdata.copy()
    IndiSeek.setup_mudata(mdata)
    return IndiSeek(mdata, **SMALL, **kwargs)


class _Epochs(Callback):
    def __init__(self):
        self.stages = []

    def on_train_epoch_end(self, trainer, plan):
        self.stages.append(plan.stage)


def test_the_same_seed_trains_the_same_model_and_another_seed_does_not(small_mdata):
    # A command run again with its seed gives the same figures: the validation split, initialisation, dropout masks
    # and minibatch order all follow the seed.
    fits = [_fresh(small_mdata) for _ in range(3)]
    for model, seed in zip(fits, (0, 0, 1), strict=True):
        model.train(max_epochs=3, batch_size=64, seed=seed, enable_progress_bar=False)
    first, again, other = (model.get_latent_representation() for model in fits)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_plan_and_trainer_kwargs_reach_the_trainer(small_mdata):
    model = _fresh(small_mdata)
    seen = _Epochs()
    model.train(max_epochs=2, batch_size=64, seed=0, enable_progress_bar=False, callbacks=[seen],
                plan_kwargs={"optimizer": "AdamW", "weight_decay": 0.01}, log_every_n_steps=1)  # fmt: skip
    assert seen.stages == ["shared", "shared", "specific", "specific"]
    encoder_optimizer = model.trainer.optimizers[0]  # the last stage's: the specific encoders'
    assert isinstance(encoder_optimizer, torch.optim.AdamW)
    assert encoder_optimizer.param_groups[0]["weight_decay"] == 0.01
    assert model.trainer.log_every_n_steps == 1


def test_early_stopping_stops(small_mdata):
    model = _fresh(small_mdata)
    # no epoch can improve the validation loss by 1e6: each stage stops after patience + 1 epochs
    model.train(max_epochs=20, batch_size=64, seed=0, enable_progress_bar=False, early_stopping_patience=1,
                early_stopping_min_delta=1e6)  # fmt: skip
    assert model.epochs_trained == {"shared": 2, "specific": 2}


def test_the_default_budget_caps_the_steps_of_each_stage(small_mdata, monkeypatch):
    # With max_epochs unset, a stage runs CITESEQ.max_epochs epochs unless that passes CITESEQ.max_steps minibatch
    # steps (on many cells), and the specific stage at least CITESEQ.min_specific_steps (on few). The budget is
    # shrunk here so that the 5 batches of 64 per epoch of the 360 training cells reach both bounds.
    from indiseek.model import _utils

    monkeypatch.setattr(_utils, "CITESEQ", dataclasses.replace(_utils.CITESEQ, max_steps=10, min_specific_steps=15))
    model = _fresh(small_mdata)
    model.train(batch_size=64, seed=0, early_stopping=False, enable_progress_bar=False)
    assert model.epochs_trained == {"shared": 2, "specific": 3}


def test_checkpoint_and_resume_continue_from_the_saved_epoch(small_mdata, tmp_path):
    model = _fresh(small_mdata)
    model.train(max_epochs=2, batch_size=64, seed=0, enable_progress_bar=False)
    last = tmp_path / "last.ckpt"
    model.trainer.save_checkpoint(last)  # Lightning's checkpoint of the last stage's trainer
    state = torch.load(last, weights_only=True)
    assert state["indiseek_stage"] == "specific" and state["epoch"] == 2  # two epochs done

    resumed = _fresh(small_mdata)
    resumed.train(max_epochs=4, batch_size=64, seed=0, enable_progress_bar=False, ckpt_path=str(last))
    assert resumed.epochs_trained == {"specific": 2}  # epochs 3 and 4; the shared stage came from the checkpoint
    assert resumed.trainer.current_epoch == 4
    # the resumed networks start from the checkpoint: their shared features are the first model's
    np.testing.assert_allclose(
        resumed.get_latent_representation(kind="shared"), model.get_latent_representation(kind="shared"), atol=1e-5
    )


class _SaveAtFirstSpecificEpoch(Callback):
    def __init__(self, path):
        self.path = path

    def on_train_epoch_end(self, trainer, plan):  # after the epoch's validation
        if plan.stage == "specific" and trainer.current_epoch == 0:
            trainer.save_checkpoint(self.path)


class _ScrambleProteinEncoder(Callback):
    def on_train_epoch_start(self, trainer, plan):
        with torch.no_grad():
            for p in plan.module.specific["protein"].encoder.parameters():
                p.normal_(std=3.0)


def test_a_resumed_stage_keeps_the_best_weights_of_the_epochs_before_the_checkpoint(small_mdata, tmp_path):
    ckpt = tmp_path / "specific.ckpt"
    kwargs = dict(batch_size=64, seed=0, enable_progress_bar=False, check_val_every_n_epoch=1)
    model = _fresh(small_mdata)
    model.train(max_epochs=1, callbacks=[_SaveAtFirstSpecificEpoch(ckpt)], **kwargs)
    resumed = _fresh(small_mdata)  # every epoch after the checkpoint starts from a scrambled protein encoder
    resumed.train(max_epochs=3, ckpt_path=str(ckpt), callbacks=[_ScrambleProteinEncoder()], **kwargs)
    key = "specific_loss_protein_validation"
    assert resumed.history[key].iloc[:, 0].min() > model.history[key].iloc[0, 0]
    np.testing.assert_array_equal(
        resumed.get_latent_representation(modality="protein", kind="specific"),
        model.get_latent_representation(modality="protein", kind="specific"),
    )


def test_prepared_inputs_match_scanpy(trained):
    """The module's inputs are sc.pp.normalize_total + log1p + highly variable genes + PCA of the training cells."""
    mdata = trained.adata
    train = np.sort(trained.train_indices)
    adata = ad.AnnData(mdata["rna"].X[train].astype(np.float32))
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    genes = trained.module.inputs["rna"].genes.numpy()
    adata = adata[:, genes].copy()
    sc.pp.pca(adata, n_comps=20, svd_solver="covariance_eigh")
    counts = torch.as_tensor(mdata["rna"].X[train].toarray(), dtype=torch.float32)
    with torch.no_grad():
        ours = trained.module.inputs["rna"](counts).numpy()
    signs = np.sign((ours * adata.obsm["X_pca"]).sum(0))  # principal axes are defined up to sign
    np.testing.assert_allclose(ours * signs, adata.obsm["X_pca"], atol=2e-3)


def test_a_save_of_the_previous_format_is_refused_with_a_way_out(trained, tmp_path):
    trained.save(tmp_path / "m")
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    del info["format"]
    (tmp_path / "m" / "model.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="older indiseek .* Retrain"):
        IndiSeek.load(tmp_path / "m", trained.adata)


def test_depths_and_activation_of_the_networks_and_old_saves(trained, tmp_path):
    from indiseek.model._save import _checksum

    def depth(network):
        return sum(isinstance(m, torch.nn.Linear) for m in network.modules())

    shared, specific = trained.module.shared, trained.module.specific["rna"]
    assert depth(shared.rna_encoder) == depth(shared.protein_encoder) == 4  # the default
    assert depth(specific.encoder) == depth(specific.decoder) == 3  # n_layers of the fixture
    assert depth(specific.estimator) == 0  # the default ridge estimator has no network
    assert isinstance(shared.rna_encoder[1], torch.nn.LeakyReLU) and isinstance(specific.decoder[1], torch.nn.LeakyReLU)
    mdata = trained.adata.copy()
    IndiSeek.setup_mudata(mdata)
    gaussian = IndiSeek(mdata, **SMALL, club_estimator="gaussian")
    gaussian.train(max_epochs=1, batch_size=64, enable_progress_bar=False, seed=0)
    assert depth(gaussian.module.specific["rna"].estimator) == 2  # the default depth of a learned estimator
    # A save from before the shared stage and CLUB's estimator had their own depths (one n_layers for every
    # network) and before the ridge estimator and the leaky ReLU were the defaults still loads.
    model = IndiSeek(
        mdata,
        **SMALL,
        n_layers_shared=SMALL["n_layers"],
        n_layers_estimator=SMALL["n_layers"],
        club_estimator="gaussian",
        activation="relu",
    )
    model.train(max_epochs=1, batch_size=64, enable_progress_bar=False, seed=0)
    model.save(tmp_path / "m")
    info = json.loads((tmp_path / "m" / "model.json").read_text())
    for name in ("n_layers_shared", "n_layers_estimator", "club_estimator", "activation"):
        del info["init_params"]["non_kwargs"][name]
    info["checksum"] = _checksum(info)
    (tmp_path / "m" / "model.json").write_text(json.dumps(info))
    loaded = IndiSeek.load(tmp_path / "m", mdata.copy())
    assert depth(loaded.module.specific["protein"].estimator) == SMALL["n_layers"]
    assert isinstance(loaded.module.specific["protein"].estimator.net[1], torch.nn.ReLU)
    np.testing.assert_array_equal(loaded.get_latent_representation(), model.get_latent_representation())


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_trains_and_embeds(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(
        textwrap.dedent(f"""
        import numpy as np
        from indiseek import IndiSeek
        from indiseek.datasets import simulate_citeseq

        mdata = simulate_citeseq(n_cells=400, n_genes=300, n_proteins=12, n_types=8, n_lineages=2, seed=1,
                                 progress_bar=False)
        IndiSeek.setup_mudata(mdata)
        model = IndiSeek(mdata, n_shared=8, n_specific=6, n_hidden=16, n_layers=3, n_pcs=20)
        model.train(max_epochs=2, batch_size=64, accelerator="cpu", devices=2,
                    strategy="ddp_find_unused_parameters_true", enable_progress_bar=False, seed=0)
        if model.trainer.is_global_zero:
            np.save(r"{tmp_path / "z.npy"}", model.get_latent_representation())
            print("world size", model.trainer.world_size)
    """)
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "world size 2" in done.stdout
    z = np.load(tmp_path / "z.npy")
    assert z.shape == (400, 28) and np.isfinite(z).all()


def test_training_prints_lightnings_messages_but_not_its_tips(tmp_path):
    # A fresh interpreter, as a user's script: Lightning prints its rank-zero messages to stderr there.
    script = tmp_path / "train.py"
    script.write_text(
        textwrap.dedent("""
        import indiseek
        from indiseek import IndiSeek

        mdata = indiseek.datasets.simulate_citeseq(n_cells=200, n_genes=100, n_proteins=8, n_types=4,
                                                   n_lineages=2, seed=0, progress_bar=False)
        IndiSeek.setup_mudata(mdata)
        IndiSeek(mdata, n_shared=4, n_specific=4, n_hidden=8, n_layers=2, n_pcs=10).train(
            max_epochs=1, enable_progress_bar=False, seed=0)
        X, C = indiseek.sim.simulate_setting(1, n=200, seed=0)
        indiseek.fit_specific(X, C, max_epochs=1, progress_bar=False)
    """)
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("GPU available") == 3  # one per trainer: two stages, then fit_specific
    assert "Tip:" not in done.stderr and "Tip:" not in done.stdout
    assert "Generating sequential column names" not in done.stderr + done.stdout


def test_each_stage_keeps_its_best_validation_weights_after_min_steps(small_mdata):
    model = _fresh(small_mdata, input_dropout=0.0)  # without augmentation CLIP over-fits these few cells
    model.train(max_epochs=60, batch_size=64, seed=0, enable_progress_bar=False, early_stopping=False,
                check_val_every_n_epoch=1, plan_kwargs={"lr": 1e-2}, min_steps=150)  # fmt: skip
    first = 150 // (len(model.train_indices) // 64) - 1  # the first epoch that ends after min_steps
    keys = {"shared": "shared_validation_loss"} | {m: f"specific_loss_{m}_validation" for m in ("rna", "protein")}
    histories = {part: model.history[key].iloc[:, 0].to_numpy() for part, key in keys.items()}
    assert any(history.argmin() < first for history in histories.values())  # min_steps changes the choice
    for history in histories.values():
        assert history[first:].argmin() < len(history) - first - 1  # the loss went up again: not the last weights
    sums, n = dict.fromkeys(keys, 0.0), 0
    with torch.no_grad():
        for tensors in model._make_data_loader(model.adata, indices=model.validation_indices, batch_size=64):
            k = len(tensors["X"])
            sums["shared"] += float(model.module.loss(tensors).loss) * k
            specific = model.module.specific_loss(model.module.specific_inputs(tensors))[0].extra_metrics
            for m in ("rna", "protein"):
                sums[m] += float(specific[f"loss_{m}"]) * k
            n += k
    for part, history in histories.items():
        assert sums[part] / n == pytest.approx(history[first:].min(), rel=1e-4), part


def test_each_block_is_centred_and_scaled_on_the_training_cells(trained):
    for kind in ("shared", "specific"):
        for modality in ("rna", "protein"):
            z = trained.get_latent_representation(modality=modality, kind=kind)[np.sort(trained.train_indices)]
            assert np.abs(z.mean(0)).max() < 1e-4
            assert z.var(0).mean() == pytest.approx(1.0, rel=1e-3)


def test_the_norm_of_the_shared_features_changes_no_loss(trained):
    """CLIP compares directions only, so the shared features' norms drift in training; the specific stage must not
    depend on them either."""
    module = copy.deepcopy(trained.module).eval()
    tensors = next(iter(trained._make_data_loader(trained.adata, indices=trained.train_indices, batch_size=64)))

    def losses():
        with torch.no_grad():
            specific = module.specific_loss(module.specific_inputs(tensors))[0].extra_metrics
            return [float(module.loss(tensors).loss)] + [float(specific[f"loss_{m}"]) for m in ("rna", "protein")]

    before = losses()
    with torch.no_grad():
        for encoder in (module.shared.rna_encoder, module.shared.protein_encoder):
            encoder[-1].weight.mul_(40.0)
            encoder[-1].bias.mul_(40.0)
    assert losses() == pytest.approx(before, rel=1e-5)


def test_specific_input_dropout_acts_on_the_specific_stages_in_training_only(small_mdata, tmp_path):
    """The same seed with and without it: the same shared features, other specific ones, each returned alike twice;
    one probability per modality acts on that modality's encoder, and a save keeps it."""
    features = {}
    for name, p in (("none", 0.0), ("both", 0.3), ("both_dict", {"rna": 0.3, "protein": 0.3}), ("rna", {"rna": 0.3})):
        mdata = small_mdata.copy()
        IndiSeek.setup_mudata(mdata)
        model = IndiSeek(mdata, **SMALL, specific_input_dropout=p)
        model.train(max_epochs=3, seed=0, enable_progress_bar=False)
        kinds = {
            (m, k): model.get_latent_representation(modality=m, kind=k)
            for m in ("rna", "protein")
            for k in ("shared", "specific")
        }
        np.testing.assert_array_equal(
            kinds["rna", "specific"], model.get_latent_representation(modality="rna", kind="specific")
        )
        features[name] = kinds
    for name in ("both", "both_dict", "rna"):
        np.testing.assert_array_equal(features["none"]["rna", "shared"], features[name]["rna", "shared"])
        assert not np.allclose(features["none"]["rna", "specific"], features[name]["rna", "specific"])
    for key in features["both"]:
        np.testing.assert_array_equal(features["both"][key], features["both_dict"][key])
    modules = {m: model.module.specific[m].input_dropout for m in ("rna", "protein")}
    assert modules == {"rna": 0.3, "protein": 0.0}
    model.save(tmp_path / "model")
    loaded = IndiSeek.load(tmp_path / "model", mdata)
    assert {m: loaded.module.specific[m].input_dropout for m in ("rna", "protein")} == modules


def test_input_dropout_keeps_more_cell_types_in_the_shared_features():
    """CLIP memorises the training pairs within a few epochs; dropping input features in training prevents it."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    from indiseek.datasets import simulate_citeseq

    mdata = simulate_citeseq(n_cells=1500, n_genes=500, seed=0, progress_bar=False)
    labels = mdata.obs["celltype.l2"].astype(str).to_numpy()
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    accuracy = {}
    for p in (0.0, 0.3):
        copy = mdata.copy()
        IndiSeek.setup_mudata(copy)
        model = IndiSeek(copy, method="clip", input_dropout=p)
        model.train(max_epochs=40, seed=0, enable_progress_bar=False)
        c = model.get_latent_representation(modality="rna", kind="shared")
        np.testing.assert_array_equal(c, model.get_latent_representation(modality="rna", kind="shared"))
        accuracy[p] = cross_val_score(KNeighborsClassifier(15), c, labels, cv=folds).mean()
    assert accuracy[0.3] >= accuracy[0.0] + 0.08  # measured: 0.49 without, 0.67 with
