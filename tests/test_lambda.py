"""Lambda chosen without labels: one shared stage, the specific stages over a grid, a documented rule."""

import json
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from lightning.pytorch.callbacks import Callback

import indiseek
from indiseek import IndiSeek
from indiseek.cli import main

TINY = {"n_shared": 4, "n_specific": 4, "n_hidden": 8, "n_layers": 2, "n_pcs": 10}
FIT = {"max_epochs": 2, "batch_size": 64, "seed": 0}


@pytest.fixture(scope="module")
def swept(small_mdata):
    mdata = small_mdata.copy()
    IndiSeek.setup_mudata(mdata)
    model = IndiSeek(mdata, **TINY)
    model.train(**FIT, enable_progress_bar=False)
    table = model.sweep_lambda([1000, 0.1, 10], **FIT, enable_progress_bar=False)
    return model, table


def test_sweep_returns_one_row_per_lambda(swept):
    model, table = swept
    assert list(table.index) == [0.1, 10, 1000]
    for m in ("rna", "protein"):
        assert table[f"independence_r2_{m}"].between(-1, 1).all()
        assert (table[f"independence_r2_linear_{m}"] <= 1).all()
        assert table[f"independence_p_value_{m}"].between(0, 1).all()
        assert (table[f"completeness_r2_joint_{m}"] <= 1).all()
    chosen, reason = indiseek.tl.select_lambda(table)
    assert model.lambda_choice_ == {"lambda": chosen, "reason": reason}
    assert model.lambda_in_use == chosen and f"lambda={chosen:g}" in reason


def test_each_lambda_is_fitted_as_it_would_be_alone(small_mdata):
    mdata = small_mdata.copy()
    IndiSeek.setup_mudata(mdata)
    model = IndiSeek(mdata, **TINY)
    model.train(**FIT, enable_progress_bar=False)
    model.sweep_lambda([0.1, 10], **FIT, enable_progress_bar=False)
    model.use_lambda(10)
    together = model.get_latent_representation(kind="specific")
    model.sweep_lambda([10], **FIT, enable_progress_bar=False)  # same seed: same start, same minibatches
    np.testing.assert_allclose(model.get_latent_representation(kind="specific"), together, atol=1e-4)


def test_sweep_fits_clubs_estimator_to_its_own_features(small_mdata):
    """The ridge estimator's moving average starts afresh and follows the sweep's features, not the earlier fit's."""
    mdata = small_mdata.copy()
    IndiSeek.setup_mudata(mdata)
    model = IndiSeek(mdata, **TINY)
    model.train(**FIT, enable_progress_bar=False)
    before = {m: stage.estimator.cz_moments.clone() for m, stage in model.module.specific.items()}
    model.sweep_lambda([10], **{**FIT, "max_epochs": 3}, enable_progress_bar=False)
    n_batches = int(0.9 * mdata.n_obs) // FIT["batch_size"]
    for m, stage in model.module.specific.items():
        assert int(stage.estimator.n_updates) == 3 * n_batches
        assert not np.allclose(stage.estimator.cz_moments.numpy(), before[m].numpy())


class _ScrambleSecondLambdaAfterFirstEpoch(Callback):
    """Keep the protein stage of the sweep's second lambda after epoch 1, then scramble its encoder every epoch."""

    def on_validation_epoch_end(self, trainer, plan):
        if trainer.current_epoch == 0:
            self.kept = plan.module.specific["protein"].copy_state(1)

    def on_train_epoch_start(self, trainer, plan):
        if trainer.current_epoch > 0:
            for name, value in plan.module.specific["protein"].params.items():
                if name.startswith("stage/encoder/"):
                    value.data[1].normal_(std=3.0)


def test_each_lambda_keeps_its_best_validation_epoch(small_mdata):
    mdata = small_mdata.copy()
    IndiSeek.setup_mudata(mdata)
    model = IndiSeek(mdata, **TINY)
    model.train(**FIT, enable_progress_bar=False)
    spy = _ScrambleSecondLambdaAfterFirstEpoch()
    model.sweep_lambda([0.1, 10], **{**FIT, "max_epochs": 3}, enable_progress_bar=False, callbacks=[spy])
    state = model.lambda_states_[10]
    for name, kept in spy.kept.items():
        np.testing.assert_array_equal(state[f"specific.protein.{name}"].numpy(), kept.numpy())


def test_every_fitted_lambda_stays_available(swept):
    model, _ = swept
    chosen = model.lambda_in_use
    try:
        model.use_lambda(0.1)
        low = model.get_latent_representation(kind="specific")
        model.use_lambda(1000)
        high = model.get_latent_representation(kind="specific")
        assert model.lambda_in_use == 1000 and not np.allclose(low, high)
        model.use_lambda(0.1)
        np.testing.assert_array_equal(model.get_latent_representation(kind="specific"), low)
        with pytest.raises(KeyError, match="fitted"):
            model.use_lambda(5.0)
    finally:
        model.use_lambda(chosen)


def test_rule_keeps_most_completeness_at_least_leak():
    table = pd.DataFrame(
        {
            "lambda": [0.1, 1.0, 10.0, 100.0],
            "completeness_r2_joint_rna": [0.40, 0.55, 0.70, 0.75],
            "completeness_r2_joint_protein": [0.50, 0.60, 0.72, 0.78],
            "independence_r2_rna": [-0.02, 0.02, 0.05, 0.30],
            "independence_r2_protein": [0.01, 0.03, 0.07, 0.25],
        }
    ).set_index("lambda")
    # mean completeness 0.45, 0.575, 0.71, 0.765: gains 0, 0.40, 0.83, 1 of the grid's 0.315
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a curve that rises is no reason to warn
        chosen, reason = indiseek.tl.select_lambda(table)
    assert chosen == 100.0 and "0.765 (smallest lambda 0.450, best 0.765)" in reason
    assert indiseek.tl.select_lambda(table, keep=0.8)[0] == 10.0
    curve = indiseek.tl.lambda_tradeoff(table)
    np.testing.assert_allclose(curve["leak"], [0.005, 0.025, 0.06, 0.275])  # a negative R^2 is no leak
    assert indiseek.tl.select_lambda(curve)[0] == 100.0  # the curve alone is enough
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one lambda is no choice, so no noise to warn of
        chosen, reason = indiseek.tl.select_lambda(table.loc[[10.0]])
    assert chosen == 10.0 and "only lambda of the sweep" in reason and "leak of 0.060" in reason
    with pytest.raises(KeyError, match="independence_r2_rna"):
        indiseek.tl.select_lambda(table.drop(columns="independence_r2_rna"))
    with pytest.raises(ValueError, match="keep"):
        indiseek.tl.select_lambda(table, keep=0)


def test_rule_reads_the_linear_leak_where_the_sweep_has_it():
    table = pd.DataFrame(
        {
            "lambda": [0.1, 1.0, 10.0, 100.0],
            "completeness_r2_joint_rna": [0.45, 0.60, 0.74, 0.73],
            "independence_r2_rna": [0.0, 0.01, 0.02, 0.03],
        }
    ).set_index("lambda")
    assert indiseek.tl.select_lambda(table)[0] == 10.0
    # lambda 10 leaks by a linear map what the kNN regression misses; lambda 100 is as complete (up to the 0.01
    # drop from 10 to 100) and leaks less, so it is chosen and the reason names lambda 10
    table["independence_r2_linear_rna"] = [-3.0, 0.0, 0.30, 0.01]
    np.testing.assert_allclose(indiseek.tl.lambda_tradeoff(table)["leak"], [0.0, 0.01, 0.30, 0.03])
    chosen, reason = indiseek.tl.select_lambda(table)
    assert chosen == 100.0 and "skipped lambda 10 (leak 0.300)" in reason


def test_rule_says_when_completeness_does_not_move():
    # as on a few hundred cells: a gain of 0.003 over the grid against drops of up to 0.026 between neighbours
    completeness = [0.679, 0.675, 0.682, 0.656, 0.678, 0.674, 0.667]
    table = pd.DataFrame(
        {
            "lambda": [0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0],
            "completeness_r2_joint_rna": completeness,
            "independence_r2_rna": [0.0, 0.05, 0.1, 0.1, 0.2, 0.3, 0.4],
        }
    ).set_index("lambda")
    with pytest.warns(UserWarning, match="completeness hardly moves over the grid .* so the choice rests on noise"):
        chosen, reason = indiseek.tl.select_lambda(table)
    assert chosen == 0.001  # as complete as any other up to the noise, and it leaks least
    assert "gain, 0.003, is no larger than its largest drop between neighbouring lambdas, 0.026" in reason


def test_rule_skips_a_lambda_that_leaks_where_another_is_as_complete():
    def curve(completeness, leak):
        grid = [0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0]
        return pd.DataFrame({"completeness": completeness, "leak": leak}, index=pd.Index(grid, name="lambda"))

    # PBMC 5k's sweep (177 training cells): lambda 10 is the most complete by 0.002 but leaks 0.21, its neighbours 0
    table = curve([0.682, 0.692, 0.683, 0.695, 0.706, 0.696, 0.704], [0.066, 0.0, 0.0, 0.051, 0.211, 0.0, 0.0])
    chosen, reason = indiseek.tl.select_lambda(table)
    assert chosen == 1000.0
    assert "skipped lambda 10 (leak 0.211): another lambda leaks less and is as complete" in reason
    assert "noise of 0.010" in reason  # the largest drop between neighbours, 0.706 -> 0.696
    table.loc[10.0, "leak"] = 0.0  # the same sweep without that leak: lambda 10 is chosen, nothing skipped
    chosen, reason = indiseek.tl.select_lambda(table)
    assert chosen == 10.0 and "skipped" not in reason
    # the mosaic's seed 2: the most complete lambda leaks a little more than one as complete up to the noise
    table = curve([0.648, 0.649, 0.653, 0.656, 0.645, 0.679, 0.685], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.005])
    chosen, reason = indiseek.tl.select_lambda(table)
    assert chosen == 100.0 and "best 0.679" in reason and "skipped lambda 1000 (leak 0.005)" in reason


def test_failed_sweep_changes_nothing(swept):
    model, table = swept
    before = model.get_latent_representation()
    with pytest.raises(FloatingPointError):
        model.sweep_lambda([1.0], **{**FIT, "lr": 1e30}, enable_progress_bar=False)
    np.testing.assert_array_equal(model.get_latent_representation(), before)
    assert model.lambda_sweep_ is table


BAD_SWEEPS = [({"lambdas": []}, "lambdas"), ({"lambdas": [0.0]}, "lambdas"), ({"max_epochs": 0}, "max_epochs"),
              ({"lambdas": "1"}, "lambdas")]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "name"), BAD_SWEEPS)
def test_bad_sweep_arguments(swept, kwargs, name):
    model, _ = swept
    with pytest.raises((ValueError, TypeError), match=name):
        model.sweep_lambda(**{"lambdas": [1.0], **kwargs})


def test_auto_lambda_trains_saves_and_loads(small_mdata, tmp_path):
    mdata = small_mdata.copy()
    IndiSeek.setup_mudata(mdata)
    model = IndiSeek(mdata, lambda_="auto", **TINY)
    model.train(**{**FIT, "max_epochs": 1}, enable_progress_bar=False)
    assert len(model.lambda_sweep_) == 7 and model.lambda_in_use == model.lambda_choice_["lambda"]
    assert set(model.history_) == {"shared_train_loss", "shared_validation_loss"}
    z = model.get_latent_representation()
    model.save(tmp_path / "m")
    loaded = IndiSeek.load(tmp_path / "m", mdata)
    assert loaded.lambda_in_use == model.lambda_in_use and loaded.lambda_choice_ == model.lambda_choice_
    pd.testing.assert_frame_equal(loaded.lambda_sweep_, model.lambda_sweep_)
    np.testing.assert_array_equal(loaded.get_latent_representation(), z)
    fig = indiseek.pl.lambda_tradeoff(loaded)
    assert fig.axes[0].get_xscale() == "log"
    plt.close(fig)


def test_clip_has_no_lambda_to_choose(small_mdata):
    mdata = small_mdata.copy()
    IndiSeek.setup_mudata(mdata)
    with pytest.raises(ValueError, match="no specific stage"):
        IndiSeek(mdata, method="clip", lambda_="auto", **TINY)


def test_run_with_auto_lambda_reports_the_choice(tmp_path):
    out = tmp_path / "out"
    main(["run", "--n-cells", "300", "--max-epochs", "1", "--lambda", "auto", "--out", str(out), "--quiet"])
    report = json.loads((out / "report.json").read_text())
    choice = report["lambda_choice"]
    assert report["lambda"] == "auto" and choice["lambda"] in choice["curve"]["lambda"]
    assert len(choice["curve"]["lambda"]) == 7 and "completeness gain" in choice["reason"]
    assert report["methods"]["indiseek"]["train_seconds"]["sweep"] > 0
    assert (out / "figures" / "indiseek_lambda_tradeoff.png").is_file()


def test_write_specific_fits_writes_every_fit_and_keeps_the_model(small_mdata):
    mdata = small_mdata.copy()
    IndiSeek.setup_mudata(mdata)
    model = IndiSeek(mdata, **TINY)
    model.train(**FIT, enable_progress_bar=False)
    own = {m: model.get_latent_representation(modality=m, kind="specific") for m in ("rna", "protein")}
    model.write_specific_fits(3, **FIT, enable_progress_bar=False)
    for m in ("rna", "protein"):
        fits = mdata.obsm[f"X_indiseek_specific_{m}_fits"]
        assert fits.shape == (mdata.n_obs, 3, 4)
        np.testing.assert_array_equal(fits[:, 0], own[m])  # the model's own fit first
        assert not np.allclose(fits[:, 1], fits[:, 2], atol=1e-2)  # the new fits start apart
        np.testing.assert_array_equal(model.get_latent_representation(modality=m, kind="specific"), own[m])
    assert model.train_times_["fits"] > 0 and model.lambda_in_use == {
        m: s.lambda_ for m, s in model.module.specific.items()
    }
    indiseek.tl.theta_scores(
        mdata, rna_key="X_indiseek_specific_rna_fits", protein_key="X_indiseek_specific_protein_fits"
    )
    assert mdata.obs["theta"].notna().all()

    with pytest.raises(ValueError, match="n_fits.*write_embeddings"):
        model.write_specific_fits(1)
    del mdata.obsm["X_indiseek_specific_rna_fits"]
    with pytest.raises(FloatingPointError):  # a fit that fails writes nothing and leaves the model as it was
        model.write_specific_fits(2, **{**FIT, "lr": 1e30}, enable_progress_bar=False)
    assert "X_indiseek_specific_rna_fits" not in mdata.obsm
    np.testing.assert_array_equal(model.get_latent_representation(modality="rna", kind="specific"), own["rna"])
    clip = IndiSeek(mdata, method="clip", **TINY)
    clip.train(**FIT, enable_progress_bar=False)
    with pytest.raises(ValueError, match="clip"):
        clip.write_specific_fits(2)


def test_lambda_per_modality_each_stage_stops_early_as_its_own_lambda_would(small_mdata):
    """Each specific stage stops on its own validation loss: the other modality's lambda, which trains its stage
    longer, leaves it as a single lambda leaves it."""
    specific, epochs = {}, {}
    for name, lambda_ in (("rna", 0.1), ("protein", 1000.0), ("both", {"rna": 0.1, "protein": 1000.0})):
        mdata = small_mdata.copy()
        IndiSeek.setup_mudata(mdata)
        model = IndiSeek(mdata, **TINY, lambda_=lambda_)
        model.train(**{**FIT, "max_epochs": 40}, lr=1e-2, early_stopping_patience=3, enable_progress_bar=False)
        specific[name] = {m: model.get_latent_representation(modality=m, kind="specific") for m in ("rna", "protein")}
        epochs[name] = model.epochs_trained["specific"]
    assert epochs["rna"] < epochs["both"]  # at lambda 0.1 both stages stop early; at 1000 the protein stage goes on
    for m in ("rna", "protein"):
        np.testing.assert_allclose(specific["both"][m], specific[m][m], atol=1e-5)


def test_lambda_per_modality_fits_each_stage_as_its_own_lambda_would(small_mdata, tmp_path):
    """Each specific stage, in training (for the same epochs) and in more fits, is the one a single lambda gives; a
    save keeps both."""
    specific = {}
    for name, lambda_ in (("rna", 0.1), ("protein", 1000.0), ("both", {"rna": 0.1, "protein": 1000.0})):
        mdata = small_mdata.copy()
        IndiSeek.setup_mudata(mdata)
        model = IndiSeek(mdata, **TINY, lambda_=lambda_)
        model.train(**FIT, enable_progress_bar=False)
        model.write_specific_fits(2, **FIT, enable_progress_bar=False)
        specific[name] = {m: mdata.obsm[f"X_indiseek_specific_{m}_fits"] for m in ("rna", "protein")}
    for m in ("rna", "protein"):
        np.testing.assert_allclose(specific["both"][m], specific[m][m], atol=1e-4)
        other = "protein" if m == "rna" else "rna"
        assert not np.allclose(specific["both"][m], specific[other][m], atol=1e-2)
    assert model.lambda_in_use == {"rna": 0.1, "protein": 1000.0}
    model.save(tmp_path / "model")
    loaded = IndiSeek.load(tmp_path / "model", mdata)
    assert loaded.lambda_in_use == model.lambda_in_use
    np.testing.assert_array_equal(
        loaded.get_latent_representation(modality="protein", kind="specific"),
        model.get_latent_representation(modality="protein", kind="specific"),
    )
