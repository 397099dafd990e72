"""Input preparation: fitted on training cells, replayed on query cells."""

from ._inputs import ProteinInputs, RNAInputs, clr, log_normalize

__all__ = ["ProteinInputs", "RNAInputs", "clr", "log_normalize"]
