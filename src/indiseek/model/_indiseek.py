"""The user-facing model on MuData: registration, training of both stages on scvi-tools' stack, embeddings."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import scvi
import torch
from mudata import MuData
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager, fields
from scvi.dataloaders import DataSplitter
from scvi.model._utils import get_max_epochs_heuristic, parse_device_args, use_distributed_sampler
from scvi.model.base import BaseModelClass
from scvi.train import TrainRunner

from indiseek._checks import check_bool, check_choice, check_int, check_real
from indiseek._docs import dsp
from indiseek._keys import KINDS, MODALITIES, embedding_key
from indiseek.defaults import CITESEQ
from indiseek.module import IndiSeekModule, check_club_estimator, get_objective
from indiseek.pp import fit_protein_inputs, fit_rna_inputs
from indiseek.train import SharedTrainingPlan, SpecificTrainingPlan, check_optimizer

from ._data import aligned_mudata, check_mudata
from ._save import load_model, save_model
from ._sweep import LAMBDA_GRID, check_lambdas, sweep, use
from ._utils import non_finite

logger = logging.getLogger(__name__)

_DEFAULT_MODALITIES = {"rna_layer": "rna", "protein_layer": "prot"}
_STAGES = ("shared", "specific")


@dsp.dedent
class IndiSeek(BaseModelClass):
    """Shared and modality-specific representations of paired RNA and protein (CITE-seq) measurements.

    Step 1 learns shared features ``C_rna = f_rna(X_rna)`` and ``C_protein = f_protein(X_protein)`` with the CLIP
    loss. Step 2 learns, for each modality ``i``, specific features ``Z_i = h_i(X_i)`` by minimising::

        CLUB(Z_i; C_{3-i}) + lambda_ / (2 E|X_i|^2) * E|g_i(Z_i, C_i) - X_i|^2

    i.e. ``Z_rna`` is made independent of the protein's shared features (and ``Z_protein`` of the RNA's), while
    ``(Z_i, C_i)`` must reconstruct ``X_i``. The baselines of the paper run through the same class with ``method``.

    Inputs are prepared as in the paper, fitted on the training cells and stored with the model: RNA counts are
    normalised per cell, ``log1p``-transformed, reduced to highly variable genes and projected on principal
    components; protein counts are centred log-ratio transformed per cell and centred.

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
    %(param_lambda)s
        ``"auto"``: :meth:`train` fits the shared stage once, then the specific stages over the paper's grid
        10^-3 .. 10^3 (:meth:`sweep_lambda`), and keeps the lambda :func:`~indiseek.tl.select_lambda` chooses
        without labels.
    temperature
        CLIP temperature of the shared stage (initial value when learned).
    learn_temperature
        Learn the CLIP temperature, as CLIP does.
    %(param_capture_temperature)s
    %(param_club)s
    n_top_genes, n_pcs
        Highly variable genes and principal components of the RNA inputs (paper: 200 components).

    Examples
    --------
    >>> mdata = indiseek.datasets.simulate_citeseq(n_cells=2000, seed=0)
    >>> indiseek.IndiSeek.setup_mudata(mdata, modalities={"rna_layer": "rna", "protein_layer": "prot"})
    >>> model = indiseek.IndiSeek(mdata, lambda_=10.0)
    >>> model.train(max_epochs=50)
    >>> z_rna = model.get_latent_representation(modality="rna", kind="specific")
    >>> model.write_embeddings()
    """

    def __init__(
        self,
        mdata: MuData,
        method: str = CITESEQ.method,
        n_shared: int = CITESEQ.n_shared,
        n_specific: int = CITESEQ.n_specific,
        n_hidden: int = CITESEQ.n_hidden,
        n_layers: int = CITESEQ.n_layers,
        lambda_: float | str = CITESEQ.lambda_,
        temperature: float = CITESEQ.temperature,
        learn_temperature: bool = CITESEQ.learn_temperature,
        capture_temperature: float = CITESEQ.capture_temperature,
        club_sample: bool = CITESEQ.club_sample,
        club_estimator: str = CITESEQ.club_estimator,
        n_top_genes: int = CITESEQ.n_top_genes,
        n_pcs: int = CITESEQ.n_pcs,
    ):
        if not isinstance(mdata, MuData) or self._get_most_recent_anndata_manager(mdata) is None:
            raise ValueError(
                "This MuData is not registered: call IndiSeek.setup_mudata(mdata) (with the modalities and layers of "
                "the raw counts) before IndiSeek(mdata)."
            )
        super().__init__(mdata)
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
            check_real(lambda_, "lambda_", minimum=0)
        check_real(temperature, "temperature", minimum=0, strict=True)
        check_real(capture_temperature, "capture_temperature", minimum=0, strict=True)
        check_bool(learn_temperature, "learn_temperature")
        check_bool(club_sample, "club_sample")
        check_club_estimator(club_estimator)
        for name in ("n_shared", "n_specific", "n_hidden", "n_layers", "n_top_genes", "n_pcs"):
            check_int(params[name], name, 1)
        self.method = method
        self.n_top_genes, self.n_pcs = params.pop("n_top_genes"), params.pop("n_pcs")
        self._module_kwargs = params
        rna, protein = self._modality_keys()
        self.var_names_ = {"rna": list(mdata[rna].var_names), "protein": list(mdata[protein].var_names)}
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
        allow_non_integer: bool = False,
        **kwargs,
    ) -> None:
        """Register the raw RNA and protein counts of a MuData object.

        The counts are checked first: finite, non-negative, whole numbers, every cell with counts in both
        modalities, at least 2 features that vary in each, unique feature names, ``mdata.obs_names`` in the
        modalities' order. A warning says when the RNA has fewer features than the protein (swapped modalities?).

        Parameters
        ----------
        mdata
            MuData with one modality of RNA counts and one of protein (ADT) counts, same cells in the same order.
        rna_layer, protein_layer
            Layers holding the raw counts (``None``: ``.X``).
        modalities
            Which modality holds which data: ``{"rna_layer": "rna", "protein_layer": "prot"}`` (the default).
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
        check_mudata(mdata, rna, protein, rna_layer, protein_layer, integer=not allow_non_integer)
        counts = not allow_non_integer  # scvi-tools' own check would only repeat ours, naming no modality
        mudata_fields = [
            fields.MuDataLayerField(
                REGISTRY_KEYS.X_KEY, rna_layer, mod_key=rna, is_count_data=counts, mod_required=True
            ),
            fields.MuDataLayerField(
                REGISTRY_KEYS.PROTEIN_EXP_KEY, protein_layer, mod_key=protein, is_count_data=counts, mod_required=True
            ),
        ]
        adata_manager = AnnDataManager(fields=mudata_fields, setup_method_args=setup_method_args)
        adata_manager.register_fields(mdata, **kwargs)
        cls.register_manager(adata_manager)

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
        max_epochs: int | None = CITESEQ.max_epochs,
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
            Epochs of each stage; ``None``: scvi-tools' heuristic ``min(400, round(400 * 20000 / n_cells))``.
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
            Stop a stage when its ``validation_loss`` has not improved for this many epochs (needs validation
            cells).
        check_val_every_n_epoch
            Validate every this many epochs (default: every epoch with early stopping, else never).
        %(param_estimator)s
        seed
            If given, sets ``scvi.settings.seed`` (split, weights and batch order) first.
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
        max_epochs = get_max_epochs_heuristic(n_cells) if max_epochs is None else max_epochs
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
        sweep_kwargs = dict(trainer_kwargs)
        with self._unchanged_on_failure():
            start = time.perf_counter()
            self.module = self._build_module(splitter.train_idx)
            self.train_times_ = {"inputs": time.perf_counter() - start}
            self.is_trained_, self.history_ = False, None
            trainer_kwargs = {
                "early_stopping": early_stopping and splitter.n_val > 0,
                "early_stopping_monitor": "validation_loss",
                "early_stopping_patience": early_stopping_patience,
                "check_val_every_n_epoch": check_val_every_n_epoch,
                **trainer_kwargs,
            }
            callbacks = trainer_kwargs.pop("callbacks", None) or []
            plans = {"shared": SharedTrainingPlan(self.module, **plan_kwargs)}
            if self.module.specific is not None and not self.lambda_auto:
                plans["specific"] = SpecificTrainingPlan(
                    self.module, estimator_lr=estimator_lr, n_estimator_steps=n_estimator_steps, **plan_kwargs
                )
            history = {}
            for stage, plan in plans.items():
                if resume_stage == "specific" and stage == "shared":
                    continue  # the checkpoint holds the trained shared stage
                history |= self._run_stage(
                    stage, plan, splitter, max_epochs, accelerator, devices, {**trainer_kwargs, "callbacks": callbacks},
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
            self.history_ = history
            self.is_trained_ = True
            if self.lambda_auto:
                self.sweep_lambda(
                    LAMBDA_GRID, max_epochs=max_epochs, batch_size=batch_size, train_size=train_size, lr=lr,
                    n_estimator_steps=n_estimator_steps, seed=scvi.settings.seed, accelerator=accelerator,
                    devices=devices, **sweep_kwargs,
                )  # fmt: skip

    def _run_stage(
        self, stage: str, plan, splitter: DataSplitter, max_epochs: int, accelerator, devices, trainer_kwargs: dict,
        ckpt_path=None,
    ) -> dict[str, pd.DataFrame]:  # fmt: skip
        """Train one stage under scvi-tools' ``TrainRunner``; its history in scvi-tools' form, prefixed by the stage."""
        start = time.perf_counter()
        self.module.train()
        callbacks = list(trainer_kwargs.get("callbacks") or [])  # scvi-tools' Trainer appends to the list
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

    @torch.no_grad()
    def _fit_embedding_scale(self, train_idx: np.ndarray, batch_size: int) -> None:
        """Centre and scale each block of features on the training cells, so ``.obsm`` is usable as it is.

        The blocks come out of their losses on scales 10x apart (CLIP normalises C, the raw Gaussian CLUB rewards a
        small Z): k-nearest-neighbour accuracy of level-2 types from the concatenation rises from 0.54 to 0.83 on
        simulated data. Distances within a block only change by a constant factor.
        """
        sums, n = {}, 0
        for tensors in self._make_data_loader(self.adata, indices=np.sort(train_idx), batch_size=max(batch_size, 1024)):
            out = self.module.embed({k: v.to(self.device) for k, v in tensors.items()}, scaled=False)
            for key, v in out.items():
                s, sq = sums.get(key, (0.0, 0.0))
                sums[key] = (s + v.double().sum(0), sq + (v.double() ** 2).sum(0))
            n += len(next(iter(out.values())))
        self.module.set_embedding_scale(sums, n)

    def _build_module(self, train_idx: np.ndarray) -> IndiSeekModule:
        """Fit the input preparation on the training cells' registered counts and build the networks around it."""
        idx = np.sort(train_idx)
        rna = self.adata_manager.get_from_registry(REGISTRY_KEYS.X_KEY)
        protein = self.adata_manager.get_from_registry(REGISTRY_KEYS.PROTEIN_EXP_KEY)
        protein = protein.to_numpy() if isinstance(protein, pd.DataFrame) else protein
        fitted = {"rna": fit_rna_inputs(rna[idx], self.n_top_genes, self.n_pcs), "protein": fit_protein_inputs(
            protein[idx])}  # fmt: skip
        module = IndiSeekModule(
            n_genes=rna.shape[1], n_selected_genes=len(fitted["rna"]["genes"]),
            n_pcs=fitted["rna"]["components"].shape[0], n_proteins=protein.shape[1], **self._module_kwargs,
        )  # fmt: skip
        for modality, arrays in fitted.items():
            for name, value in arrays.items():
                getattr(module.inputs[modality], name).copy_(torch.as_tensor(value))
        return module

    def sweep_lambda(
        self,
        lambdas: Sequence[float] = LAMBDA_GRID,
        max_epochs: int = CITESEQ.max_epochs,
        batch_size: int = CITESEQ.batch_size,
        train_size: float = CITESEQ.train_size,
        lr: float = CITESEQ.lr,
        n_estimator_steps: int = CITESEQ.n_estimator_steps,
        seed: int = 0,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        **trainer_kwargs,
    ) -> pd.DataFrame:
        """Fit the specific stages at each lambda on the trained shared stage and measure the trade-off without labels.

        The shared stage does not depend on lambda: it is kept, and only the specific stages are fitted, for each
        lambda from a fresh initialisation (drawn in turn from the generator ``seed`` sets), with :meth:`train`'s
        networks and budget.
        After each fit, on held-out cells (:func:`~indiseek.tl.independence`, :func:`~indiseek.tl.completeness`):
        the leak, R^2 of C_{3-i} predicted from Z_i, with its permutation p-value, and the completeness, R^2 of X_i
        from (Z_i, C_i) and from C_i alone. The model then uses the lambda
        :func:`~indiseek.tl.select_lambda` chooses (``model.lambda_choice_`` holds it and the reason); every fitted
        lambda stays available through :meth:`use_lambda` until the next sweep (only the one in use is saved).

        Parameters
        ----------
        lambdas
            The grid (default: the paper's, 10^-3 .. 10^3).
        max_epochs
            Epochs of each fit (no early stopping: every lambda gets the same budget).
        batch_size, train_size, lr, n_estimator_steps, seed, accelerator, devices, **trainer_kwargs
            As in :meth:`train`.

        Returns
        -------
        One row per lambda (the index): ``independence_r2_<modality>``, ``independence_p_value_<modality>``,
        ``completeness_r2_joint_<modality>``, ``completeness_r2_shared_<modality>`` and ``seconds``; also
        ``model.lambda_sweep_``. :func:`~indiseek.tl.lambda_tradeoff` and :func:`~indiseek.pl.lambda_tradeoff`
        summarise and draw it.
        """
        self._check_if_trained(warn=False)
        if self.module.specific is None:
            raise ValueError("method='clip' has no specific stage, hence no lambda to sweep.")
        lambdas = check_lambdas(lambdas)
        check_int(max_epochs, "max_epochs", 1)
        check_int(batch_size, "batch_size", 2, hint="The contrastive loss compares each cell with the others.")
        check_real(train_size, "train_size", minimum=0, maximum=1, strict=True)
        check_real(lr, "lr", minimum=0, strict=True)
        check_int(n_estimator_steps, "n_estimator_steps", 1)
        check_int(seed, "seed", 0)
        state = {k: v.clone() for k, v in self.module.state_dict().items()}
        lambdas_before = {m: stage.lambda_ for m, stage in self.module.specific.items()}
        saved = (self.lambda_states_, self.lambda_sweep_, self.lambda_choice_, self.train_times_)
        history = self.history_  # the sweep's stages do not enter the model's training history
        try:
            return sweep(self, lambdas, max_epochs, batch_size, train_size, lr, n_estimator_steps, seed, accelerator,
                         devices, trainer_kwargs)  # fmt: skip
        except BaseException:  # a sweep that does not finish leaves the networks as they were
            self.module.load_state_dict(state)
            for m, value in lambdas_before.items():
                self.module.specific[m].lambda_ = value
            self.lambda_states_, self.lambda_sweep_, self.lambda_choice_, self.train_times_ = saved
            self.is_trained_ = True
            raise
        finally:
            self.history_ = history

    def use_lambda(self, lambda_: float) -> None:
        """Use the specific stages fitted at ``lambda_`` by the last :meth:`sweep_lambda` (embeddings, saves)."""
        use(self, lambda_)

    @property
    def lambda_in_use(self) -> float | None:
        """The capture weight of the specific stages in use (``None`` for CLIP or before training)."""
        if self.module is None or self.module.specific is None:
            return None
        return float(self.module.specific["rna"].lambda_)

    @property
    def epochs_trained(self) -> dict[str, int]:
        """Epochs each stage ran (``{"shared": n, "specific": m}``; fewer than ``max_epochs`` after early stopping)."""
        return {s: len(self.history_[f"{s}_train_loss"]) for s in _STAGES if f"{s}_train_loss" in (self.history_ or {})}

    @property
    def device(self) -> torch.device:
        """Device of the networks."""
        return next(self.module.parameters()).device if self.module is not None else torch.device("cpu")

    # ------------------------------------------------------------------ outputs
    @torch.no_grad()
    def _embed(self, mdata: MuData | None, batch_size: int) -> dict[tuple[str, str], np.ndarray]:
        self._check_if_trained(warn=False)
        check_int(batch_size, "batch_size", 1)
        mdata = self._validate_anndata(self._aligned(mdata))
        parts = defaultdict(list)
        self.module.eval()
        for tensors in self._make_data_loader(mdata, batch_size=batch_size):
            tensors = {k: v.to(self.device) for k, v in tensors.items()}
            for key, value in self.module.embed(tensors).items():
                parts[key].append(value.cpu().numpy())
        out = {key: np.concatenate(chunks) for key, chunks in parts.items()}
        for (modality, kind), value in out.items():
            bad = ~np.isfinite(value).all(1)
            if bad.any():
                raise FloatingPointError(
                    f"The {kind} {modality} features of {int(bad.sum())} cells are not finite (e.g. "
                    f"{mdata.obs_names[np.flatnonzero(bad)[0]]}): their counts are far outside the training data's."
                )
        return out

    def _aligned(self, mdata: MuData | None) -> MuData:
        """The registered MuData, or ``mdata`` checked and with the registered features in registered order."""
        if mdata is None:
            return self.adata
        rna, protein = self._modality_keys()
        args = self.setup_args_
        integer = not args.get("allow_non_integer", False)
        return aligned_mudata(
            mdata, rna, protein, args.get("rna_layer"), args.get("protein_layer"), self.var_names_, integer
        )

    def get_latent_representation(
        self,
        mdata: MuData | None = None,
        modality: str | None = None,
        kind: str | None = None,
        batch_size: int = 4096,
    ) -> np.ndarray:
        """Shared or specific features of cells.

        Parameters
        ----------
        mdata
            Cells to embed (default: the registered MuData). New (query) cells need the registered modalities,
            layers and features; their inputs are prepared with the transformations fitted on the training cells.
        modality
            ``"rna"`` or ``"protein"``; ``None`` for both.
        kind
            ``"shared"`` (``C``) or ``"specific"`` (``Z``); ``None`` for both.
        batch_size
            Cells per forward pass.

        Returns
        -------
        Array ``(n_cells, dim)``. With both modalities and kinds: ``[C_rna, C_protein, Z_rna, Z_protein]``;
        with one of each left open, the concatenation over it in that same order.
        """
        if modality is not None:
            check_choice(modality, "modality", MODALITIES)
        if kind is not None:
            check_choice(kind, "kind", KINDS)
        if kind == "specific" and self.method == "clip":
            raise ValueError("method='clip' learns shared features only: ask for kind='shared'.")
        kinds = [kind] if kind else (["shared"] if self.method == "clip" else list(KINDS))
        modalities = [modality] if modality else list(MODALITIES)
        emb = self._embed(mdata, batch_size)
        return np.concatenate([emb[(m, k)] for k in kinds for m in modalities], axis=1)

    @torch.no_grad()
    def get_prepared_inputs(self, mdata: MuData | None = None, modality: str = "rna", batch_size: int = 4096):
        """The inputs ``X_i`` the networks see: RNA principal components or centred protein CLR, ``(n_cells, dim)``.

        Prepared with the transformation fitted on the training cells, e.g. to measure completeness
        (:func:`~indiseek.tl.diagnostics`).
        """
        self._check_if_trained(warn=False)
        check_choice(modality, "modality", MODALITIES)
        check_int(batch_size, "batch_size", 1)
        mdata = self._validate_anndata(self._aligned(mdata))
        chunks = [
            self.module.prepare({k: v.to(self.device) for k, v in tensors.items()}, modality).cpu().numpy()
            for tensors in self._make_data_loader(mdata, batch_size=batch_size)
        ]
        return np.concatenate(chunks)

    def embedding_keys(self) -> dict[str, str]:
        """The ``.obsm`` keys :meth:`write_embeddings` writes, by ``"<kind>_<modality>"`` (and ``"all"``)."""
        kinds = ["shared"] if self.method == "clip" else list(KINDS)
        keys = {f"{k}_{m}": embedding_key(self.method, k, m) for k in kinds for m in MODALITIES}
        return {**keys, "all": embedding_key(self.method)}

    def write_embeddings(self, mdata: MuData | None = None, batch_size: int = 4096) -> None:
        """Write the features into ``mdata.obsm`` (default: the registered MuData).

        Keys (``<method>`` is ``indiseek`` unless a baseline was chosen): ``X_<method>_shared_rna``,
        ``X_<method>_shared_protein``, ``X_<method>_specific_rna``, ``X_<method>_specific_protein`` and
        ``X_<method>`` (their concatenation, as :meth:`get_latent_representation` returns it). They can be used
        as usual, e.g. ``sc.pp.neighbors(mdata, use_rep="X_indiseek_specific_rna")``.
        """
        target = self.adata if mdata is None else mdata
        emb = self._embed(mdata, batch_size)
        keys = self.embedding_keys()
        values = {key: emb[tuple(name.split("_")[::-1])] for name, key in keys.items() if name != "all"}
        values[keys["all"]] = np.concatenate(list(values.values()), axis=1)
        for key, value in values.items():  # computed in full first, so a failure writes nothing
            target.obsm[key] = value

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
