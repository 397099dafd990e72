"""What a trained model returns: features of any cells, their weights in the concatenation, inputs, imputed protein."""

from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np
import pandas as pd
import torch
from mudata import MuData
from sklearn.neighbors import NearestNeighbors

from indiseek._checks import check_choice, check_int
from indiseek._keys import KINDS, MODALITIES, embedding_key
from indiseek.tl import completeness

from ._data import batch_codes, check_cells, modality_counts
from ._utils import current_seed

logger = logging.getLogger(__name__)

#: Most training cells on which the blocks' weights in the concatenated features are measured.
WEIGHT_CELLS = 10_000
_MIN_WEIGHT_CELLS = 40  # the kNN regression holds out a fifth and needs more than 15 cells to fit on


class OutputsMixin:
    """Outputs of a trained :class:`~indiseek.IndiSeek`: its features, their weights, prepared inputs, imputed protein.

    Also fits, after training, the scale and weight of each block of features in the concatenation.
    """

    def _counts(self, mdata: MuData | None) -> tuple[MuData, dict[str, tuple[np.ndarray, object]]]:
        """Cells to embed (default: :attr:`mdata`) and, per modality, its rows in them and its registered counts."""
        mdata = self.mdata if mdata is None else mdata
        rna, protein = self._modality_keys()
        check_cells(mdata, rna, protein)
        args = self.setup_args_
        integer = not args.get("allow_non_integer", False)
        counts = {
            m: modality_counts(mdata, key, args.get(f"{m}_layer"), self.var_names_[m], integer)
            for m, key in zip(MODALITIES, (rna, protein), strict=True)
        }
        if self.batches_ is not None:
            codes = batch_codes(mdata, args["batch_key"], self.batches_)
            counts = {m: (rows, x, codes[rows]) for m, (rows, x) in counts.items()}
        else:
            counts = {m: (rows, x, None) for m, (rows, x) in counts.items()}
        return mdata, counts

    def _chunks(self, x, codes: np.ndarray | None, batch_size: int):
        """``batch_size`` rows of ``x`` as dense float32 tensors on the model's device, with their batch codes."""
        for start in range(0, max(x.shape[0], 1), batch_size):  # one empty chunk when no cell has the modality
            chunk = x[start : start + batch_size]
            chunk = chunk.toarray() if hasattr(chunk, "toarray") else np.asarray(chunk)
            batch = None if codes is None else torch.as_tensor(codes[start : start + batch_size], device=self.device)
            yield torch.as_tensor(chunk, dtype=torch.float32, device=self.device), batch

    @torch.no_grad()
    def _embed(self, mdata: MuData | None, batch_size: int) -> dict[tuple[str, str], np.ndarray]:
        """Features of every cell of ``mdata`` by ``(modality, kind)``; NaN rows for cells without the modality."""
        self._check_if_trained(warn=False)
        check_int(batch_size, "batch_size", 1)
        mdata, counts = self._counts(mdata)
        self.module.eval()
        out = {}
        for m, (rows, x, codes) in counts.items():
            parts = defaultdict(list)
            for chunk, batch in self._chunks(x, codes, batch_size):
                for kind, value in self.module.encode(chunk, m, batch).items():
                    parts[kind].append(value.cpu().numpy())
            for kind, chunks in parts.items():
                value = np.concatenate(chunks)
                bad = ~np.isfinite(value).all(1)
                if bad.any():
                    raise FloatingPointError(
                        f"The {kind} {m} features of {int(bad.sum())} cells are not finite (e.g. "
                        f"{mdata.obs_names[rows[np.flatnonzero(bad)[0]]]}): their counts are far outside the "
                        "training data's."
                    )
                full = np.full((mdata.n_obs, value.shape[1]), np.nan, dtype=np.float32)
                full[rows] = value
                out[(m, kind)] = full
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
        with one of each left open, the concatenation over it in that same order. Each block is centred with unit
        mean per-dimension variance on the training cells; in a concatenation, each is then scaled to a total
        variance of its weight (:attr:`embedding_weights`) times ``n_shared``.
        """
        if modality is not None:
            check_choice(modality, "modality", MODALITIES)
        if kind is not None:
            check_choice(kind, "kind", KINDS)
        if kind == "specific" and self.method == "clip":
            raise ValueError("method='clip' learns shared features only: ask for kind='shared'.")
        kinds = [kind] if kind else self._kinds()
        modalities = [modality] if modality else list(MODALITIES)
        emb = self._embed(mdata, batch_size)
        blocks = [(m, k) for k in kinds for m in modalities]
        return emb[blocks[0]] if len(blocks) == 1 else self._concatenate(emb, blocks)

    def _concatenate(self, emb: dict[tuple[str, str], np.ndarray], blocks: list[tuple[str, str]]) -> np.ndarray:
        """The blocks ``(modality, kind)`` side by side, each scaled by its weight (:attr:`embedding_weights`)."""
        return np.concatenate([emb[b] * self.module.concatenation_factor(*b) for b in blocks], axis=1)

    @property
    def embedding_weights(self) -> dict[str, float]:
        """Weight of each block in the concatenated features, by ``"<kind>_<modality>"``.

        Measured after training from the held-out R^2 of the modality's prepared inputs
        (:func:`~indiseek.tl.completeness`): for ``C_i``, R^2 from ``C_i`` alone; for ``Z_i``, what adding it to
        ``C_i`` gains, R^2 from ``(Z_i, C_i)`` minus that; both clipped at 0. 1 for CLIP's two shared blocks. A block of
        weight 0 has zeros in the concatenation; the blocks on their own (``kind`` and ``modality`` given) are not
        weighted.
        """
        self._check_if_trained(warn=False)
        return {f"{k}_{m}": float(getattr(self.module, f"weight_{k}_{m}")) for k in self._kinds() for m in MODALITIES}

    def _kinds(self) -> list[str]:
        """The kinds of features the method learns: shared only for CLIP."""
        return ["shared"] if self.method == "clip" else list(KINDS)

    @torch.no_grad()
    def get_prepared_inputs(self, mdata: MuData | None = None, modality: str = "rna", batch_size: int = 4096):
        """The inputs ``X_i`` the networks see: RNA principal components, centred protein CLR (or its principal
        components, see ``n_protein_pcs``), ``(n_cells, dim)``.

        Prepared with the transformation fitted on the training cells, e.g. to measure completeness
        (:func:`~indiseek.tl.diagnostics`). Cells without the modality get NaN rows.
        """
        self._check_if_trained(warn=False)
        check_choice(modality, "modality", MODALITIES)
        check_int(batch_size, "batch_size", 1)
        mdata, counts = self._counts(mdata)
        rows, x, codes = counts[modality]
        prepared = [self.module.inputs[modality](*chunk).cpu().numpy() for chunk in self._chunks(x, codes, batch_size)]
        full = np.full((mdata.n_obs, self.module.inputs[modality].n_output), np.nan, dtype=np.float32)
        full[rows] = np.concatenate(prepared)
        return full

    @torch.no_grad()
    def get_imputed_protein(
        self, mdata: MuData | None = None, n_neighbors: int = 15, batch_size: int = 4096
    ) -> pd.DataFrame:
        """Each cell's protein (CLR scale) predicted from its RNA alone, through the RNA's shared features.

        The shared stage maps a cell's RNA and its protein to the same point, so cells whose RNA shared features
        ``C_rna`` are close have similar protein. The imputed protein of a cell is the mean measured CLR
        (``log1p(x / geometric mean)``, :func:`~indiseek.nn.clr`) of the ``n_neighbors`` training cells nearest to
        it in ``C_rna`` (Euclidean); a training cell is not its own neighbour. With batches, each neighbour's CLR
        is taken relative to its batch's centre and the imputed cell's own batch centre is added, so a cell gets
        its batch's protein levels (a batch without measured protein gets the training cells' mean). Cells
        without RNA (protein-only cells) get NaN rows; cells with RNA only are imputed like any other.

        Parameters
        ----------
        mdata
            Cells to impute (default: :attr:`mdata`, every cell); new cells need the registered RNA modality,
            layer and genes.
        n_neighbors
            Training cells averaged per cell.
        batch_size
            Cells per forward pass.

        Returns
        -------
        DataFrame, cells x registered proteins, indexed by ``obs_names``.
        """
        self._check_if_trained(warn=False)
        if self.train_indices is None:
            raise ValueError(
                "This model does not know its training cells (a model saved by indiseek 0.1, or loaded with other "
                "cells than it was trained on): load it with its training MuData, or retrain it."
            )
        train = np.sort(np.asarray(self.train_indices))
        check_int(n_neighbors, "n_neighbors", 1, len(train) - 1, f"There are {len(train)} training cells.")
        target = self.mdata if mdata is None else mdata
        query = self._embed(target, batch_size)[("rna", "shared")]
        reference = self._embed(self.adata, batch_size)[("rna", "shared")][train]
        _, counts = self._counts(self.adata)
        rows, x, codes = counts["protein"]
        order = np.argsort(rows)[train]
        inputs = self.module.inputs["protein"]
        measured = np.concatenate([inputs.centred(*chunk).cpu().numpy() for chunk in self._chunks(
            x[order], None if codes is None else codes[order], batch_size)])  # fmt: skip
        # neighbours' CLR with their batch's centre removed, then the imputed cell's own batch centre added
        centre = inputs.mean[None].expand(target.n_obs, -1)
        if self.batches_ is not None:
            target_codes = torch.as_tensor(batch_codes(target, self.setup_args_["batch_key"], self.batches_))
            centre = centre + (inputs.batch_offset[target_codes.to(self.device)] if inputs.n_batches > 1 else 0)
        centre = centre.cpu().numpy()

        has_rna = ~np.isnan(query).any(axis=1)
        imputed = np.full((target.n_obs, measured.shape[1]), np.nan, dtype=np.float32)
        if has_rna.any():
            search = NearestNeighbors(n_neighbors=n_neighbors + 1).fit(reference)
            idx = search.kneighbors(query[has_rna], return_distance=False)
            own = pd.Index(self.adata.obs_names[train]).get_indexer(target.obs_names[has_rna])
            is_own = idx == own[:, None]
            drop = np.where(is_own.any(axis=1), is_own.argmax(axis=1), n_neighbors)  # itself, else the farthest
            keep = np.ones_like(idx, dtype=bool)
            keep[np.arange(len(idx)), drop] = False
            imputed[has_rna] = measured[idx[keep].reshape(len(idx), n_neighbors)].mean(axis=1) + centre[has_rna]
        return pd.DataFrame(imputed, index=target.obs_names.copy(), columns=list(self.var_names_["protein"]))

    def embedding_keys(self) -> dict[str, str]:
        """The ``.obsm`` keys :meth:`write_embeddings` writes, by ``"<kind>_<modality>"`` (and ``"all"``)."""
        keys = {f"{k}_{m}": embedding_key(self.method, k, m) for k in self._kinds() for m in MODALITIES}
        return {**keys, "all": embedding_key(self.method)}

    def write_embeddings(self, mdata: MuData | None = None, batch_size: int = 4096) -> None:
        """Write the features into ``mdata.obsm`` (default: the registered MuData).

        Keys (``<method>`` is ``indiseek`` unless a baseline was chosen): ``X_<method>_shared_rna``,
        ``X_<method>_shared_protein``, ``X_<method>_specific_rna``, ``X_<method>_specific_protein`` and
        ``X_<method>`` (their concatenation, each block weighted by :attr:`embedding_weights`, as
        :meth:`get_latent_representation` returns it). They can be used as usual, e.g.
        ``sc.pp.neighbors(mdata, use_rep="X_indiseek_specific_rna")``.
        """
        target = self.mdata if mdata is None else mdata
        emb = self._embed(target, batch_size)
        keys = self.embedding_keys()
        blocks = {key: tuple(name.split("_")[::-1]) for name, key in keys.items() if name != "all"}
        values = {key: emb[block] for key, block in blocks.items()}
        values[keys["all"]] = self._concatenate(emb, list(blocks.values()))
        for key, value in values.items():  # computed in full first, so a failure writes nothing
            target.obsm[key] = value

    def _minibatches(self, indices: np.ndarray, batch_size: int):
        """Minibatches of the registered paired cells ``indices`` (in order), on the model's device."""
        for tensors in self._make_data_loader(self.adata, indices=indices, batch_size=max(batch_size, 1024)):
            yield {k: v.to(self.device) for k, v in tensors.items()}

    @torch.no_grad()
    def _fit_embedding_scale(self, train_idx: np.ndarray, batch_size: int) -> None:
        """Centre and scale each block of features on the training cells, so ``.obsm`` is usable as it is.

        The blocks come out of their losses on scales far apart (CLIP compares directions of C; CLUB and the
        capture term leave the scale of Z free), so without this the largest block would decide every distance in
        the concatenation. Distances within a block only change by a constant factor.
        """
        sums, n = {}, 0
        for tensors in self._minibatches(np.sort(train_idx), batch_size):
            out = self.module.embed(tensors, scaled=False)
            for key, v in out.items():
                s, sq = sums.get(key, (0.0, 0.0))
                sums[key] = (s + v.double().sum(0), sq + (v.double() ** 2).sum(0))
            n += len(next(iter(out.values())))
        self.module.set_embedding_scale(sums, n)
        if self.module.specific is not None:
            self._fit_embedding_weights(train_idx, batch_size)

    @torch.no_grad()
    def _fit_embedding_weights(self, train_idx: np.ndarray, batch_size: int) -> None:
        """Weight each block in the concatenated features by the share of its modality's inputs it explains.

        Held-out R^2 of X_i (:func:`~indiseek.tl.completeness`, kNN regression, on up to :data:`WEIGHT_CELLS`
        training cells): ``C_i`` weighs R^2 from ``C_i`` alone, ``Z_i`` what it adds to that, R^2 from
        ``(Z_i, C_i)`` minus R^2 from ``C_i``; the two add up to what the modality's features explain together.
        With equal weights, specific features that carry little of their modality fill half the concatenation and
        blur the cell types for k-means; weighted by what they explain alone, ``Z_i`` still repeats what ``C_i``
        holds (the results page measures both: "Specific blocks weigh what they add to the shared ones").
        """
        seed = current_seed()
        idx = np.sort(np.random.default_rng(seed).permutation(train_idx)[:WEIGHT_CELLS])
        if len(idx) < _MIN_WEIGHT_CELLS:
            logger.info("%d training cells: the blocks of the concatenated features keep equal weights.", len(idx))
            return
        parts = defaultdict(list)
        # a data loader draws its base seed from torch's generator: restore it, so a sweep's next fit starts as
        # it would without the weights
        with torch.random.fork_rng(devices=[]):
            for tensors in self._minibatches(idx, batch_size):
                for key, v in self.module.embed(tensors, scaled=False).items():
                    parts[key].append(v.cpu().numpy())
                for m in MODALITIES:
                    parts[(m, "inputs")].append(self.module.prepare(tensors, m).cpu().numpy())
        f = {key: np.concatenate(v) for key, v in parts.items()}
        weights = {}
        for m in MODALITIES:
            comp = completeness(self.adata, f[(m, "inputs")], f[(m, "specific")], f[(m, "shared")], seed=seed)
            weights[(m, "shared")] = comp["r2_shared"]
            weights[(m, "specific")] = comp["r2_joint"] - max(comp["r2_shared"], 0.0)
        self.module.set_embedding_weights(weights)
