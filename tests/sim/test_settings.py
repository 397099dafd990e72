import numpy as np
import pytest

from indiseek.sim import DISCRETE_VALUES, IDEAL_COORDINATES, ideal_coordinates, oracle_shared, simulate_setting


@pytest.mark.parametrize("setting", [1, 2, 3, 4])
def test_shapes_and_dtypes(setting):
    X, C = simulate_setting(setting, n=200, seed=0)
    assert X.shape == (200, 6) and C.shape == (200, 2)
    assert X.dtype == np.float32 and C.dtype == np.float32
    assert np.isfinite(X).all() and np.isfinite(C).all()


@pytest.mark.parametrize("setting", [1, 3])
def test_setting_1_and_3_shared(setting):
    X, C = simulate_setting(setting, n=500, seed=1)
    ax = X[:, :2].astype(np.float64)
    assert np.allclose(C, 0.5 * ax + 0.2 * np.sin(ax) + 0.2 * ax**3, rtol=1e-5, atol=1e-5)


def test_setting_1_gaussian():
    X, _ = simulate_setting(1, n=20000, seed=0)
    assert np.allclose(X.mean(axis=0), 0, atol=0.05)
    assert np.allclose(np.cov(X.T), np.eye(6), atol=0.05)


@pytest.mark.parametrize("setting", [2, 4])
def test_setting_2_and_4_definition(setting):
    X, C = simulate_setting(setting, n=500, seed=2)
    np.testing.assert_array_equal(X[:, 2], np.float32(0.2) * (X[:, 0] + X[:, 1]))
    np.testing.assert_array_equal(X[:, 3], X[:, 0] * X[:, 1])
    np.testing.assert_array_equal(C, X[:, :2])


@pytest.mark.parametrize("setting", [1, 2, 3, 4])
def test_oracle_shared_matches_the_data_and_extends_off_it(setting):
    X, C = simulate_setting(setting, n=300, seed=5)
    np.testing.assert_array_equal(oracle_shared(setting, X), C)
    masked = X.copy()
    masked[:, 0] = 0.0
    assert np.all(oracle_shared(setting, masked)[:, 0] == 0) and np.array_equal(
        oracle_shared(setting, masked)[:, 1], C[:, 1]
    )
    with pytest.raises(ValueError, match=r"\(n, 6\)"):
        oracle_shared(setting, X[:, :5])


def test_discrete_coordinates():
    assert np.isclose(np.mean(DISCRETE_VALUES), 0) and np.isclose(np.mean(DISCRETE_VALUES**2), 1)
    support = DISCRETE_VALUES.astype(np.float32)
    X3, _ = simulate_setting(3, n=3000, seed=0)
    assert np.isin(X3[:, 2:], support).all()
    assert len(np.unique(X3[:, 2])) == 6
    assert not np.isin(X3[:, :2], support).all()
    X4, _ = simulate_setting(4, n=3000, seed=0)
    assert np.isin(X4[:, 4:], support).all()
    assert not np.isin(X4[:, :2], support).all()


def test_seeds():
    a, b, c = simulate_setting(1, 50, seed=3), simulate_setting(1, 50, seed=3), simulate_setting(1, 50, seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_ideal_coordinates():
    assert IDEAL_COORDINATES == {1: (2, 3, 4, 5), 2: (4, 5), 3: (2, 3, 4, 5), 4: (4, 5)}
    assert ideal_coordinates(4) == (4, 5)


@pytest.mark.parametrize("bad", [0, 5, "1"])
def test_invalid_setting(bad):
    with pytest.raises(ValueError, match="1, 2, 3, 4"):
        simulate_setting(bad)
    with pytest.raises(ValueError, match="allowed"):
        ideal_coordinates(bad)
