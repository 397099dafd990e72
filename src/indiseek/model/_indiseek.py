"""The user-facing model on MuData: registration, training of both stages, embeddings."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scvi
import torch
from mudata import MuData
from scvi import REGISTRY_KEYS
from scvi.data import AnnDataManager, fields
from scvi.model.base import BaseModelClass

from indiseek.module import IndiSeekModule, check_club_estimator, get_objective
from indiseek.pp import ProteinInputs, RNAInputs
from indiseek.train import check_optimizer, train_shared, train_specific

from ._data import check_mudata, extract_counts
from ._save import load_model, save_model
from ._utils import (
    KINDS,
    MODALITIES,
    as_float_tensor,
    check_choice,
    max_epochs_heuristic,
    resolve_device,
    split_indices,
)

logger = logging.getLogger(__name__)

_DEFAULT_MODALITIES = {"rna_layer": "rna", "protein_layer": "prot"}


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
    n_hidden, n_layers
        Width and depth (linear layers) of every network (paper: 50 and 5).
    lambda_
        Weight of the capture term: small values favour independence from the shared features, large values
        completeness (paper, CITE-seq: 10).
    temperature
        CLIP temperature of the shared stage (initial value when learned).
    learn_temperature
        Learn the CLIP temperature, as CLIP does.
    capture_temperature
        Temperature of the InfoNCE capture term of FactorizedCL and InfoDisen.
    club_sample
        Use the sampled-negative Gaussian CLUB estimator (one permuted negative) instead of all pairs.
    club_estimator
        Estimator of the CLUB term (IndiSeek, FactorizedCL): ``"gaussian_raw"`` (the paper's variational Gaussian
        on raw ``Z``), ``"gaussian"`` (the same on ``Z`` standardised over the batch, so that shrinking ``Z`` cannot
        lower it; the default of :func:`~indiseek.fit_specific`) or ``"critic"`` (a scalar critic of ``(z, c)`` that
        also sees dependence spread over several coordinates). The raw Gaussian is the default here because on
        simulated CITE-seq at ``lambda_=10`` it ranks cell types by theta better: Spearman's rho 0.835 against
        0.725 standardised (mean of 3 datasets; see the documentation's results page).
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
        n_top_genes: int = 2000,
        n_pcs: int = 200,
    ):
        super().__init__(mdata)
        method = method.lower() if isinstance(method, str) else method
        get_objective(method)
        if lambda_ < 0:
            raise ValueError(f"lambda_ must be non-negative, got {lambda_}.")
        check_club_estimator(club_estimator)
        self.method = method
        self.init_params_ = {
            "method": method, "n_shared": n_shared, "n_specific": n_specific, "n_hidden": n_hidden,
            "n_layers": n_layers, "lambda_": float(lambda_), "temperature": temperature,
            "learn_temperature": learn_temperature, "capture_temperature": capture_temperature,
            "club_sample": club_sample, "club_estimator": club_estimator, "n_top_genes": n_top_genes,
            "n_pcs": n_pcs,
        }  # fmt: skip
        self.setup_args_ = self.adata_manager.registry["setup_args"]
        rna, protein = self._modality_keys()
        self.var_names_ = {"rna": list(mdata[rna].var_names), "protein": list(mdata[protein].var_names)}
        self.inputs = {"rna": RNAInputs(n_top_genes, n_pcs), "protein": ProteinInputs()}
        self.module: IndiSeekModule | None = None
        self.train_times_: dict[str, float] = {}
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
        **kwargs,
    ) -> None:
        """Register the raw RNA and protein counts of a MuData object.

        Parameters
        ----------
        mdata
            MuData with one modality of RNA counts and one of protein (ADT) counts, same cells in the same order.
        rna_layer, protein_layer
            Layers holding the raw counts (``None``: ``.X``).
        modalities
            Which modality holds which data: ``{"rna_layer": "rna", "protein_layer": "prot"}`` (the default).
        **kwargs
            Passed to :meth:`scvi.data.AnnDataManager.register_fields`.
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        modalities = {**_DEFAULT_MODALITIES, **(modalities or {})}
        unknown = set(modalities) - set(_DEFAULT_MODALITIES)
        if unknown:
            raise ValueError(f"Unknown keys in modalities: {sorted(unknown)}; use 'rna_layer' and 'protein_layer'.")
        check_mudata(mdata, modalities["rna_layer"], modalities["protein_layer"], rna_layer, protein_layer)
        mudata_fields = [
            fields.MuDataLayerField(
                REGISTRY_KEYS.X_KEY, rna_layer, mod_key=modalities["rna_layer"], is_count_data=True, mod_required=True
            ),
            fields.MuDataLayerField(
                REGISTRY_KEYS.PROTEIN_EXP_KEY,
                protein_layer,
                mod_key=modalities["protein_layer"],
                is_count_data=True,
                mod_required=True,
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

    def _modality_keys(self) -> tuple[str, str]:
        modalities = {**_DEFAULT_MODALITIES, **(self.setup_args_.get("modalities") or {})}
        return modalities["rna_layer"], modalities["protein_layer"]

    def _prepared_inputs(self, mdata: MuData | None) -> tuple[np.ndarray, np.ndarray]:
        """Raw counts of ``mdata`` (default: the registered data) with the registered features, checked."""
        rna, protein = self._modality_keys()
        return extract_counts(
            self.adata if mdata is None else mdata,
            rna,
            protein,
            self.setup_args_.get("rna_layer"),
            self.setup_args_.get("protein_layer"),
            self.var_names_,
        )

    # ------------------------------------------------------------------ training
    def train(
        self,
        max_epochs: int | None = None,
        lr: float = 1e-3,
        batch_size: int = 128,
        train_size: float = 0.9,
        validation_size: float | None = None,
        early_stopping: bool = True,
        early_stopping_patience: int = 45,
        estimator_lr: float | None = None,
        n_estimator_steps: int = 5,
        weight_decay: float = 0.0,
        optimizer: str = "Adam",
        accelerator: str = "auto",
        device: int | str = "auto",
        seed: int | None = None,
        progress_bar: bool = True,
    ) -> None:
        """Fit the input preparation on the training cells, then the shared stage, then the specific stages.

        Parameters
        ----------
        max_epochs
            Epochs of each stage. Default: scvi-tools' heuristic ``min(400, round(400 * 20000 / n_cells))``.
        lr
            Adam learning rate of every network. The paper trains at 1e-4 for up to 2,000 epochs; at the
            budget of ``indiseek run`` (100 epochs) 1e-4 leaves the specific stage under-trained (see the
            measured results in the documentation), so the default is 1e-3.
        batch_size
            Cells per batch (paper: 128). At least one full batch of training cells is required.
        train_size, validation_size
            Fractions of cells used for training and validation (default: the rest).
        early_stopping, early_stopping_patience
            Stop a stage when its validation loss has not improved for this many epochs.
        estimator_lr, n_estimator_steps
            Learning rate (default ``lr``) and steps per encoder step of CLUB's Gaussian ``q(z | c)``.
        weight_decay, optimizer
            Weight decay of every network and the optimiser, ``"Adam"`` or ``"AdamW"`` (decoupled weight decay).
        accelerator, device
            Where to train: ``"auto"``, ``"cpu"`` or ``"gpu"``; a device index or ``"auto"``.
        seed
            Seed of the split, the weights and the batch order (default ``scvi.settings.seed``).
        progress_bar
            Show a progress bar per stage.
        """
        check_optimizer(optimizer, weight_decay)
        seed = scvi.settings.seed if seed is None else seed
        seed = 0 if seed is None else int(seed)
        dev = resolve_device(accelerator, device)
        rna_counts, protein_counts = self._prepared_inputs(None)
        n_cells = rna_counts.shape[0]
        max_epochs = max_epochs_heuristic(n_cells) if max_epochs is None else int(max_epochs)
        train_idx, val_idx = split_indices(n_cells, train_size, validation_size, seed)
        if len(train_idx) < batch_size:
            raise ValueError(
                f"Only {len(train_idx)} training cells for a batch of {batch_size}: pass a smaller batch_size "
                f"(at most {len(train_idx)}) or more cells."
            )
        self.train_indices_, self.validation_indices_ = train_idx, val_idx

        start = time.perf_counter()
        self.inputs["rna"].fit(rna_counts[train_idx])
        self.inputs["protein"].fit(protein_counts[train_idx])
        x = {
            "rna": as_float_tensor(self.inputs["rna"].transform(rna_counts), dev),
            "protein": as_float_tensor(self.inputs["protein"].transform(protein_counts), dev),
        }
        self.train_times_ = {"inputs": time.perf_counter() - start}

        torch.manual_seed(seed)
        self.module = IndiSeekModule(x["rna"].shape[1], x["protein"].shape[1], **self._module_kwargs()).to(dev)
        generator = torch.Generator().manual_seed(seed)
        t_idx = torch.as_tensor(train_idx, device=dev)
        v_idx = torch.as_tensor(val_idx, device=dev) if len(val_idx) > 1 else None
        loop = {
            "max_epochs": max_epochs, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
            "optimizer": optimizer,
            "early_stopping": early_stopping, "patience": early_stopping_patience, "generator": generator,
            "progress_bar": progress_bar,
        }  # fmt: skip
        history = {}
        start = time.perf_counter()
        history["shared"] = train_shared(self.module.shared, x["rna"], x["protein"], t_idx, v_idx, **loop)
        self.train_times_["shared"] = time.perf_counter() - start

        if self.module.specific is not None:
            with torch.no_grad():
                self.module.shared.eval()
                c = {m: self.module.shared.encode(x[m], m) for m in MODALITIES}
            for modality, other in (("rna", "protein"), ("protein", "rna")):
                start = time.perf_counter()
                history[f"specific_{modality}"] = train_specific(
                    self.module.specific[modality], x[modality], c[modality], c[other], t_idx, v_idx,
                    estimator_lr=estimator_lr, n_estimator_steps=n_estimator_steps,
                    stage=f"specific {modality}", **loop,
                )  # fmt: skip
                self.train_times_[f"specific_{modality}"] = time.perf_counter() - start
        self.module.eval()
        self.history_ = history
        self.is_trained_ = True

    def _module_kwargs(self) -> dict:
        keys = ("method", "n_shared", "n_specific", "n_hidden", "n_layers", "lambda_", "temperature",
                "learn_temperature", "capture_temperature", "club_sample", "club_estimator")  # fmt: skip
        return {k: self.init_params_[k] for k in keys}

    @property
    def device(self) -> torch.device:
        """Device of the networks."""
        return next(self.module.parameters()).device if self.module is not None else torch.device("cpu")

    # ------------------------------------------------------------------ outputs
    @torch.no_grad()
    def _embed(self, mdata: MuData | None, batch_size: int) -> dict[tuple[str, str], np.ndarray]:
        self._check_if_trained(warn=False)
        counts = dict(zip(MODALITIES, self._prepared_inputs(mdata), strict=True))
        out = {}
        self.module.eval()
        for modality in MODALITIES:
            x = self.inputs[modality].transform(counts[modality])
            parts = {"shared": [], "specific": []}
            for start in range(0, len(x), batch_size):
                xb = as_float_tensor(x[start : start + batch_size], self.device)
                parts["shared"].append(self.module.shared.encode(xb, modality).cpu().numpy())
                if self.module.specific is not None:
                    parts["specific"].append(self.module.specific[modality].encode(xb).cpu().numpy())
            for kind, chunks in parts.items():
                if chunks:
                    out[(modality, kind)] = np.concatenate(chunks)
        return out

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
            check_choice(modality, MODALITIES, "modality")
        if kind is not None:
            check_choice(kind, KINDS, "kind")
        if kind == "specific" and self.method == "clip":
            raise ValueError("method='clip' learns shared features only: ask for kind='shared'.")
        kinds = [kind] if kind else (["shared"] if self.method == "clip" else list(KINDS))
        modalities = [modality] if modality else list(MODALITIES)
        emb = self._embed(mdata, batch_size)
        return np.concatenate([emb[(m, k)] for k in kinds for m in modalities], axis=1)

    def embedding_keys(self) -> dict[str, str]:
        """The ``.obsm`` keys :meth:`write_embeddings` writes, by ``"<kind>_<modality>"`` (and ``"all"``)."""
        prefix = f"X_{self.method}"
        keys = {f"{k}_{m}": f"{prefix}_{k}_{m}" for k in KINDS for m in MODALITIES}
        if self.method == "clip":
            keys = {k: v for k, v in keys.items() if k.startswith("shared")}
        return {**keys, "all": prefix}

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
    def save(self, dir_path: str, overwrite: bool = False, save_mudata: bool = False) -> None:
        """Save the trained model to a directory, atomically.

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
        """
        self._check_if_trained(warn=False)
        save_model(self, dir_path, overwrite=overwrite, save_mudata=save_mudata)

    @classmethod
    def load(
        cls, dir_path: str, mdata: MuData | None = None, accelerator: str = "auto", device: int | str = "auto"
    ) -> IndiSeek:
        """Load a model saved with :meth:`save`, registering ``mdata`` (or the saved MuData) as it was.

        Only tensors (safetensors) and JSON are read; nothing is unpickled.
        """
        return load_model(cls, dir_path, mdata, resolve_device(accelerator, device))

    @staticmethod
    def view_setup_args(dir_path: str, prefix: str | None = None) -> None:
        """Print the arguments a saved model was registered with."""
        info = json.loads((Path(dir_path) / "model.json").read_text())
        print(pd.Series(info["setup_args"], dtype=object).to_string())  # noqa: T201 - a viewer prints
