"""Training plans of the shared and specific stages (scvi-tools / Lightning)."""

from ._plans import OPTIMIZERS, SharedTrainingPlan, SpecificTrainingPlan, check_optimizer

__all__ = ["OPTIMIZERS", "SharedTrainingPlan", "SpecificTrainingPlan", "check_optimizer"]
