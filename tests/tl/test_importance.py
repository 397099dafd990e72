import logging

import numpy as np
import pytest

from indiseek.tl import masking_importance


def test_recovers_known_coordinates():
    def fn(x):
        return np.stack([np.sin(x[:, 2]), x[:, 4] ** 2, x[:, 2] * x[:, 4]], axis=1)

    imp = masking_importance(fn, d=6, n_points=500, seed=0)
    assert imp.shape == (6,)
    assert np.isclose(imp.sum(), 1.0)
    assert (imp >= 0).all()
    assert imp[[2, 4]].sum() == pytest.approx(1.0)
    assert np.allclose(imp[[0, 1, 3, 5]], 0)


def test_linear_map_matches_closed_form():
    # for fn(x) = x * w, zeta(j) = w_j^2 E[x_j^2], the same for every j up to w_j^2
    w = np.array([1.0, 2.0, 0.0, 3.0], dtype=np.float32)
    imp = masking_importance(lambda x: x * w, d=4, n_points=4000, seed=1)
    assert np.allclose(imp, w**2 / np.sum(w**2), atol=0.03)


def test_input_is_float32_and_in_range():
    seen = {}

    def fn(x):
        seen["dtype"], seen["min"], seen["max"] = x.dtype, x.min(), x.max()
        return x[:, :1]

    masking_importance(fn, d=3, n_points=100, low=-2.0, high=2.0)
    assert seen["dtype"] == np.float32 and -2 <= seen["min"] and seen["max"] <= 2


def test_reproducible_and_one_dimensional_output():
    a = masking_importance(lambda x: np.tanh(x[:, 0] + x[:, 1] ** 3), d=3, n_points=100, seed=5)
    b = masking_importance(lambda x: np.tanh(x[:, 0] + x[:, 1] ** 3), d=3, n_points=100, seed=5)
    np.testing.assert_array_equal(a, b)


def test_constant_map_gives_zeros(caplog):
    with caplog.at_level(logging.WARNING):
        imp = masking_importance(lambda x: np.ones((len(x), 2)), d=3, n_points=10)
    np.testing.assert_array_equal(imp, np.zeros(3))
    assert "zero importance" in caplog.text


def test_errors():
    with pytest.raises(ValueError, match="low < high"):
        masking_importance(lambda x: x, d=2, low=1.0, high=1.0)
    with pytest.raises(ValueError, match="shape"):
        masking_importance(lambda x: x[:5], d=2, n_points=10)
