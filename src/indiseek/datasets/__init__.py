"""Data: a ground-truth CITE-seq simulator and readers of real CITE-seq files into MuData."""

from ._io import bmcite, from_anndata, read_10x
from ._simulate import simulate_citeseq

__all__: list[str] = []
__all__ += ["bmcite", "from_anndata", "read_10x"]
__all__ += ["simulate_citeseq"]
