import numpy as np
from scipy import sparse

from indiseek.model._data import _varying


def test_varying_features_of_sparse_counts_by_blocks_match_the_dense_count():
    rng = np.random.default_rng(0)
    x = rng.poisson(0.3, (301, 40)).astype(np.float32)
    x[:, 0] = 0  # never detected
    x[:, 1] = 3  # detected everywhere, constant
    x[:150, 2], x[150:, 2] = 0, 5  # constant within the first block, varying across blocks
    x[:, 3] = 0
    x[300, 3] = 1  # one count in the last, partial block
    expected = int((x.max(0) != x.min(0)).sum())
    stored_zeros = sparse.csr_matrix(x)
    stored_zeros.data[::7] = 0  # explicit zeros count as zeros
    dense_zeros = stored_zeros.toarray()
    assert _varying(x) == expected
    for block in (1, 64, 150, 1000):
        assert _varying(sparse.csr_matrix(x), block=block) == expected
        assert _varying(sparse.csc_matrix(x), block=block) == expected
        assert _varying(stored_zeros, block=block) == int((dense_zeros.max(0) != dense_zeros.min(0)).sum())
