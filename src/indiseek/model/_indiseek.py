"""The user-facing model on MuData: registration, training of both stages on scvi-tools' stack, embeddings."""

from __future__ import annotations

import contextlib
import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scvi
import torch
from mudata import MuData
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager, fields
from scvi.data._constants import _SCVI_UUID_KEY
from scvi.dataloaders import DataSplitter
from scvi.model._utils import parse_device_args, use_distributed_sampler
from scvi.model.base import BaseModelClass
from scvi.train import TrainRunner

from indiseek._checks import check_bool, check_int, check_real, per_modality
from indiseek._docs import dsp
from indiseek.defaults import CITESEQ
from indiseek.module import IndiSeekModule, check_club_estimator, get_objective
from indiseek.nn import check_activation
from indiseek.pp import fit_protein_inputs, fit_rna_inputs
from indiseek.train import SharedTrainingPlan, SpecificTrainingPlan, check_optimizer

from ._data import check_batches, check_cells, check_mudata, is_aligned, paired_mudata
from ._outputs import OutputsMixin
from ._query import extend_batches
from ._save import load_model, save_model
from ._sweep import LAMBDA_GRID, RefitMixin
from ._utils import current_seed, non_finite, quiet_library_notes, stage_epochs

logger = logging.getLogger(__name__)

_DEFAULT_MODALITIES = {"rna_layer": "rna", "protein_layer": "prot"}
_PAIRED_KEY = "_indiseek_paired_uuid"  # in the uns of a MuData with unpaired cells: its registered paired copy
_STAGES = ("shared", "specific")


def _warn_if_constant(module: IndiSeekModule) -> None:
    """Warn for each modality whose specific features came out the same for every training cell."""
    for m in module.specific:
        if float(getattr(module, f"scale_specific_{m}")) < 1e-6:
            warnings.warn(
                f"The {m}-specific features came out the same for every training cell: they carry nothing of the "
                f"{m} data, and theta and the {m}-specific embedding are uninformative. This happens on small data "
                "sets (on one seed of five of PBMC 5k's 177 training cells); training again with another seed may "
                "keep them.",
                UserWarning,
                stacklevel=3,
            )


def _check_dropout(value: object, name: str) -> None:
    """A probability of dropping a feature: in [0, 1)."""
    if check_real(value, name, minimum=0) >= 1:
        raise ValueError(f"{name} must be below 1 (a probability of dropping a feature), got {value}.")


@dsp.dedent
class IndiSeek(OutputsMixin, RefitMixin, BaseModelClass):
    """Shared and modality-specific representations of paired RNA and protein (CITE-seq) measurements.

    Step 1 learns shared features ``C_rna = f_rna(X_rna)`` and ``C_protein = f_protein(X_protein)`` with the CLIP
    loss. Step 2 learns, for each modality ``i``, specific features ``Z_i = h_i(X_i)`` by minimising::

        CLUB(Z_i; C_{3-i}) + lambda_ / (2 E|X_i|^2) * E|g_i(Z_i, C_i) - X_i|^2

    i.e. ``Z_rna`` is made independent of the protein's shared features (and ``Z_protein`` of the RNA's), while
    ``(Z_i, C_i)`` must reconstruct ``X_i``. The baselines of the paper run through the same class with ``method``.

    Inputs are prepared as in the paper, fitted on the training cells and stored with the model: RNA counts are
    normalised per cell, ``log1p``-transformed, reduced to highly variable genes and projected on principal
    components; protein counts are centred log-ratio transformed per cell and centred (and, for panels of more than
    ``n_protein_pcs`` antibodies, projected on principal components).

    Parameters
    ----------
    mdata
        MuData registered with :meth:`setup_mudata`.
    method
        ``"indiseek"`` (default), or a baseline: ``"factorizedcl"`` (CLUB against the modality's own shared
        features, InfoNCE capture), ``"infodisen"`` (orthogonality, InfoNCE capture with the other modality's
        shared features) or ``"clip"`` (shared features only).
    n_shared
        Dimension of the shared features ``C``.
    n_specific
        Dimension of the specific features ``Z``.
    %(param_network)s
    n_layers_shared
        Depth of the shared stage's two encoders (``n_layers`` sets that of the specific stages' encoders and
        decoders). Four layers, one fewer than the paper's, keep more of the antibodies' information in
        ``C_protein`` (see the documentation's results page).
    n_layers_estimator
        Depth of CLUB's learned estimator (``club_estimator="gaussian"``, ``"gaussian_raw"`` or ``"critic"``;
        IndiSeek, FactorizedCL), in place of ``n_layers``. Two layers (one hidden), as in CLUB's reference code; on
        the simulator theta then ranks the cell types a little better than with five (see the documentation's
        results page). The ridge estimator has no network.
    activation
        Activation of every network's hidden layers: ``"leaky_relu"`` (slope 0.01 below zero) or the paper's
        ``"relu"``. With ReLU, a hidden layer of an encoder can end up at zero on every cell, and its features are
        then the same for every cell (on PBMC 5k, seed 0, ``Z_protein``); leaky units cannot die (see the
        documentation's results page).
    %(param_lambda)s
        One per modality, ``{"rna": 300, "protein": 100}``, weights each specific stage's capture term on its own
        (each stage also stops early on its own loss, so one modality's weight leaves the other's features as
        they are).
        ``"auto"``: :meth:`train` fits the shared stage once, then the specific stages over the paper's grid
        10^-3 .. 10^3 (:meth:`sweep_lambda`), and keeps the lambda :func:`~indiseek.tl.select_lambda` chooses
        without labels.
    temperature
        CLIP temperature of the shared stage (initial value when learned).
    learn_temperature
        Learn the CLIP temperature, as CLIP does.
    input_dropout
        Probability with which each input feature of a cell is zeroed (the others scaled up) in each training step
        of the shared stage: an augmentation against CLIP's memorising the training pairs, which otherwise stops
        its validation loss from improving after a few epochs (see the documentation's method page). ``0``
        trains as the paper does.
    specific_input_dropout
        The same for the specific stages' encoders, whose capture term still reconstructs the whole input: a little
        noise in what ``Z_i`` is computed from keeps it from copying directions of ``X_i`` that the other
        modality's shared features predict. One probability for both encoders, or one per modality
        (``{"rna": 0.03, "protein": 0.1}``; a modality left out gets 0). ``0`` trains as the paper does. On
        simulated data ``0.03`` lowers the leak, on 30,000 cells without changing theta's ranking; on a real file
        of 200 cells it raises the protein leak (the results page: "Input dropout in the specific encoders").
    %(param_capture_temperature)s
    %(param_club)s
    n_top_genes, n_pcs
        Highly variable genes and principal components of the RNA inputs (paper: 200 components).
    n_protein_pcs
        Panels of more antibodies than this enter as the principal components of their centred CLR; smaller panels
        (the paper's 25 antibodies) as the centred CLR itself. ``None`` keeps every antibody's CLR. On a panel of
        224 antibodies the components denoise what CLIP aligns (see the documentation's results page).

    Examples
    --------
    >>> mdata = indiseek.datasets.simulate_citeseq(n_cells=2000, seed=0)
    >>> indiseek.IndiSeek.setup_mudata(mdata, modalities={"rna_layer": "rna", "protein_layer": "prot"})
    >>> model = indiseek.IndiSeek(mdata)
    >>> model.train(max_epochs=50)
    >>> z_rna = model.get_latent_representation(modality="rna", kind="specific")
    >>> model.write_embeddings()
    """

    _paired_copies: dict[str, MuData] = {}  # noqa: RUF012 - registered copies of paired cells, by their uuid

    def __init__(
        self,
        mdata: MuData,
        method: str = CITESEQ.method,
        n_shared: int = CITESEQ.n_shared,
        n_specific: int = CITESEQ.n_specific,
        n_hidden: int = CITESEQ.n_hidden,
        n_layers: int = CITESEQ.n_layers,
        n_layers_shared: int = CITESEQ.n_layers_shared,
        n_layers_estimator: int = CITESEQ.n_layers_estimator,
        activation: str = CITESEQ.activation,
        lambda_: float | dict[str, float] | str = CITESEQ.lambda_,
        temperature: float = CITESEQ.temperature,
        learn_temperature: bool = CITESEQ.learn_temperature,
        input_dropout: float = CITESEQ.input_dropout,
        specific_input_dropout: float | dict[str, float] = CITESEQ.specific_input_dropout,
        capture_temperature: float = CITESEQ.capture_temperature,
        club_sample: bool = CITESEQ.club_sample,
        club_estimator: str = CITESEQ.club_estimator,
        n_top_genes: int = CITESEQ.n_top_genes,
        n_pcs: int = CITESEQ.n_pcs,
        n_protein_pcs: int | None = CITESEQ.n_protein_pcs,
    ):
        registered = self._registered(mdata)
        if registered is None:
            raise ValueError(
                "This MuData is not registered: call IndiSeek.setup_mudata(mdata) (with the modalities and layers of "
                "the raw counts) before IndiSeek(mdata)."
            )
        super().__init__(registered)
        self._mdata = mdata
        self.init_params_ = self._get_init_params(locals())
        params = dict(self.init_params_["non_kwargs"])
        params["method"] = method = method.lower() if isinstance(method, str) else method
        get_objective(method)
        self.lambda_auto = lambda_ == "auto"
        if self.lambda_auto:
            if method == "clip":
                raise ValueError("method='clip' has no specific stage, hence no lambda to choose.")
            params["lambda_"] = CITESEQ.lambda_  # the stages' weight until the sweep chooses one
        else:
            per_modality(lambda_, "lambda_", check=lambda value, name: check_real(value, name, minimum=0))
        check_real(temperature, "temperature", minimum=0, strict=True)
        check_real(capture_temperature, "capture_temperature", minimum=0, strict=True)
        _check_dropout(input_dropout, "input_dropout")
        per_modality(specific_input_dropout, "specific_input_dropout", missing=0.0, check=_check_dropout)
        check_bool(learn_temperature, "learn_temperature")
        check_bool(club_sample, "club_sample")
        check_club_estimator(club_estimator)
        check_activation(activation)
        for name in (
            "n_shared", "n_specific", "n_hidden", "n_layers", "n_layers_shared", "n_layers_estimator", "n_top_genes",
            "n_pcs",
        ):  # fmt: skip
            check_int(params[name], name, 1)
        if n_protein_pcs is not None:
            check_int(n_protein_pcs, "n_protein_pcs", 1)
        self.method = method
        self.n_top_genes, self.n_pcs = params.pop("n_top_genes"), params.pop("n_pcs")
        self.n_protein_pcs = params.pop("n_protein_pcs")
        self._module_kwargs = params
        rna, protein = self._modality_keys()
        self.var_names_ = {"rna": list(mdata[rna].var_names), "protein": list(mdata[protein].var_names)}
        self.batches_: list[str] | None = None  # batch names, in the order of the networks' batch offsets
        if self.setup_args_.get("batch_key") is not None:
            mapping = self.adata_manager.get_state_registry(REGISTRY_KEYS.BATCH_KEY).categorical_mapping
            self.batches_ = [str(b) for b in mapping]
        self.module: IndiSeekModule | None = None
        self.train_times_: dict[str, float] = {}
        self.lambda_states_: dict[float, dict[str, torch.Tensor]] = {}
        self.lambda_sweep_: pd.DataFrame | None = None
        self.lambda_choice_: dict | None = None
        self._model_summary_string = (
            f"IndiSeek model (method={method!r}, n_shared={n_shared}, n_specific={n_specific}, lambda_={lambda_}), "
            f"{len(self.var_names_['rna'])} genes, {len(self.var_names_['protein'])} proteins"
        )

    # ------------------------------------------------------------------ registration
    @classmethod
    def setup_mudata(
        cls,
        mdata: MuData,
        rna_layer: str | None = None,
        protein_layer: str | None = None,
        modalities: dict[str, str] | None = None,
        batch_key: str | None = None,
        allow_non_integer: bool = False,
        **kwargs,
    ) -> None:
        """Register the raw RNA and protein counts of a MuData object.

        The counts are checked first: finite, non-negative, whole numbers, every cell of a modality with counts in
        it, at least 2 features that vary in each, unique feature and cell names, every modality's cells among
        ``mdata.obs_names``. A warning says when the RNA has fewer features than the protein (swapped modalities?).

        Cells measured in one modality only (a modality without some of ``mdata``'s cells, as ``muon`` stores
        unpaired cells) are kept: training uses the cells with both modalities (a log line says how many; a copy
        of them is registered, :attr:`model.adata <adata>`), and every cell is embedded with the encoders of the
        modalities it has (NaN features for the other).

        Parameters
        ----------
        mdata
            MuData with one modality of RNA counts and one of protein (ADT) counts, same cells in the same order.
        rna_layer, protein_layer
            Layers holding the raw counts (``None``: ``.X``).
        modalities
            Which modality holds which data: ``{"rna_layer": "rna", "protein_layer": "prot"}`` (the default).
        batch_key
            Column of ``mdata.obs`` with each cell's batch. Each batch's inputs are then centred on its own means
            (RNA genes are selected per batch and the principal components are those of the pooled within-batch
            covariance), so that shifts between batches do not enter the features; see the method page.
        allow_non_integer
            Accept counts that are not whole numbers, e.g. after ambient-RNA removal or ADT denoising. Log-normalised
            or scaled data are still wrong inputs: the model normalises and transforms the counts itself.
        **kwargs
            Passed to :meth:`scvi.data.AnnDataManager.register_fields`.
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        modalities = {**_DEFAULT_MODALITIES, **(modalities or {})}
        unknown = set(modalities) - set(_DEFAULT_MODALITIES)
        if unknown:
            raise ValueError(f"Unknown keys in modalities: {sorted(unknown)}; use 'rna_layer' and 'protein_layer'.")
        if not isinstance(allow_non_integer, bool):
            raise TypeError(f"allow_non_integer must be True or False, got {allow_non_integer!r}.")
        rna, protein = modalities["rna_layer"], modalities["protein_layer"]
        paired = check_mudata(mdata, rna, protein, rna_layer, protein_layer, integer=not allow_non_integer)
        if paired.sum() < 2:
            raise ValueError(
                f"Only {int(paired.sum())} cells are measured in both {rna!r} and {protein!r}: IndiSeek learns from "
                "cells with both modalities (cells with one are embedded afterwards)."
            )
        if batch_key is not None:
            check_batches(mdata, batch_key, paired)
        mdata.uns.pop(_PAIRED_KEY, None)
        registered = mdata
        if not is_aligned(mdata, rna, protein):  # scvi-tools registers fully paired, aligned cells only
            registered = paired_mudata(mdata, rna, protein, paired)
            logger.info(
                "%d of %d cells have both modalities (%d %s only, %d %s only); the model trains on a copy of the "
                "paired cells and embeds every cell with the encoders of the modalities it has.",
                registered.n_obs, mdata.n_obs, mdata[rna].n_obs - registered.n_obs, rna,
                mdata[protein].n_obs - registered.n_obs, protein,
            )  # fmt: skip
        counts = not allow_non_integer  # scvi-tools' own check would only repeat ours, naming no modality
        mudata_fields = [
            fields.MuDataLayerField(
                REGISTRY_KEYS.X_KEY, rna_layer, mod_key=rna, is_count_data=counts, mod_required=True
            ),
            fields.MuDataLayerField(
                REGISTRY_KEYS.PROTEIN_EXP_KEY, protein_layer, mod_key=protein, is_count_data=counts, mod_required=True
            ),
        ]
        if batch_key is not None:
            mudata_fields.append(fields.MuDataCategoricalObsField(REGISTRY_KEYS.BATCH_KEY, batch_key, mod_key=None))
        adata_manager = AnnDataManager(fields=mudata_fields, setup_method_args=setup_method_args)
        adata_manager.register_fields(registered, **kwargs)
        cls.register_manager(adata_manager)
        if registered is not mdata:
            uuid = registered.uns[_SCVI_UUID_KEY]
            cls._paired_copies[uuid] = registered
            mdata.uns[_PAIRED_KEY] = uuid

    @classmethod
    def _registered(cls, mdata: MuData) -> MuData | None:
        """The MuData registered for ``mdata``: itself, or the copy of its paired cells; ``None`` if unregistered."""
        if not isinstance(mdata, MuData):
            return None
        if _PAIRED_KEY in mdata.uns:
            return cls._paired_copies.get(mdata.uns[_PAIRED_KEY])
        return mdata if cls._get_most_recent_anndata_manager(mdata) is not None else None

    @property
    def mdata(self) -> MuData:
        """The MuData the model was created with, every cell included.

        :attr:`adata` is the registered data the model trains on: the same object when every cell has both
        modalities in the same order, otherwise a copy of the paired cells.
        """
        return self._mdata

    @classmethod
    def setup_anndata(cls, *args, **kwargs):
        """Not available: IndiSeek needs two modalities. Use :meth:`setup_mudata`."""
        raise NotImplementedError(
            "IndiSeek models two modalities: put RNA and protein in a MuData object and call IndiSeek.setup_mudata "
            "(indiseek.datasets.from_anndata converts an AnnData with protein counts in .obsm)."
        )

    @property
    def setup_args_(self) -> dict:
        """The arguments :meth:`setup_mudata` was called with."""
        return self.adata_manager.registry["setup_args"]

    def _modality_keys(self) -> tuple[str, str]:
        modalities = {**_DEFAULT_MODALITIES, **(self.setup_args_.get("modalities") or {})}
        return modalities["rna_layer"], modalities["protein_layer"]

    # ------------------------------------------------------------------ training
    @dsp.dedent
    def train(
        self,
        max_epochs: int | None = None,
        lr: float = CITESEQ.lr,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        train_size: float = CITESEQ.train_size,
        validation_size: float | None = None,
        shuffle_set_split: bool = True,
        batch_size: int = CITESEQ.batch_size,
        early_stopping: bool = CITESEQ.early_stopping,
        early_stopping_patience: int = CITESEQ.early_stopping_patience,
        check_val_every_n_epoch: int | None = None,
        estimator_lr: float | None = CITESEQ.estimator_lr,
        n_estimator_steps: int = CITESEQ.n_estimator_steps,
        seed: int | None = None,
        datasplitter_kwargs: dict | None = None,
        plan_kwargs: dict | None = None,
        **trainer_kwargs,
    ) -> None:
        """Fit the input preparation on the training cells, then the shared stage, then the specific stages.

        Both stages run on scvi-tools' stack: a :class:`~scvi.dataloaders.DataSplitter` yields minibatches of raw
        counts from the registered fields, :class:`~scvi.train.TrainRunner` runs a Lightning trainer per stage
        (:class:`~indiseek.train.SharedTrainingPlan`, then :class:`~indiseek.train.SpecificTrainingPlan`, which
        trains both modalities' specific stages in one pass over the data: they share no parameter). Early
        stopping, progress bars, checkpoints, loggers and callbacks are Lightning's and scvi-tools'.

        Parameters
        ----------
        max_epochs
            Epochs of each stage. ``None``: 300 (``CITESEQ.max_epochs``), or fewer where 300 would pass 128,000
            minibatch steps (``CITESEQ.max_steps``: beyond about 30,000 cells at 64 per batch; 92 epochs on 100,000
            cells, 10 on a million), and the specific stage at least 6,000 minibatch steps
            (``CITESEQ.min_specific_steps``), which early stopping waits for: on fewer than 1,280 training cells (at 64
            per batch) it runs more epochs, e.g. 3,000 on 177 cells. Too few steps leave ``Z_i`` predictive of
            ``C_{3-i}``; the shared stage, trained that long on few cells, memorises them.
        lr
            Learning rate of every network. The paper trains at 1e-4 for up to 2,000 epochs.
        accelerator, devices
            Lightning's: ``"auto"``, ``"cpu"``, ``"gpu"``; device count, indices or ``"auto"``. Several devices
            train with DDP (pass ``strategy="ddp"``); ``batch_size`` is then per device.
        train_size, validation_size, shuffle_set_split
            Fractions of cells for training and validation (default: the rest) and whether the split is random.
            The input preparation is fitted on the training cells only.
        batch_size
            Cells per minibatch (paper: 128); the last, partial training batch of each epoch is dropped, since the
            contrastive terms compare each cell with the rest of its batch.
        early_stopping, early_stopping_patience
            Stop a stage when its validation loss has not improved for this many epochs (needs validation cells).
            Each modality's specific stage stops on its own loss (after the minimum steps), and keeps its best epoch
            until then, so it ends as it would trained alone; the specific stage ends when every modality has
            stopped. Whenever cells are validated, each stage ends with the weights of its epoch of lowest validation
            loss (the specific stage: each modality's own) rather than its last; ``plan_kwargs={"restore_best":
            False}`` keeps the last. ``early_stopping_min_delta`` (in ``trainer_kwargs``) serves both stages.
        check_val_every_n_epoch
            Validate every this many epochs (default: every epoch with early stopping, else never).
        %(param_estimator)s
        seed
            If given, sets ``scvi.settings.seed`` (split, weights and batch order) first; if not, scvi-tools' seed is
            kept, and where none is set the blocks' weights and a lambda sweep use seed 0.
        datasplitter_kwargs
            Further arguments of :class:`~scvi.dataloaders.DataSplitter`.
        plan_kwargs
            Further arguments of both training plans, e.g. ``{"optimizer": "AdamW", "weight_decay": 0.01}`` or
            ``{"reduce_lr_on_plateau": True}`` (shared stage).
        **trainer_kwargs
            Further arguments of :class:`scvi.train.Trainer` and Lightning's ``Trainer``, e.g.
            ``enable_progress_bar=False``, ``callbacks=[...]``, ``gradient_clip_val`` (shared stage), ``strategy``;
            ``ckpt_path`` resumes from a Lightning checkpoint of either stage (``model.trainer.save_checkpoint(path)``
            after training writes one of the last stage). Callbacks serve both stages' trainers with one state, so a
            ``ModelCheckpoint`` saves during the shared stage only.
        """
        n_cells = self.adata.n_obs
        if self.adata is not self.mdata:
            logger.info("Training on the %d of %d cells measured in both modalities.", n_cells, self.mdata.n_obs)
        if max_epochs is not None:
            check_int(max_epochs, "max_epochs", 1)
        check_int(batch_size, "batch_size", 2, hint="The contrastive loss compares each cell with the others.")
        check_int(n_estimator_steps, "n_estimator_steps", 1)
        check_int(early_stopping_patience, "early_stopping_patience", 1)
        check_real(lr, "lr", minimum=0, strict=True)
        if estimator_lr is not None:
            check_real(estimator_lr, "estimator_lr", minimum=0, strict=True)
        check_real(train_size, "train_size", minimum=0, maximum=1, strict=True)
        if validation_size is not None:
            check_real(validation_size, "validation_size", minimum=0, maximum=1 - train_size)
        if check_val_every_n_epoch is not None:
            check_int(check_val_every_n_epoch, "check_val_every_n_epoch", 1)
        check_bool(shuffle_set_split, "shuffle_set_split")
        check_bool(early_stopping, "early_stopping")
        plan_kwargs = {"lr": lr, **(plan_kwargs or {})}
        check_optimizer(plan_kwargs.get("optimizer", "Adam"), plan_kwargs.get("weight_decay", 0.0))
        if seed is not None:
            scvi.settings.seed = check_int(seed, "seed", 0)
        ckpt_path = trainer_kwargs.pop("ckpt_path", None)
        resume_stage = _checkpoint_stage(ckpt_path) if ckpt_path is not None else None

        splitter = DataSplitter(
            self.adata_manager, train_size=train_size, validation_size=validation_size,
            shuffle_set_split=shuffle_set_split, batch_size=batch_size, drop_last=True,
            distributed_sampler=use_distributed_sampler(trainer_kwargs.get("strategy")), **(datasplitter_kwargs or {}),
        )  # fmt: skip
        splitter.setup()
        if splitter.n_train < batch_size:
            raise ValueError(
                f"Only {splitter.n_train} training cells for a batch of {batch_size}: pass a smaller batch_size "
                f"(at most {splitter.n_train}) or more cells."
            )
        epochs, min_steps = stage_epochs(max_epochs, splitter.n_train // batch_size)
        sweep_kwargs = dict(trainer_kwargs)
        with self._unchanged_on_failure():
            start = time.perf_counter()
            self.module = self._build_module(splitter.train_idx)
            self.train_times_ = {"inputs": time.perf_counter() - start}
            self.is_trained_, self.history_ = False, None
            stop_early = early_stopping and splitter.n_val > 0
            trainer_kwargs = {
                "early_stopping": stop_early,
                "early_stopping_monitor": "validation_loss",
                "early_stopping_patience": early_stopping_patience,
                "check_val_every_n_epoch": check_val_every_n_epoch,
                **trainer_kwargs,
            }
            callbacks = trainer_kwargs.pop("callbacks", None) or []
            plans = {"shared": SharedTrainingPlan(self.module, **plan_kwargs)}
            # each modality's specific stage stops on its own loss, in the plan, rather than on their sum
            specific_kwargs = {"early_stopping": False}
            if self.module.specific is not None and not self.lambda_auto:
                plans["specific"] = SpecificTrainingPlan(
                    self.module, estimator_lr=estimator_lr, n_estimator_steps=n_estimator_steps,
                    early_stopping_patience=early_stopping_patience if stop_early else None,
                    early_stopping_min_delta=trainer_kwargs.get("early_stopping_min_delta", 0.0), **plan_kwargs,
                )  # fmt: skip
                if stop_early and check_val_every_n_epoch is None:
                    specific_kwargs["check_val_every_n_epoch"] = 1
                if min_steps:
                    specific_kwargs["min_steps"] = min_steps
            history = {}
            for stage, plan in plans.items():
                if resume_stage == "specific" and stage == "shared":
                    continue  # the checkpoint holds the trained shared stage
                history |= self._run_stage(
                    stage, plan, splitter, epochs[stage], accelerator, devices,
                    {**trainer_kwargs, **(specific_kwargs if stage == "specific" else {}), "callbacks": callbacks},
                    ckpt_path=ckpt_path if stage == resume_stage else None,
                )  # fmt: skip
            self.module.eval()
            self._fit_embedding_scale(splitter.train_idx, batch_size)
            bad = non_finite(self.module.state_dict())
            if bad:
                raise FloatingPointError(
                    f"Training left NaN or infinite values in the networks ({bad[0]}); the model is left as it was: "
                    "try a smaller lr."
                )
            if "specific" in plans:
                _warn_if_constant(self.module)
            self.history_ = history
            self.is_trained_ = True
            self._add_unpaired_batches()
            if self.lambda_auto:
                self.sweep_lambda(
                    LAMBDA_GRID, max_epochs=max_epochs, batch_size=batch_size, train_size=train_size, lr=lr,
                    n_estimator_steps=n_estimator_steps, seed=current_seed(), accelerator=accelerator,
                    devices=devices, **sweep_kwargs,
                )  # fmt: skip

    def _add_unpaired_batches(self) -> None:
        """Centre the batches that only cells with one modality come from on their own cells (see load_query_data)."""
        if self.batches_ is None or self.mdata is self.adata:
            return
        batch_key = self.setup_args_["batch_key"]
        new = [b for b in pd.unique(self.mdata.obs[batch_key].dropna().astype(str)) if b not in self.batches_]
        if new:
            logger.info("Batches %s hold cells with one modality only: each is centred on its own cells.", new)
            self.batches_ = self.batches_ + new
            extend_batches(self, self.mdata, batch_key, new)

    def _run_stage(
        self, stage: str, plan, splitter: DataSplitter, max_epochs: int, accelerator, devices, trainer_kwargs: dict,
        ckpt_path=None,
    ) -> dict[str, pd.DataFrame]:  # fmt: skip
        """Train one stage under scvi-tools' ``TrainRunner``; its history in scvi-tools' form, prefixed by the stage."""
        start = time.perf_counter()
        self.module.train()
        callbacks = list(trainer_kwargs.get("callbacks") or [])  # scvi-tools' Trainer appends to the list
        with quiet_library_notes():
            runner = TrainRunner(
                self, training_plan=plan, data_splitter=splitter, max_epochs=max_epochs, accelerator=accelerator,
                devices=devices, ckpt_path=ckpt_path, **{**trainer_kwargs, "callbacks": callbacks},
            )  # fmt: skip
            runner()
        self.train_times_[stage] = time.perf_counter() - start
        history = {f"{stage}_{k}": v.astype(float).add_prefix(f"{stage}_") for k, v in (self.history_ or {}).items()}
        self.is_trained_, self.history_ = False, None
        return history

    @contextlib.contextmanager
    def _unchanged_on_failure(self):
        """A training that does not finish (an error, NaN, Ctrl-C) leaves networks, history and state as they were."""
        previous = (self.module, self.history_, self.is_trained_, self.train_times_)
        try:
            yield
        except BaseException:
            self.module, self.history_, self.is_trained_, self.train_times_ = previous
            raise

    def _build_module(self, train_idx: np.ndarray) -> IndiSeekModule:
        """Fit the input preparation on the training cells' registered counts and build the networks around it."""
        idx = np.sort(train_idx)
        rna = self.adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY)
        protein = self.adata_manager.get_from_registry(REGISTRY_KEYS.PROTEIN_EXP_KEY)
        protein = protein.to_numpy() if isinstance(protein, pd.DataFrame) else protein
        batch = None
        if self.batches_ is not None:
            batch = np.asarray(self.adata_manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY)).ravel()[idx].astype(int)
            missing = sorted(set(range(len(self.batches_))) - set(batch))
            if missing:
                raise ValueError(
                    f"Batch {self.batches_[missing[0]]!r} has no training cell (with both modalities): remove its "
                    "cells or use a larger train_size."
                )
        fitted = {"rna": fit_rna_inputs(rna, self.n_top_genes, self.n_pcs, batch, rows=idx),
                  "protein": fit_protein_inputs(protein[idx], batch, self.n_protein_pcs)}  # fmt: skip
        components = fitted["protein"].get("components")
        module = IndiSeekModule(
            n_genes=rna.shape[1], n_selected_genes=len(fitted["rna"]["genes"]),
            n_pcs=fitted["rna"]["components"].shape[0], n_proteins=protein.shape[1],
            n_protein_pcs=None if components is None else components.shape[0], n_batches=len(self.batches_ or [None]),
            **self._module_kwargs,
        )  # fmt: skip
        for modality, arrays in fitted.items():
            for name, value in arrays.items():
                getattr(module.inputs[modality], name).copy_(torch.as_tensor(value))
        return module

    @property
    def epochs_trained(self) -> dict[str, int]:
        """Epochs each stage ran (``{"shared": n, "specific": m}``; fewer than ``max_epochs`` after early stopping)."""
        return {s: len(self.history_[f"{s}_train_loss"]) for s in _STAGES if f"{s}_train_loss" in (self.history_ or {})}

    @property
    def device(self) -> torch.device:
        """Device of the networks."""
        return next(self.module.parameters()).device if self.module is not None else torch.device("cpu")

    # ------------------------------------------------------------------ persistence
    def save(self, dir_path: str, overwrite: bool = False, save_mudata: bool = False, **kwargs) -> None:
        """Save the model to a directory, atomically.

        Files: ``model.safetensors`` (network weights and the fitted input preparation) and ``model.json``
        (parameters, registration, features, history); with ``save_mudata``, ``mdata.h5mu``. The directory is
        written beside its destination and moved in place only when complete, so a failure leaves any previous
        save untouched.

        Parameters
        ----------
        dir_path
            Destination directory.
        overwrite
            Replace an existing directory.
        save_mudata
            Also write the registered MuData.
        **kwargs
            ``save_anndata`` is accepted as scvi-tools' name of ``save_mudata`` (its checkpoint callback uses it).
        """
        if self.module is None:
            raise RuntimeError("The model has no networks yet: call train() first.")
        save_mudata = save_mudata or bool(kwargs.pop("save_anndata", False))
        save_model(self, dir_path, overwrite=overwrite, save_mudata=save_mudata)

    @classmethod
    def load(
        cls, dir_path: str, mdata: MuData | None = None, accelerator: str = "auto", device: int | str = "auto"
    ) -> IndiSeek:
        """Load a model saved with :meth:`save`, registering ``mdata`` (or the saved MuData) as it was.

        Only tensors (safetensors) and JSON are read; nothing is unpickled.
        """
        try:
            _, _, torch_device = parse_device_args(accelerator, device, return_device="torch")
        except Exception as err:  # scvi-tools and Lightning raise several types for an unusable device
            raise ValueError(
                f"accelerator={accelerator!r}, device={device!r} cannot be used here ({err}); torch sees "
                f"{torch.cuda.device_count()} GPU(s). Pass accelerator='cpu', or a GPU index as device."
            ) from None
        return load_model(cls, dir_path, mdata, torch_device)

    @classmethod
    def load_query_data(cls, mdata: MuData, reference_model: IndiSeek) -> IndiSeek:
        """A copy of ``reference_model`` that also embeds the batches of ``mdata`` it was not trained on.

        With a ``batch_key``, batches only enter the networks through their centres (each batch's inputs are
        centred on its own means), so mapping new batches needs no training: each new batch's centres are the
        means of its own cells in ``mdata``, RNA and protein separately (over the cells that have the modality).
        The networks are the reference's; the copy's :attr:`mdata` is the query, the default target of
        :meth:`get_latent_representation` and :meth:`write_embeddings`, and its training data stay the
        reference's (e.g. for :meth:`get_imputed_protein`). A new batch should hold enough cells of each type for
        its mean to be the batch's shift, not its composition; batches the reference has keep their centres.

        Parameters
        ----------
        mdata
            Query cells with the reference's modalities, layers, features and batch column.
        reference_model
            A trained model registered with a ``batch_key``.
        """
        import copy

        if not isinstance(reference_model, cls):
            raise TypeError(f"reference_model must be a trained {cls.__name__}, got {type(reference_model).__name__}.")
        reference_model._check_if_trained(warn=False)
        if reference_model.batches_ is None:
            raise ValueError(
                "The reference model has no batches (setup_mudata without batch_key): embed the query directly with "
                "reference_model.get_latent_representation(mdata)."
            )
        batch_key = reference_model.setup_args_["batch_key"]
        rna, protein = reference_model._modality_keys()
        check_cells(mdata, rna, protein)
        if batch_key not in mdata.obs.columns:
            raise KeyError(f"The query has no batch column {batch_key!r} in mdata.obs (the reference's batch_key).")
        names = mdata.obs[batch_key].astype(str)
        new = [b for b in pd.unique(names) if b not in reference_model.batches_]
        if not new:
            logger.info("Every batch of the query is a batch of the reference: nothing to add.")
        model = copy.copy(reference_model)
        model.module = copy.deepcopy(reference_model.module)
        model.batches_ = reference_model.batches_ + new
        model._mdata = mdata
        if new:
            extend_batches(model, mdata, batch_key, new)
        return model

    @staticmethod
    def view_setup_args(dir_path: str, prefix: str | None = None) -> None:
        """Print the arguments a saved model was registered with."""
        info = json.loads((Path(dir_path) / "model.json").read_text())
        print(pd.Series(info["setup_args"], dtype=object).to_string())  # noqa: T201 - a viewer prints


def _checkpoint_stage(ckpt_path) -> str:
    """The stage a Lightning checkpoint of :meth:`IndiSeek.train` belongs to."""
    state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    stage = state.get("indiseek_stage")
    if stage not in _STAGES:
        raise ValueError(f"{ckpt_path} is not a checkpoint of IndiSeek.train (no 'indiseek_stage' entry).")
    return stage
