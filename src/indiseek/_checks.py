"""Argument checks shared by the whole package: each error names the argument and what it must be."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable

import numpy as np

from indiseek._keys import MODALITIES


def check_int(value: object, name: str, minimum: int, maximum: int | None = None, hint: str = "") -> int:
    """``value`` as an int in ``[minimum, maximum]``: a TypeError for a non-integer, a ValueError out of range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}.")
    value = int(value)
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ValueError(f"{name} must be {bounds}, got {value}. {hint}".rstrip())
    return value


def check_real(
    value: object, name: str, minimum: float | None = None, maximum: float | None = None, strict: bool = False
) -> float:
    """``value`` as a finite float in ``[minimum, maximum]`` (above ``minimum`` when ``strict``).

    A TypeError for a non-number, a ValueError otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} of type {type(value).__name__}.")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}.")
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}, got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}.")
    return value


def check_choice(value: object, name: str, choices: Iterable[str]) -> str:
    """``value`` if it is one of ``choices``, else a ValueError listing them."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}: use one of {choices}.")
    return value  # type: ignore[return-value]


def check_str(value: object, name: str) -> str:
    """``value`` if it is a string, else a TypeError naming the argument."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string (a key), got {value!r} of type {type(value).__name__}.")
    return value


def check_bool(value: object, name: str) -> bool:
    """``value`` if it is ``True`` or ``False``, else a TypeError naming the argument."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def per_modality(
    value: object, name: str, missing: float | None = None, check: Callable[[object, str], object] | None = None
) -> dict[str, object]:
    """``value`` per modality: one value for both, or a dict by modality (``{"rna": .., "protein": ..}``).

    A modality left out of a dict gets ``missing``; ``None``: both must be given (a ValueError otherwise, as for an
    unknown key). ``check(value, label)``, if given, checks each value given, labelled ``name`` or
    ``name['<modality>']``.
    """
    if not isinstance(value, dict):
        if check is not None:
            check(value, name)
        return dict.fromkeys(MODALITIES, value)
    unknown = sorted(set(value) - set(MODALITIES))
    absent = [m for m in MODALITIES if m not in value]
    if unknown or (absent and missing is None):
        rule = "a missing one is " + (f"{missing:g}" if missing is not None else "not allowed")
        raise ValueError(f"{name} has keys {sorted(value)}: use {list(MODALITIES)} ({rule}).")
    if check is not None:
        for m, v in value.items():
            check(v, f"{name}[{m!r}]")
    return {m: value.get(m, missing) for m in MODALITIES}
