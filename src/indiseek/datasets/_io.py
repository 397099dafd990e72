"""Readers of real CITE-seq files into a MuData with modalities ``"rna"`` and ``"prot"`` (raw counts)."""

from __future__ import annotations

import gzip
import logging
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
from mudata import MuData
from scipy import sparse
from scipy.io import mmread

logger = logging.getLogger(__name__)

#: ``.obsm`` keys searched, in order, for protein counts when ``protein_key`` is not given.
PROTEIN_OBSM_KEYS: tuple[str, ...] = ("protein_expression", "protein_counts")

_RNA_TYPE = "Gene Expression"
_PROTEIN_TYPE = "Antibody Capture"
_MATRIX_FILES = ("matrix.mtx.gz", "matrix.mtx")
_H5_NAME = "filtered_feature_bc_matrix.h5"


def _is_stray(name: str) -> bool:
    """Whether a path is operating-system litter (macOS resource forks, Finder metadata)."""
    parts = PurePosixPath(name).parts
    return any(p.startswith("._") or p == ".DS_Store" or p == "__MACOSX" for p in parts)


def _as_rna(x) -> sparse.csr_matrix:
    return sparse.csr_matrix(x, dtype=np.float32)


def _as_protein(x) -> np.ndarray:
    x = x.toarray() if sparse.issparse(x) else np.asarray(x)
    return x.astype(np.float32)


def _make_mudata(rna: ad.AnnData, prot: ad.AnnData, obs: pd.DataFrame | None = None) -> MuData:
    """Assemble the two modalities; ``obs`` columns go to ``mdata.obs`` and to both modalities' ``.obs``."""
    rna.var_names_make_unique()
    prot.var_names_make_unique()
    rna.obs = pd.DataFrame(index=rna.obs_names)
    prot.obs = pd.DataFrame(index=prot.obs_names)
    mdata = MuData({"rna": rna, "prot": prot})
    if obs is not None:
        obs = obs.loc[mdata.obs_names]
        for col in obs.columns:
            mdata.obs[col] = obs[col].values
        mdata.push_obs()
    return mdata


def _split_by_feature_type(adata: ad.AnnData, source: str) -> MuData:
    """Split a combined 10x AnnData into "rna" (Gene Expression) and "prot" (Antibody Capture)."""
    if "feature_types" not in adata.var:
        raise ValueError(
            f"{source} has no feature types (a Cell Ranger v2 output?): cannot find the 'Antibody Capture' features."
        )
    types = adata.var["feature_types"].astype(str)
    is_rna, is_prot = (types == _RNA_TYPE).to_numpy(), (types == _PROTEIN_TYPE).to_numpy()
    if not is_prot.any():
        raise ValueError(f"{source} has no '{_PROTEIN_TYPE}' features (feature types: {sorted(set(types))}).")
    if not is_rna.any():
        raise ValueError(f"{source} has no '{_RNA_TYPE}' features (feature types: {sorted(set(types))}).")
    other = sorted(set(types[~(is_rna | is_prot)]))
    if other:
        logger.warning("Ignoring features of type(s) %s in %s.", other, source)
    obs = pd.DataFrame(index=adata.obs_names)
    rna = ad.AnnData(_as_rna(adata.X[:, is_rna]), obs=obs.copy(), var=adata.var.loc[is_rna].copy())
    prot = ad.AnnData(_as_protein(adata.X[:, is_prot]), obs=obs.copy(), var=adata.var.loc[is_prot].copy())
    return _make_mudata(rna, prot)


def _find_matrix_dir(folder: Path) -> Path | None:
    """The folder holding ``matrix.mtx[.gz]``: ``folder`` itself or the single (or ``filtered_*``) one below it."""
    if any((folder / f).is_file() for f in _MATRIX_FILES):
        return folder
    found = sorted(
        {
            p.parent
            for f in _MATRIX_FILES
            for p in folder.rglob(f)
            if p.is_file() and not _is_stray(str(p.relative_to(folder)))
        }
    )
    if len(found) > 1:
        filtered = [p for p in found if p.name == "filtered_feature_bc_matrix"]
        if len(filtered) != 1:
            raise ValueError(f"Several matrix folders below {folder}: {[str(p) for p in found]}; pass one of them.")
        found = filtered
    return found[0] if found else None


def _safe_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = []
    for m in tar.getmembers():
        name = PurePosixPath(m.name)
        if name.is_absolute() or ".." in name.parts:
            raise ValueError(f"Refusing to extract unsafe path {m.name!r} from the archive.")
        if _is_stray(m.name):
            continue
        if m.isfile() or m.isdir():
            members.append(m)
    return members


def _read_10x_folder(folder: Path, source: str) -> MuData:
    matrix_dir = _find_matrix_dir(folder)
    if matrix_dir is None:
        h5 = [p for p in folder.rglob(_H5_NAME) if not _is_stray(str(p.relative_to(folder)))]
        if len(h5) == 1:
            return _read_10x_h5(h5[0])
        raise FileNotFoundError(f"No 10x matrix (matrix.mtx.gz, features.tsv.gz, barcodes.tsv.gz) found in {source}.")
    adata = sc.read_10x_mtx(matrix_dir, var_names="gene_symbols", make_unique=False, gex_only=False)
    return _split_by_feature_type(adata, source)


def _read_10x_h5(path: Path) -> MuData:
    adata = sc.read_10x_h5(path, gex_only=False)
    return _split_by_feature_type(adata, str(path))


def read_10x(path: str | Path) -> MuData:
    """Read a Cell Ranger CITE-seq output into a MuData.

    Parameters
    ----------
    path
        One of: a ``filtered_feature_bc_matrix/`` folder (``matrix.mtx.gz``, ``features.tsv.gz``,
        ``barcodes.tsv.gz``); a folder containing one (e.g. Cell Ranger's ``outs/``); a ``.tar.gz``
        (or ``.tgz``, ``.tar``) archive of such a folder; or a ``.h5`` feature-barcode matrix.
        Operating-system litter (macOS ``._*`` files, ``.DS_Store``, ``__MACOSX/``) is ignored.

    Returns
    -------
    MuData with modalities

    - ``"rna"``: cells x genes, raw UMI counts (``.X`` sparse CSR, float32), the "Gene Expression" features;
    - ``"prot"``: cells x antibodies, raw UMI counts (``.X`` dense float32), the "Antibody Capture" features.

    Var names are gene symbols / antibody names, made unique within each modality; ``.var`` keeps
    ``gene_ids`` and ``feature_types``. Other feature types (e.g. CRISPR guides) are dropped with a warning.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist or holds no 10x matrix.
    ValueError
        If the matrix has no "Antibody Capture" (or no "Gene Expression") features.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist.")
    if path.is_dir():
        return _read_10x_folder(path, str(path))
    name = path.name.lower()
    if name.endswith(".h5"):
        return _read_10x_h5(path)
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(path) as tar, tempfile.TemporaryDirectory(prefix="indiseek_10x_") as tmp:
            members = _safe_members(tar)
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp, members=members, **kwargs)  # noqa: S202 - members checked above
            return _read_10x_folder(Path(tmp), str(path))
    raise ValueError(f"Cannot read {path}: expected a folder, a .tar.gz archive or a .h5 file.")


def from_anndata(
    adata: ad.AnnData,
    protein_key: str | None = None,
    protein_names_key: str = "protein_names",
) -> MuData:
    """Convert an AnnData that keeps protein counts in ``.obsm`` into a MuData.

    This is how scvi-tools' older CITE-seq datasets store the antibodies: RNA counts in ``.X`` and
    protein counts in ``.obsm``, either as a DataFrame (columns = antibody names) or as an array
    with the names in ``.uns[protein_names_key]``.

    Parameters
    ----------
    adata
        Cells x genes RNA counts in ``.X``; protein counts in ``.obsm[protein_key]``. Not modified.
    protein_key
        Key of the protein counts in ``adata.obsm``. If `None`, the first of
        ``"protein_expression"``, ``"protein_counts"`` present is used.
    protein_names_key
        Key of ``adata.uns`` with the antibody names, used when ``.obsm[protein_key]`` is an array.

    Returns
    -------
    MuData with ``"rna"`` (a copy of ``adata`` without the protein entries; ``.X`` as given) and
    ``"prot"`` (cells x antibodies, dense float32). The columns of ``adata.obs`` (e.g. cell-type labels)
    are copied to ``mdata.obs`` and to both modalities' ``.obs``.
    """
    if protein_key is None:
        present = [k for k in PROTEIN_OBSM_KEYS if k in adata.obsm]
        if not present:
            raise KeyError(
                f"No protein counts found: none of {list(PROTEIN_OBSM_KEYS)} is in adata.obsm "
                f"(keys: {list(adata.obsm.keys())}). Pass protein_key=..."
            )
        protein_key = present[0]
    elif protein_key not in adata.obsm:
        raise KeyError(f"adata.obsm[{protein_key!r}] not found (keys: {list(adata.obsm.keys())}).")
    if adata.X is None:
        raise ValueError("adata.X is empty: RNA counts are expected in .X.")

    counts = adata.obsm[protein_key]
    uses_uns_names = not isinstance(counts, pd.DataFrame)
    if isinstance(counts, pd.DataFrame):
        names = counts.columns.astype(str)
        values = counts.to_numpy()
    else:
        if protein_names_key not in adata.uns:
            raise KeyError(
                f"adata.obsm[{protein_key!r}] is an array without antibody names: expected them in "
                f"adata.uns[{protein_names_key!r}] (keys: {list(adata.uns.keys())})."
            )
        names = pd.Index(np.asarray(adata.uns[protein_names_key]).astype(str))
        values = counts
        if len(names) != counts.shape[1]:
            raise ValueError(
                f"adata.uns[{protein_names_key!r}] has {len(names)} names but adata.obsm[{protein_key!r}] "
                f"has {counts.shape[1]} columns."
            )

    rna = adata.copy()
    del rna.obsm[protein_key]
    if uses_uns_names:
        del rna.uns[protein_names_key]
    obs = rna.obs.copy()
    rna.obs_names = rna.obs_names.astype(str)
    prot = ad.AnnData(_as_protein(values), obs=pd.DataFrame(index=rna.obs_names), var=pd.DataFrame(index=names))
    obs.index = rna.obs_names
    return _make_mudata(rna, prot, obs)


_BMCITE_R = """\
library(Seurat)
library(SeuratData)
InstallData("bmcite")
bm <- LoadData(ds = "bmcite")
dir.create("bmcite")
Matrix::writeMM(as(GetAssayData(bm, assay = "RNA", slot = "counts"), "CsparseMatrix"), "bmcite/rna_counts.mtx")
writeLines(rownames(bm[["RNA"]]), "bmcite/rna_genes.txt")
Matrix::writeMM(as(GetAssayData(bm, assay = "ADT", slot = "counts"), "CsparseMatrix"), "bmcite/adt_counts.mtx")
writeLines(rownames(bm[["ADT"]]), "bmcite/adt_names.txt")
writeLines(colnames(bm), "bmcite/barcodes.txt")
write.csv(bm[[]], "bmcite/metadata.csv")"""


def _locate(folder: Path, *names: str) -> Path | None:
    """The first of ``names`` (or its ``.gz`` version) present in ``folder``."""
    for name in names:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _read_lines(path: Path) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        return [line.strip().strip('"') for line in fh if line.strip()]


def _read_features_by_cells(path: Path, n_features: int, n_cells: int, what: str) -> sparse.csr_matrix:
    x = sparse.csr_matrix(mmread(path).T)
    if x.shape != (n_cells, n_features):
        raise ValueError(
            f"{path.name} is {x.shape[1]} x {x.shape[0]} but {n_features} {what} and {n_cells} barcodes were listed: "
            "it should be features x cells, in the order of the name files."
        )
    return x


def bmcite(path: str | Path) -> MuData:
    """Load the bone-marrow CITE-seq data of Stuart et al. (2019) exported from R.

    The data (SeuratData ``bmcite``: 30,672 cells, 17,009 genes, 25 antibodies; ``celltype.l1`` with 5
    and ``celltype.l2`` with 27 types) are distributed as an R package, so they are exported once from R
    into a folder, then read here. In R (Seurat v5 also accepts ``slot =``, with a deprecation note)::

        {export_script}

    Parameters
    ----------
    path
        Folder with the files (each may also be gzip-compressed, with a ``.gz`` suffix):

        - ``rna_counts.mtx``: genes x cells raw counts (Matrix Market);
        - ``rna_genes.txt``: one gene name per line, in the rows' order;
        - ``adt_counts.mtx`` with ``adt_names.txt`` (one antibody per line), or instead ``adt_counts.csv``
          (antibodies x cells with row names and a header of barcodes, as ``write.csv(as.matrix(...))`` writes);
        - ``barcodes.txt``: one cell barcode per line, in the columns' order;
        - ``metadata.csv``: one row per cell, row names = barcodes (``write.csv(bm[[]], ...)``), including
          ``celltype.l1`` and ``celltype.l2``.

    Returns
    -------
    MuData with ``"rna"`` (cells x genes, sparse CSR float32 counts) and ``"prot"`` (cells x antibodies, dense
    float32 counts). The metadata columns are in ``mdata.obs`` and both modalities' ``.obs``; ``celltype.l1``
    and ``celltype.l2`` are categorical.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder. Export the data from R first:\n{_BMCITE_R}")
    files = {
        "rna_counts.mtx": _locate(folder, "rna_counts.mtx"),
        "rna_genes.txt": _locate(folder, "rna_genes.txt"),
        "barcodes.txt": _locate(folder, "barcodes.txt"),
        "metadata.csv": _locate(folder, "metadata.csv"),
        "adt_counts.mtx or adt_counts.csv": _locate(folder, "adt_counts.mtx", "adt_counts.csv"),
    }
    adt = files["adt_counts.mtx or adt_counts.csv"]
    if adt is not None and ".mtx" in adt.name:
        files["adt_names.txt"] = _locate(folder, "adt_names.txt")
    missing = [name for name, found in files.items() if found is None]
    if missing:
        raise FileNotFoundError(f"Missing in {folder}: {', '.join(missing)}. Export them from R with:\n{_BMCITE_R}")

    genes = _read_lines(files["rna_genes.txt"])
    barcodes = _read_lines(files["barcodes.txt"])
    rna_x = _read_features_by_cells(files["rna_counts.mtx"], len(genes), len(barcodes), "genes")
    if ".mtx" in adt.name:
        proteins = _read_lines(files["adt_names.txt"])
        adt_x = _read_features_by_cells(adt, len(proteins), len(barcodes), "antibodies")
    else:
        table = pd.read_csv(adt, index_col=0)
        if list(table.columns.astype(str)) != barcodes:
            raise ValueError(f"The columns of {adt.name} must be the barcodes of barcodes.txt, in the same order.")
        proteins, adt_x = list(table.index.astype(str)), table.to_numpy().T

    metadata = pd.read_csv(files["metadata.csv"], index_col=0)
    metadata.index = metadata.index.astype(str)
    absent = pd.Index(barcodes).difference(metadata.index)
    if len(absent):
        raise ValueError(f"metadata.csv lacks {len(absent)} barcodes of barcodes.txt, e.g. {list(absent[:3])}.")
    metadata = metadata.loc[barcodes]
    for key in ("celltype.l1", "celltype.l2"):
        if key in metadata:
            metadata[key] = metadata[key].astype("category")
        else:
            logger.warning("metadata.csv has no %r column: the cell-type measurements need it.", key)

    obs = pd.DataFrame(index=pd.Index(barcodes, name=None))
    rna = ad.AnnData(_as_rna(rna_x), obs=obs.copy(), var=pd.DataFrame(index=genes))
    prot = ad.AnnData(_as_protein(adt_x), obs=obs.copy(), var=pd.DataFrame(index=proteins))
    return _make_mudata(rna, prot, metadata)


# The export script is written once, above, and shown both in the documentation and in error messages.
if bmcite.__doc__:  # None under python -OO
    bmcite.__doc__ = bmcite.__doc__.replace("{export_script}", _BMCITE_R.replace("\n", "\n        "))
