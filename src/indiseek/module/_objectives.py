"""Which independence term and which capture term each method combines, and whose shared features each sees.

This table is the one place where IndiSeek and its baselines differ (METHOD.md, "Baselines").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class SpecificObjective:
    """The specific-stage objective of one method: ``independence(Z_i; C_a) + lambda * capture(Z_i, C_b; X_i)``.

    Attributes
    ----------
    independence
        ``"club"`` (Gaussian CLUB upper bound of mutual information) or ``"orthogonality"``.
    independence_shared
        Whose shared features the independence term sees: ``"own"`` (``C_i``) or ``"other"`` (``C_{3-i}``).
    capture
        ``"reconstruction"`` (scale-free squared error of a decoder ``g_i(Z_i, C)``) or ``"infonce"``
        (contrast of an embedding of ``(C, Z_i)`` with an embedding of ``X_i``).
    capture_shared
        Whose shared features join ``Z_i`` in the capture term: ``"own"`` or ``"other"``.
    """

    independence: Literal["club", "orthogonality"]
    independence_shared: Literal["own", "other"]
    capture: Literal["reconstruction", "infonce"]
    capture_shared: Literal["own", "other"]


#: Specific-stage objectives by method name. ``"clip"`` has no specific stage.
OBJECTIVES: dict[str, SpecificObjective | None] = {
    "indiseek": SpecificObjective("club", "other", "reconstruction", "own"),
    "factorizedcl": SpecificObjective("club", "own", "infonce", "own"),
    "infodisen": SpecificObjective("orthogonality", "own", "infonce", "other"),
    "clip": None,
}

#: Names accepted by ``method=``.
METHODS = tuple(OBJECTIVES)


def get_objective(method: str) -> SpecificObjective | None:
    """Look up a method's specific-stage objective, with a clear error for unknown names."""
    key = method.lower() if isinstance(method, str) else method
    if key not in OBJECTIVES:
        raise ValueError(f"Unknown method {method!r}. Choose one of {', '.join(repr(m) for m in METHODS)}.")
    return OBJECTIVES[key]
