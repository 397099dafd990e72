"""Pure-torch modules: the shared (CLIP) stage, the specific stage and the objectives that tell methods apart."""

from ._indiseek import IndiSeekModule
from ._objectives import METHODS, OBJECTIVES, SpecificObjective, get_objective
from ._shared import SharedModule
from ._specific import CLUB_ESTIMATORS, SpecificModule

__all__ = [
    "CLUB_ESTIMATORS",
    "IndiSeekModule",
    "METHODS",
    "OBJECTIVES",
    "SharedModule",
    "SpecificModule",
    "SpecificObjective",
    "get_objective",
]
