"""Measures shared by the biology benchmarks: kNN accuracy of labels and the no-learning reference inputs."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

import indiseek


def knn_accuracy(x: np.ndarray, labels: np.ndarray) -> float:
    """5-fold stratified kNN (k = 15) accuracy of ``labels`` from ``x``."""
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    return float(cross_val_score(KNeighborsClassifier(15), x, labels, cv=folds).mean())


def reference_inputs(rna, protein_counts, n_top_genes: int = 2000) -> dict[str, np.ndarray]:
    """No learning: 50 principal components of scaled highly variable genes, and the protein CLR."""
    x = protein_counts.toarray() if hasattr(protein_counts, "toarray") else protein_counts
    return {"rna": indiseek.pp.standard_rna_pcs(rna, n_top_genes=n_top_genes), "protein": indiseek.pp.clr(x)}


def knn_fields(knn: dict[str, float], knn_ref: dict[str, float]) -> dict[str, dict[str, float]]:
    """The JSON fields of kNN accuracies, the reference's and their ratios (on the keys both have), rounded."""
    return {
        "knn": {k: round(v, 3) for k, v in knn.items()},
        "knn_reference": {k: round(v, 3) for k, v in knn_ref.items()},
        "knn_ratio": {k: round(knn[k] / knn_ref[k], 3) for k in knn if k in knn_ref},
    }
