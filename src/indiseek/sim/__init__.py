"""The paper's simulation settings (oracle shared features, one modality)."""

from indiseek.defaults import OPTION_DEFAULTS, record_options

from ._run import pool_records, run_setting, run_sweep
from ._settings import DISCRETE_VALUES, IDEAL_COORDINATES, SETTINGS, ideal_coordinates, oracle_shared, simulate_setting

__all__: list[str] = []
__all__ += [
    "DISCRETE_VALUES",
    "IDEAL_COORDINATES",
    "SETTINGS",
    "ideal_coordinates",
    "oracle_shared",
    "simulate_setting",
]
__all__ += ["OPTION_DEFAULTS", "pool_records", "record_options", "run_setting", "run_sweep"]
