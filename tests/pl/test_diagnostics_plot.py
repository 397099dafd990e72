import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from anndata import AnnData
from matplotlib.figure import Figure

from indiseek import pl


def _result(with_completeness: bool = True) -> dict:
    entry = {
        "independence_r2": -0.04,
        "independence_r2_linear": 0.12,
        "independence_hsic": 1e-4,
        "independence_p_value": 0.42,
    }
    if with_completeness:
        entry |= {"completeness_r2_joint": 0.81, "completeness_r2_shared": 0.45, "completeness_r2_specific": 0.3}
    protein = dict(entry, independence_r2=0.35, independence_p_value=0.005)
    return {"rna": entry, "protein": protein, "params": {"method": "indiseek"}}


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_from_uns_writes_png(tmp_path):
    adata = AnnData(np.zeros((3, 1)))
    adata.uns["diagnostics"] = _result()
    path = tmp_path / "diag.png"
    fig = pl.diagnostics(adata, title="IndiSeek", save=path)
    assert isinstance(fig, Figure)
    rna, protein = fig.axes
    assert rna.get_title() == "RNA" and protein.get_title() == "protein"
    assert len(rna.patches) == 5
    assert "p = 0.42" in _texts(rna) and "p = 0.005" in _texts(protein)
    assert "0.81" in _texts(rna)
    labels = [t.get_text() for t in rna.get_xticklabels()]
    assert labels == ["X from\nC", "X from\nZ", "X from\n(Z, C)", "C_protein\nfrom Z,\nlinear", "C_protein\nfrom Z"]
    assert rna.get_ylim()[0] < -0.04
    assert path.exists() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plt.close(fig)


def test_independence_only_into_given_axes():
    fig, axes = plt.subplots(1, 1)
    out = pl.diagnostics(_result(with_completeness=False), modalities=["protein"], axes=[axes])
    assert out == [axes]
    assert len(axes.patches) == 2
    plt.close(fig)


def test_errors():
    with pytest.raises(KeyError, match="tl.diagnostics"):
        pl.diagnostics(AnnData(np.zeros((3, 1))))
    with pytest.raises(KeyError, match="lack modalities"):
        pl.diagnostics(_result(), modalities=["atac"])
    with pytest.raises(ValueError, match="2 modalities"):
        fig, ax = plt.subplots()
        pl.diagnostics(_result(), axes=[ax])
    plt.close("all")
