"""The default run keeps the biology (slow): seed 0 of the simulator, 5,000 cells, the `indiseek run` budget.

Measured on this configuration (docs/results.md): kNN accuracy of level-2 types from `X_indiseek` 0.98x the
no-learning reference's, Spearman's rho of theta against the true RNA specificity 0.886, held-out R^2 of the other
modality's shared features from Z at most 0.095, all at one thread. At two threads the same run gives rho 0.799 and
R^2 0.15: the bounds leave that margin for other machines and library versions.
"""

import numpy as np
import pytest
import torch
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

import indiseek
from indiseek import IndiSeek


def _knn(x, labels):
    return cross_val_score(KNeighborsClassifier(15), x, labels, cv=StratifiedKFold(5, shuffle=True, random_state=0))


@pytest.mark.slow
def test_default_run_keeps_level2_types_and_ranks_them_by_theta():
    torch.set_num_threads(1)
    mdata = indiseek.datasets.simulate_citeseq(n_cells=5000, seed=0, progress_bar=False)
    labels = mdata.obs["celltype.l2"].astype(str).to_numpy()
    IndiSeek.setup_mudata(mdata)
    model = IndiSeek(mdata)
    model.train(seed=0, enable_progress_bar=False)
    model.write_embeddings()

    reference = np.hstack([indiseek.pp.standard_rna_pcs(mdata["rna"]), indiseek.pp.clr(mdata["prot"].X)])
    ratio = _knn(mdata.obsm["X_indiseek"], labels).mean() / _knn(reference, labels).mean()
    assert ratio >= 0.93

    indiseek.tl.theta_scores(mdata)
    rho, _ = indiseek.tl.rank_correlation(mdata, reference=dict(mdata.uns["simulation"]["rna_specificity"]))
    assert rho >= 0.78
    for mod, other in (("rna", "protein"), ("protein", "rna")):
        leak = indiseek.tl.independence(mdata, f"X_indiseek_specific_{mod}", f"X_indiseek_shared_{other}", seed=0)
        assert leak["r2"] <= 0.18
