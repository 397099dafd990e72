import os
import subprocess
import sys


def test_numba_code_keeps_the_torch_thread_count(real_data_dir):
    # A fresh process with PyTorch imported first, as in a user's script: numba's OpenMP layer (muon's WNN, UMAP)
    # then shares PyTorch's OpenMP runtime. In the test process other imports may load numba first, and the two
    # keep separate runtimes, which would hide the problem.
    path = real_data_dir / "pbmc5k_cite_200cells.h5ad"
    script = f"""
import numpy as np, torch
torch.set_num_threads(1)
import anndata as ad
import indiseek
mdata = indiseek.datasets.from_anndata(ad.read_h5ad({str(path)!r}))
indiseek.tl.wnn_weights(mdata)
after_wnn = torch.get_num_threads()
rng = np.random.default_rng(0)
for kind, mod in (("shared", "rna"), ("shared", "protein"), ("specific", "rna"), ("specific", "protein")):
    mdata.obsm[f"X_indiseek_{{kind}}_{{mod}}"] = rng.normal(size=(mdata.n_obs, 4))
mdata.obsm["X_indiseek"] = rng.normal(size=(mdata.n_obs, 16))
indiseek.pl.embeddings(mdata, color="wnn_rna_weight", rows=("rna",))
print(after_wnn, torch.get_num_threads())
"""
    # Without the single-thread settings of the test run (conftest.py), so that numba would use every core.
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == ["1", "1"]
