"""Pure-torch modules: input preparation, the shared (CLIP) stage, the specific stage and the objectives."""

from ._indiseek import IndiSeekModule, OracleModule
from ._inputs import ProteinInputs, RNAInputs
from ._objectives import METHODS, OBJECTIVES, SpecificObjective, get_objective
from ._shared import SharedModule
from ._specific import (
    CLUB_ESTIMATORS,
    SpecificModule,
    SpecificStages,
    check_club_estimator,
    encoder_parameters,
    estimator_loss,
    estimator_parameters,
    specific_loss,
)
from ._sweep import LambdaStack, StackedStage

__all__ = [
    "CLUB_ESTIMATORS",
    "IndiSeekModule",
    "LambdaStack",
    "METHODS",
    "OBJECTIVES",
    "OracleModule",
    "ProteinInputs",
    "RNAInputs",
    "SharedModule",
    "SpecificModule",
    "SpecificObjective",
    "SpecificStages",
    "StackedStage",
    "check_club_estimator",
    "encoder_parameters",
    "estimator_loss",
    "estimator_parameters",
    "get_objective",
    "specific_loss",
]
