"""IndiSeek: shared and modality-specific representations of paired multimodal single-cell data."""

from importlib.metadata import PackageNotFoundError, version

from . import datasets, defaults, nn, pl, pp, sim, tl
from .model import IndiSeek, fit_specific

try:
    __version__ = version("indiseek")
except PackageNotFoundError:  # pragma: no cover - source tree without installation
    __version__ = "0.0.0"

__all__ = ["IndiSeek", "datasets", "defaults", "fit_specific", "nn", "pl", "pp", "sim", "tl"]
