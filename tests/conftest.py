import os
from pathlib import Path

# One process per core (pytest-xdist): every numerical library single-threaded, here and in the notebooks' kernels,
# which inherit the environment. Set before torch and numpy load their thread pools.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pytest  # noqa: E402
import torch  # noqa: E402

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"


@pytest.fixture(scope="session", autouse=True)
def _single_thread():
    # Tiny networks: one thread avoids oversubscription on small shared machines.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip(f"real CITE-seq files not found at {REAL_DATA} (../shared/data/real beside the repository)")
    return REAL_DATA


@pytest.fixture(scope="session")
def small_mdata():
    from indiseek.datasets import simulate_citeseq

    return simulate_citeseq(n_cells=400, n_genes=300, n_proteins=12, n_types=8, n_lineages=2, seed=1)


@pytest.fixture(scope="session")
def trained(small_mdata):
    """A model trained for a few epochs on a private copy of the small data."""
    from indiseek import IndiSeek

    mdata = small_mdata.copy()
    IndiSeek.setup_mudata(mdata)
    model = IndiSeek(mdata, n_shared=8, n_specific=6, n_hidden=16, n_layers=3, n_pcs=20)
    model.train(max_epochs=3, batch_size=64, lr=1e-3, enable_progress_bar=False, seed=0)
    return model
