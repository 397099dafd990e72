"""Checks and logging shared by the user-facing classes."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator

import scvi
import torch

from indiseek.defaults import CITESEQ

#: Lightning's loggers of rank-zero messages, which carry its advertising tips ("💡 Tip: ... try installing ...").
_LIGHTNING_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
#: scvi-tools' logger of notes on the fields it registers ("Generating sequential column names").
_SCVI_FIELDS_LOGGER = "scvi.data.fields._arraylike_field"


def _not_a_tip(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("💡 Tip")


@contextlib.contextmanager
def quiet_library_notes() -> Iterator[None]:
    """Hide, while training, Lightning's tips to install other packages and scvi-tools' notes on internal fields.

    Both are printed at every training and say nothing about the data or the fit; Lightning's other messages (the
    accelerator, why a stage stopped) and every warning still show.
    """
    loggers = [logging.getLogger(name) for name in _LIGHTNING_LOGGERS]
    fields = logging.getLogger(_SCVI_FIELDS_LOGGER)
    level = fields.level
    for log in loggers:
        log.addFilter(_not_a_tip)
    fields.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for log in loggers:
            log.removeFilter(_not_a_tip)
        fields.setLevel(level)


def non_finite(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors that hold NaN or infinite values."""
    return [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]


def current_seed() -> int:
    """scvi-tools' seed, or 0 when none is set (``train()`` called without ``seed`` in a fresh session)."""
    return scvi.settings.seed if scvi.settings.seed is not None else 0


def stage_epochs(max_epochs: int | None, n_batches: int) -> tuple[dict[str, int], int | None]:
    """Epochs of each stage, and the steps the specific stage takes before early stopping may end it.

    A given ``max_epochs`` serves both stages as it is. ``None``: ``CITESEQ.max_epochs`` each, or fewer where
    ``n_batches`` per epoch would pass ``CITESEQ.max_steps``; the specific stage's raised to take at least
    ``CITESEQ.min_specific_steps`` steps.
    """
    if max_epochs is not None:
        return {"shared": max_epochs, "specific": max_epochs}, None
    n_batches = max(n_batches, 1)
    steps = CITESEQ.min_specific_steps
    epochs = min(CITESEQ.max_epochs, math.ceil(CITESEQ.max_steps / n_batches))
    return {"shared": epochs, "specific": max(epochs, math.ceil(steps / n_batches))}, steps
