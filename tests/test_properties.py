"""Any small count matrix gives finite embeddings of the right shape, or a clear error raised by the package."""

import traceback
import warnings

import anndata as ad
import mudata as md
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import sparse

from indiseek import IndiSeek

N_SHARED, N_SPECIFIC = 3, 2


@st.composite
def count_data(draw):
    n_cells = draw(st.integers(3, 60))
    n_genes = draw(st.integers(2, 30))
    n_proteins = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    density = draw(st.sampled_from([0.02, 0.2, 0.8]))
    layout = draw(st.sampled_from(["dense", "csr", "csc"]))
    dtype = draw(st.sampled_from([np.int32, np.int64, np.float16, np.float32, np.float64]))
    rna = (rng.random((n_cells, n_genes)) < density) * rng.integers(1, 50, (n_cells, n_genes))
    protein = rng.poisson(rng.uniform(1, 200, n_proteins), (n_cells, n_proteins))
    if draw(st.booleans()):
        rna[draw(st.integers(0, n_cells - 1))] = 0  # an empty cell
    if draw(st.booleans()):
        rna[:, draw(st.integers(0, n_genes - 1))] = 0  # an undetected gene
    rna, protein = rna.astype(dtype), protein.astype(dtype)
    if layout != "dense":  # scipy.sparse has no float16
        rna = rna.astype(np.float32) if dtype == np.float16 else rna
        rna = getattr(sparse, f"{layout}_matrix")(rna)
    batch_size = draw(st.integers(1, max(1, n_cells)))
    return rna, protein, batch_size


def _raised_by_package(err: BaseException) -> bool:
    frames = traceback.extract_tb(err.__traceback__)
    return any("indiseek" in f.filename and "tests" not in f.filename for f in frames)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(count_data())
def test_any_counts_embed_or_fail_clearly(data):
    rna, protein, batch_size = data
    n_cells = rna.shape[0]
    names = [f"c{i}" for i in range(n_cells)]
    mods = {"rna": ad.AnnData(rna), "prot": ad.AnnData(protein)}
    for mod in mods.values():
        mod.obs_names = names
    mdata = md.MuData(mods)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            IndiSeek.setup_mudata(mdata)
            model = IndiSeek(mdata, n_shared=N_SHARED, n_specific=N_SPECIFIC, n_hidden=4, n_layers=2)
            model.train(max_epochs=1, batch_size=batch_size, train_size=1.0, enable_progress_bar=False, seed=0)
            z = model.get_latent_representation()
    except (ValueError, KeyError, TypeError) as err:
        assert _raised_by_package(err), f"{type(err).__name__} not raised by indiseek: {err}"
        assert len(str(err)) > 20, f"uninformative message: {err}"
        return
    assert z.shape == (n_cells, 2 * N_SHARED + 2 * N_SPECIFIC)
    assert np.isfinite(z).all()
