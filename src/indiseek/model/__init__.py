"""User-facing classes: the model on MuData and the specific stage on arrays."""

from ._indiseek import IndiSeek
from ._specific import SpecificEncoder, fit_specific

__all__ = ["IndiSeek", "SpecificEncoder", "fit_specific"]
