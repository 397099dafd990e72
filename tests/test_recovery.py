"""On simulated data with a known answer, each modality's specific features carry that modality's own identity."""

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from indiseek import IndiSeek


def _same_label_fraction(rep: np.ndarray, labels: np.ndarray, k: int = 10) -> np.ndarray:
    idx = NearestNeighbors(n_neighbors=k + 1).fit(rep).kneighbors(rep, return_distance=False)[:, 1:]
    return (labels[idx] == labels[:, None]).mean(1)


@pytest.fixture(scope="module")
def recovered():
    from indiseek.datasets import simulate_citeseq

    mdata = simulate_citeseq(n_cells=2000, n_genes=500, n_proteins=20, n_types=12, n_lineages=2, seed=0,
                             progress_bar=False)  # fmt: skip
    IndiSeek.setup_mudata(mdata)
    model = IndiSeek(mdata, n_shared=16, n_specific=16, n_hidden=64, n_layers=3, n_pcs=50, lambda_=10.0)
    model.train(max_epochs=30, lr=1e-3, enable_progress_bar=False, seed=0)
    return mdata, model


def test_specific_features_follow_the_modality_that_defines_the_type(recovered):
    mdata, model = recovered
    labels = mdata.obs["celltype.l2"].astype(str).to_numpy()
    beta_rna = _same_label_fraction(model.get_latent_representation(modality="rna", kind="specific"), labels)
    beta_protein = _same_label_fraction(model.get_latent_representation(modality="protein", kind="specific"), labels)
    obs = mdata.obs.assign(diff=beta_rna - beta_protein)
    per_type = obs.groupby("celltype.l2", observed=True).agg(diff=("diff", "mean"), s=("rna_specificity", "first"))
    rna_defined = per_type.loc[per_type.s >= 0.7, "diff"]
    protein_defined = per_type.loc[per_type.s <= 0.3, "diff"]
    assert len(rna_defined) >= 2 and len(protein_defined) >= 2
    # RNA-defined types are better separated by Z_rna (relative to Z_protein) than protein-defined types are
    assert rna_defined.mean() > protein_defined.mean() + 0.05
    assert per_type["diff"].corr(per_type["s"], method="spearman") > 0.5
