"""Pure-torch modules: the shared (CLIP) stage, the specific stage and the objectives that tell methods apart."""

from ._indiseek import IndiSeekModule
from ._objectives import METHODS, OBJECTIVES, SpecificObjective, get_objective
from ._shared import SharedModule
from ._specific import CLUB_ESTIMATORS, SpecificModule, check_club_estimator

__all__ = [
    "CLUB_ESTIMATORS",
    "IndiSeekModule",
    "METHODS",
    "OBJECTIVES",
    "SharedModule",
    "SpecificModule",
    "SpecificObjective",
    "check_club_estimator",
    "get_objective",
]
