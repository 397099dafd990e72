"""All networks of a two-modality model: the shared stage and one specific stage per modality."""

from __future__ import annotations

from torch import nn

from ._objectives import get_objective
from ._shared import SharedModule
from ._specific import SpecificModule


class IndiSeekModule(nn.Module):
    """Shared encoders ``f_rna``, ``f_protein`` and, unless the method is CLIP, one specific stage per modality.

    The specific stages are :class:`~indiseek.module.SpecificModule` instances.

    Parameters
    ----------
    n_input_rna, n_input_protein
        Input dimensions after input preparation.
    method
        ``"indiseek"``, ``"factorizedcl"``, ``"infodisen"`` or ``"clip"``.
    n_shared, n_specific, n_hidden, n_layers
        Output dimensions of the shared and specific features; width and depth of every network.
    lambda_
        Weight of the capture term of the specific stage.
    temperature, learn_temperature
        CLIP temperature of the shared stage, and whether it is learned.
    capture_temperature
        Temperature of the InfoNCE capture term (FactorizedCL, InfoDisen).
    club_sample
        Use the sampled-negative Gaussian CLUB estimator.
    club_estimator
        ``"gaussian"``, ``"gaussian_raw"`` or ``"critic"``: the estimator of the CLUB term (see
        :class:`SpecificModule`).
    """

    def __init__(
        self,
        n_input_rna: int,
        n_input_protein: int,
        method: str = "indiseek",
        n_shared: int = 50,
        n_specific: int = 50,
        n_hidden: int = 50,
        n_layers: int = 5,
        lambda_: float = 10.0,
        temperature: float = 0.1,
        learn_temperature: bool = True,
        capture_temperature: float = 0.1,
        club_sample: bool = False,
        club_estimator: str = "gaussian_raw",
    ):
        super().__init__()
        self.shared = SharedModule(
            n_input_rna, n_input_protein, n_shared, n_hidden, n_layers, temperature, learn_temperature
        )
        objective = get_objective(method)
        self.specific = None
        if objective is not None:
            self.specific = nn.ModuleDict(
                {
                    modality: SpecificModule(
                        n_input,
                        n_shared,
                        n_specific,
                        objective,
                        lambda_,
                        n_hidden,
                        n_layers,
                        capture_temperature,
                        club_sample,
                        club_estimator,
                    )
                    for modality, n_input in (("rna", n_input_rna), ("protein", n_input_protein))
                }
            )
