"""The baselines run through the same API and differ from IndiSeek only in their objective terms."""

import numpy as np
import pytest
import torch

import indiseek
from indiseek import IndiSeek
from indiseek.module import SpecificModule, get_objective
from indiseek.nn import CriticCLUB, GaussianCLUB, ReverseRidgeCLUB, RidgeCLUB


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 12, generator=g)
    return x, torch.randn(64, 4, generator=g), torch.randn(64, 4, generator=g)


def _module(method, seed=0):
    torch.manual_seed(seed)
    return SpecificModule(12, 4, 3, get_objective(method), lambda_=1.0, n_hidden=16, n_layers=3)


@pytest.mark.parametrize(
    ("method", "independence_sees", "capture_sees"),
    [("indiseek", "other", "own"), ("factorizedcl", "own", "own"), ("infodisen", "own", "other")],
)
def test_each_term_sees_the_documented_shared_features(batch, method, independence_sees, capture_sees):
    x, c_own, c_other = batch
    module = _module(method)
    base = module.loss(x, c_own, c_other)
    moved_own = module.loss(x, c_own + 3.0, c_other)
    moved_other = module.loss(x, c_own, c_other + 3.0)
    for term, sees in (("independence", independence_sees), ("capture", capture_sees)):
        changed_by_own = not torch.allclose(base[term], moved_own[term])
        changed_by_other = not torch.allclose(base[term], moved_other[term])
        assert (changed_by_own, changed_by_other) == (sees == "own", sees == "other"), term


def test_same_encoder_for_every_method():
    encoders = [_module(m).encoder.state_dict() for m in ("indiseek", "factorizedcl", "infodisen")]
    for other in encoders[1:]:
        for key, value in encoders[0].items():
            torch.testing.assert_close(value, other[key])


def test_only_club_methods_have_an_estimator():
    assert _module("indiseek").estimator is not None
    assert _module("factorizedcl").estimator is not None
    assert _module("infodisen").estimator is None


def _draw(n, generator, dependent):
    """Pairs whose only dependence is in the joint of z: the sign of c decides whether z1 and z2 agree."""
    c = torch.randn(n, 1, generator=generator)
    u = torch.randn(n, 1, generator=generator)
    second = torch.sign(c) * u if dependent else torch.randn(n, 1, generator=generator)
    return torch.cat([u, second + 0.1 * torch.randn(n, 1, generator=generator)], dim=1), c


def _fitted_bound(estimator, dependent, steps=400):
    g = torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(estimator.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = estimator.learning_loss(*_draw(256, g, dependent))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return float(estimator(*_draw(8192, g, dependent)))


def test_critic_club_sees_a_dependence_the_gaussian_misses():
    torch.manual_seed(0)
    gaussian = _fitted_bound(GaussianCLUB(2, 1, n_hidden=32, n_layers=3), dependent=True)
    critic = _fitted_bound(CriticCLUB(2, 1, n_hidden=32, n_layers=3), dependent=True)
    critic_independent = _fitted_bound(CriticCLUB(2, 1, n_hidden=32, n_layers=3), dependent=False)
    assert critic > 0.5  # I(Z; C) is close to log 2 here, and the bound adds the lautum information
    assert abs(gaussian) < 0.1 and abs(critic_independent) < 0.1


def test_standardised_club_is_not_lowered_by_shrinking_z():
    """Shrinking Z lowers the raw Gaussian estimate of q fitted to Z, but not the standardised one."""
    g = torch.Generator().manual_seed(0)
    c = torch.randn(2048, 2, generator=g)
    z = torch.cat([c[:, :1] + 0.5 * torch.randn(2048, 1, generator=g), torch.randn(2048, 1, generator=g)], dim=1)
    bounds = {}
    for standardize in (False, True):
        torch.manual_seed(0)
        estimator = GaussianCLUB(2, 2, n_hidden=32, n_layers=3, standardize=standardize)
        optimizer = torch.optim.Adam(estimator.parameters(), lr=3e-3)
        for _ in range(300):
            loss = estimator.learning_loss(z, c)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            bounds[standardize] = (float(estimator(z, c)), float(estimator(0.1 * z, c)))
    raw, standardised = bounds[False], bounds[True]
    assert raw[0] > 3 and standardised[0] > 3  # 4.0 nats with the exact q (I(Z; C) itself is 0.81)
    assert raw[1] < 0.1 * raw[0]
    assert standardised[1] == pytest.approx(standardised[0], rel=1e-4)


def test_ridge_club_reads_linear_dependence_at_once_and_misses_a_product():
    """No fitting steps: the first batch's estimate is the closed form sum_j R^2_j / (1 - R^2_j); a dependence
    that no linear map of C predicts (z = c1 c2) reads about 0."""
    g = torch.Generator().manual_seed(0)
    c = torch.randn(4096, 2, generator=g)
    noise = torch.randn(4096, 2, generator=g)
    linear = torch.cat([c[:, :1] + 0.5 * noise[:, :1], noise[:, 1:]], dim=1)  # R^2 = 0.8 on the first coordinate
    product = torch.cat([(c[:, :1] * c[:, 1:]), noise[:, 1:]], dim=1)
    estimator = RidgeCLUB(2, 2)
    assert not list(estimator.parameters())
    assert float(estimator(linear, c)) == pytest.approx(4.0, abs=0.3)
    assert abs(float(RidgeCLUB(2, 2)(product, c))) < 0.05
    assert abs(float(RidgeCLUB(2, 2)(noise, c))) < 0.05
    # the statistics are averaged over training batches and kept, not updated, in evaluation
    moments = estimator.state_dict()
    estimator.eval()
    estimator(noise, c)
    for key, value in estimator.state_dict().items():
        torch.testing.assert_close(value, moments[key])


def test_reverse_ridge_club_charges_a_direction_of_little_variance():
    """A direction of Z that equals C but holds 1% of each coordinate's variance: regressing each coordinate of Z on
    C reads almost nothing, regressing C on Z reads it in full, and the encoder receives the gradient."""
    g = torch.Generator().manual_seed(0)
    c = torch.randn(4096, 1, generator=g)
    common = torch.randn(4096, 1, generator=g)
    z = torch.cat([common + 0.1 * c, common - 0.1 * c], dim=1).requires_grad_()
    assert float(RidgeCLUB(2, 1)(z, c)) < 0.05
    bound = ReverseRidgeCLUB(2, 1)(z, c)
    assert float(bound) > 3
    bound.backward()
    assert z.grad.abs().sum() > 0
    assert abs(float(ReverseRidgeCLUB(2, 1)(torch.randn(4096, 2, generator=g), c))) < 0.05


def test_club_estimator_option():
    X, C = indiseek.sim.simulate_setting(2, n=600, seed=0)
    enc = indiseek.fit_specific(X, shared=C, club_estimator="critic", n_specific=4, n_hidden=16, n_layers=3,
                                max_epochs=2, progress_bar=False)  # fmt: skip
    assert isinstance(enc.module.estimator, CriticCLUB) and np.isfinite(enc(X)).all()
    assert np.isfinite(enc.history.to_numpy()).all()
    with pytest.raises(ValueError, match="club_estimator"):
        indiseek.fit_specific(X, shared=C, club_estimator="kde")
    for name, standardize in (("gaussian", True), ("gaussian_raw", False)):
        enc = indiseek.fit_specific(X, shared=C, club_estimator=name, n_specific=4, n_hidden=16, n_layers=3,
                                    max_epochs=1, progress_bar=False)  # fmt: skip
        assert enc.module.estimator.standardize is standardize


@pytest.mark.parametrize(
    ("name", "estimator"),
    [("critic", CriticCLUB), ("gaussian", GaussianCLUB), ("ridge", RidgeCLUB), ("ridge_reverse", ReverseRidgeCLUB)],
)
def test_model_with_each_estimator_round_trips(small_mdata, tmp_path, name, estimator):
    mdata = small_mdata.copy()
    IndiSeek.setup_mudata(mdata)
    with pytest.raises(ValueError, match="club_estimator"):
        IndiSeek(mdata, club_estimator="kde")
    assert IndiSeek(mdata).init_params_["non_kwargs"]["club_estimator"] == "ridge"
    model = IndiSeek(mdata, club_estimator=name, n_shared=6, n_specific=5, n_hidden=16, n_layers=3, n_pcs=20)
    model.train(max_epochs=2, batch_size=64, lr=1e-3, enable_progress_bar=False)
    assert isinstance(model.module.specific["rna"].estimator, estimator)
    model.save(tmp_path / "model")
    loaded = IndiSeek.load(tmp_path / "model", mdata)
    np.testing.assert_allclose(
        loaded.get_latent_representation(modality="rna", kind="specific"),
        model.get_latent_representation(modality="rna", kind="specific"),
        rtol=1e-5,
        atol=1e-6,
    )
    # the specific stages of several lambdas run side by side (vectorised) with this estimator too
    sweep = model.sweep_lambda([0.1, 10.0], max_epochs=1, batch_size=64, enable_progress_bar=False)
    assert list(sweep.index) == [0.1, 10.0] and np.isfinite(sweep.to_numpy(dtype=float)).all()


@pytest.mark.parametrize("method", ["factorizedcl", "infodisen", "clip"])
def test_baselines_through_the_model_api(small_mdata, method):
    mdata = small_mdata.copy()
    IndiSeek.setup_mudata(mdata)
    model = IndiSeek(mdata, method=method, n_shared=6, n_specific=5, n_hidden=16, n_layers=3, n_pcs=20)
    model.train(max_epochs=2, batch_size=64, lr=1e-3, enable_progress_bar=False)
    model.write_embeddings()
    assert mdata.obsm[f"X_{method}_shared_rna"].shape == (mdata.n_obs, 6)
    if method == "clip":
        assert model.get_latent_representation().shape == (mdata.n_obs, 12)
        assert f"X_{method}_specific_rna" not in mdata.obsm
        with pytest.raises(ValueError, match="shared features only"):
            model.get_latent_representation(kind="specific")
    else:
        assert mdata.obsm[f"X_{method}"].shape == (mdata.n_obs, 22)
        assert model.epochs_trained == {"shared": 2, "specific": 2}


def test_fit_specific_is_callable_on_arrays():
    X, C = indiseek.sim.simulate_setting(2, n=600, seed=0)
    enc = indiseek.fit_specific(X, shared=C, lambda_=0.1, n_specific=4, n_hidden=16, n_layers=3, max_epochs=2,
                                progress_bar=False)  # fmt: skip
    Z = enc(X[:50])
    assert Z.shape == (50, 4) and np.isfinite(Z).all()
    np.testing.assert_array_equal(enc(X[:50]), Z)
    assert list(enc.history.index) == [0, 1]
    with pytest.raises(ValueError, match="shape"):
        enc(X[:, :3])


def test_fit_specific_weight_decay_shrinks_the_encoder():
    X, C = indiseek.sim.simulate_setting(1, n=600, seed=0)
    kwargs = dict(lambda_=0.1, n_specific=4, n_hidden=16, n_layers=3, max_epochs=10, lr=1e-2, progress_bar=False)

    def encoder_norm(weight_decay: float) -> float:
        enc = indiseek.fit_specific(X, shared=C, weight_decay=weight_decay, **kwargs)
        return sum(float(p.norm()) for p in enc.module.encoder.parameters())

    assert encoder_norm(1.0) < 0.5 * encoder_norm(0.0)


def test_fit_specific_errors():
    X, C = indiseek.sim.simulate_setting(1, n=200, seed=0)
    with pytest.raises(ValueError, match="learns no specific features"):
        indiseek.fit_specific(X, shared=C, method="clip")
    with pytest.raises(ValueError, match="same number of rows"):
        indiseek.fit_specific(X, shared=C[:-1])
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        indiseek.fit_specific(bad, shared=C)


@pytest.mark.slow
def test_setting1_indiseek_ignores_shared_coordinates():
    """Paper, Setting 1: IndiSeek at lambda = 0.1 puts (almost) no importance on x1, x2."""
    record = indiseek.sim.run_setting(1, method="indiseek", lambda_=0.1, runs=2, progress_bar=False)
    assert sum(record["importance"][:2]) < 0.1


@pytest.mark.slow
def test_setting2_indiseek_picks_the_specific_coordinates_at_small_lambda():
    """Paper, Setting 2: at lambda = 0.01 IndiSeek depends on x5, x6 and (almost) nothing else."""
    record = indiseek.sim.run_setting(2, method="indiseek", lambda_=0.01, runs=1, progress_bar=False)
    assert record["ideal_share"] > 0.85


def test_adamw_fades_the_dependence_on_a_coordinate_the_data_never_moves():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.standard_normal((800, 3)), np.zeros(800)]).astype(np.float32)
    C = X[:, :1].copy()
    probe = np.zeros((200, 4), dtype=np.float32)
    probe[:, :3] = rng.standard_normal((200, 3))
    moved = probe.copy()
    moved[:, 3] = 10.0
    response = {}
    for weight_decay in (0.0, 1.0):
        enc = indiseek.fit_specific(X, shared=C, optimizer="AdamW", weight_decay=weight_decay, lr=1e-2, n_specific=3,
                                    n_hidden=16, n_layers=3, max_epochs=20, progress_bar=False)  # fmt: skip
        response[weight_decay] = np.abs(enc(moved) - enc(probe)).mean() / np.abs(enc(probe)).mean()
    assert response[1.0] < 0.5 * response[0.0]
    with pytest.raises(ValueError, match="Unknown optimizer 'SGD'"):
        indiseek.fit_specific(X, shared=C, optimizer="SGD")
