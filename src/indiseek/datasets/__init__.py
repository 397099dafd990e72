"""Data: a ground-truth CITE-seq simulator, readers of CITE-seq files into MuData, downloaders of public ones."""

from ._download import REGISTRY, pbmc5k_cite, pbmc10k_cite
from ._io import bmcite, from_anndata, read_10x
from ._simulate import simulate_citeseq

__all__: list[str] = []
__all__ += ["bmcite", "from_anndata", "read_10x"]
__all__ += ["REGISTRY", "pbmc10k_cite", "pbmc5k_cite"]
__all__ += ["simulate_citeseq"]
