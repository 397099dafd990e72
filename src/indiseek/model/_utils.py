"""Checks shared by the user-facing classes."""

from __future__ import annotations

import numbers


def check_choice(value, allowed: tuple[str, ...], name: str) -> None:
    """Raise a ``ValueError`` naming the allowed values when ``value`` is not one of them."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not valid: use one of {', '.join(repr(a) for a in allowed)}.")


def check_positive_int(value, name: str) -> None:
    """Raise a ``ValueError`` naming ``name`` unless ``value`` is an integer of at least 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
