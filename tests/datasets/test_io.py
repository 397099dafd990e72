import tarfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse
from scipy.io import mmwrite

from indiseek.datasets._io import bmcite, from_anndata, read_10x

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"


def _real(name: str) -> Path:
    path = REAL / name
    if not path.exists():
        pytest.skip(f"real data file {path} not available (expected in ../shared/data/real/)")
    return path


def test_from_anndata_dataframe_with_labels():
    adata = ad.read_h5ad(_real("pbmc5k_cite_200cells.h5ad"))
    before = adata.copy()
    mdata = from_anndata(adata)
    assert set(mdata.mod) == {"rna", "prot"}
    assert mdata["rna"].shape == (200, 16581)
    assert mdata["prot"].shape == (200, 29)
    assert list(mdata["prot"].var_names) == list(adata.obsm["protein_counts"].columns)
    np.testing.assert_array_equal(mdata["prot"].X, adata.obsm["protein_counts"].to_numpy())
    assert "protein_counts" not in mdata["rna"].obsm
    for obs in (mdata.obs, mdata["rna"].obs, mdata["prot"].obs):
        assert obs["cell_type"].isna().sum() == 3
        assert obs["cell_type"].nunique() == 7
    # the input is untouched
    assert "protein_counts" in adata.obsm
    assert (adata.X != before.X).nnz == 0


def test_from_anndata_array_with_uns_names():
    adata = ad.read_h5ad(_real("pbmc10k_cite_200cells.h5ad"))
    mdata = from_anndata(adata)
    assert mdata["prot"].shape == (200, 14)
    assert list(mdata["prot"].var_names) == list(adata.uns["protein_names"])
    np.testing.assert_array_equal(mdata["prot"].X, adata.obsm["protein_expression"])
    assert "protein_names" in adata.uns and "protein_names" not in mdata["rna"].uns


def test_from_anndata_errors():
    adata = ad.AnnData(np.ones((4, 3), dtype=np.float32))
    with pytest.raises(KeyError, match="protein_expression"):
        from_anndata(adata)
    adata.obsm["protein_expression"] = np.ones((4, 2))
    with pytest.raises(KeyError, match="protein_names"):
        from_anndata(adata)
    with pytest.raises(KeyError, match="adt"):
        from_anndata(adata, protein_key="adt")


def test_read_10x_tarball_ignores_stray_files(tmp_path):
    tarball = _real("pbmc10k_cite_tiny_10x_mtx.tar.gz")
    mdata = read_10x(tarball)
    assert mdata["rna"].shape == (1024, 100)
    assert mdata["prot"].shape == (1024, 17)
    assert (mdata["prot"].var["feature_types"] == "Antibody Capture").all()
    assert mdata["rna"].var_names.is_unique and mdata["prot"].var_names.is_unique
    assert sparse.issparse(mdata["rna"].X)
    assert np.all(mdata["prot"].X >= 0) and np.allclose(mdata["prot"].X, np.round(mdata["prot"].X))

    # the same data as an extracted folder, and as the folder that contains it
    with tarfile.open(tarball) as tar:
        tar.extractall(tmp_path, filter="data")
    for folder in (tmp_path, tmp_path / "filtered_feature_bc_matrix"):
        again = read_10x(folder)
        np.testing.assert_array_equal(again["prot"].X, mdata["prot"].X)
        assert list(again.obs_names) == list(mdata.obs_names)


def test_read_10x_refuses_unsafe_archive(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    (tmp_path / "x.txt").write_text("x")
    with tarfile.open(evil, "w:gz") as tar:
        tar.add(tmp_path / "x.txt", arcname="../x.txt")
    with pytest.raises(ValueError, match="unsafe"):
        read_10x(evil)


def _write_10x_h5(path: Path, x: sparse.csr_matrix, barcodes, ids, names, types):
    """A minimal Cell Ranger v3 feature-barcode h5 (features x cells in CSC = cells x features in CSR)."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        m = f.create_group("matrix")
        m["barcodes"] = np.array(barcodes, dtype="S")
        m["data"], m["indices"], m["indptr"] = x.data.astype(np.int32), x.indices, x.indptr
        m["shape"] = np.array([x.shape[1], x.shape[0]], dtype=np.int32)
        feats = m.create_group("features")
        feats["id"], feats["name"] = np.array(ids, dtype="S"), np.array(names, dtype="S")
        feats["feature_type"] = np.array(types, dtype="S")
        feats["genome"] = np.array(["GRCh38"] * len(ids), dtype="S")
        feats["_all_tag_keys"] = np.array([b"genome"])


def test_read_10x_h5(tmp_path):
    rng = np.random.default_rng(0)
    x = sparse.random(12, 7, density=0.5, format="csr", random_state=rng, data_rvs=lambda n: rng.integers(1, 9, n))
    types = ["Gene Expression"] * 4 + ["Antibody Capture"] * 3
    names = ["A", "B", "B", "C", "CD3", "CD4", "CD8"]  # a duplicated gene name
    barcodes = [f"cell{i}-1" for i in range(12)]
    _write_10x_h5(tmp_path / "f.h5", x, barcodes, [f"id{i}" for i in range(7)], names, types)
    mdata = read_10x(tmp_path / "f.h5")
    assert mdata["rna"].shape == (12, 4) and mdata["prot"].shape == (12, 3)
    assert mdata["rna"].var_names.is_unique
    np.testing.assert_array_equal(mdata["prot"].X, x[:, 4:].toarray())

    with pytest.raises(FileNotFoundError):
        read_10x(tmp_path / "nowhere")
    _write_10x_h5(tmp_path / "gex.h5", x[:, :4], barcodes, list("abcd"), list("ABCD"), types[:4])
    with pytest.raises(ValueError, match="Antibody Capture"):
        read_10x(tmp_path / "gex.h5")


def _write_bmcite(folder: Path, n_cells: int = 30, adt_format: str = "mtx"):
    rng = np.random.default_rng(1)
    genes = [f"G{i}" for i in range(15)] + ["CD4"]
    proteins = ["CD4", "CD8a", "CD19", "HLA.DR"]
    barcodes = [f"a{i}_BM" for i in range(n_cells)]
    rna = sparse.random(len(genes), n_cells, density=0.3, format="coo", random_state=1)
    rna.data = np.ceil(rna.data * 10)
    adt = rng.poisson(20, size=(len(proteins), n_cells))
    folder.mkdir(parents=True, exist_ok=True)
    mmwrite(folder / "rna_counts.mtx", rna)
    (folder / "rna_genes.txt").write_text("\n".join(genes) + "\n")
    (folder / "barcodes.txt").write_text("\n".join(barcodes) + "\n")
    if adt_format == "mtx":
        mmwrite(folder / "adt_counts.mtx", sparse.coo_matrix(adt))
        (folder / "adt_names.txt").write_text("\n".join(proteins) + "\n")
    else:
        pd.DataFrame(adt, index=proteins, columns=barcodes).to_csv(folder / "adt_counts.csv")
    l2 = rng.choice(["CD4 Naive", "CD8 Naive", "Naive B", "pDC"], size=n_cells).astype(object)
    l2[0] = np.nan
    l1 = pd.Series(l2).map({"CD4 Naive": "T cell", "CD8 Naive": "T cell", "Naive B": "B cell", "pDC": "DC"})
    meta = pd.DataFrame({"nCount_RNA": rna.sum(0).A1, "celltype.l1": l1.to_numpy(), "celltype.l2": l2}, index=barcodes)
    meta.iloc[::-1].to_csv(folder / "metadata.csv")  # row order need not match barcodes.txt
    return rna, adt, meta


@pytest.mark.parametrize("adt_format", ["mtx", "csv"])
def test_bmcite_roundtrip(tmp_path, adt_format):
    rna, adt, meta = _write_bmcite(tmp_path / "bm", adt_format=adt_format)
    mdata = bmcite(tmp_path / "bm")
    assert mdata["rna"].shape == (30, 16) and mdata["prot"].shape == (30, 4)
    np.testing.assert_array_equal(mdata["rna"].X.toarray(), rna.T.toarray())
    np.testing.assert_array_equal(mdata["prot"].X, adt.T)
    assert list(mdata.obs_names) == list(meta.index)
    for obs in (mdata.obs, mdata["rna"].obs, mdata["prot"].obs):
        assert obs["celltype.l2"].dtype == "category"
        assert obs["celltype.l2"].isna().sum() == 1
        assert list(obs["celltype.l1"].astype(str)[1:]) == list(meta["celltype.l1"].astype(str)[1:])


def test_bmcite_missing_files(tmp_path):
    _write_bmcite(tmp_path / "bm")
    (tmp_path / "bm" / "adt_names.txt").unlink()
    (tmp_path / "bm" / "metadata.csv").unlink()
    with pytest.raises(FileNotFoundError, match="metadata.csv, adt_names.txt") as err:
        bmcite(tmp_path / "bm")
    assert 'LoadData(ds = "bmcite")' in str(err.value)
    with pytest.raises(FileNotFoundError, match="InstallData"):
        bmcite(tmp_path / "absent")
