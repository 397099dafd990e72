"""A CITE-seq simulator with known shared, RNA-only and protein-only structure per cell type."""

from __future__ import annotations

import logging

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
from scipy import sparse
from tqdm.auto import tqdm

from .._checks import check_int, check_real

logger = logging.getLogger(__name__)

_LINEAGE_NAMES = ("T", "B", "Mono", "NK", "Progenitor")
_CHUNK = 2048  # cells per sampling chunk: bounds memory at about _CHUNK * n_genes doubles
_ON_OFF_RATIO = 150.0  # median ratio of a protein's "on" to its "off" foreground level
_PROTEIN_GAIN = 2.0  # slope of the logistic in units of the linear predictor's standard deviation


def _layout(n_lineages: int, n_types: int) -> tuple[list[str], list[str], np.ndarray]:
    """Names of lineages and types, and the lineage index of each type (types spread evenly)."""
    if n_lineages <= len(_LINEAGE_NAMES):
        lineages = list(_LINEAGE_NAMES[:n_lineages])
    else:
        lineages = [f"L{i + 1}" for i in range(n_lineages)]
    sizes = [n_types // n_lineages + (i < n_types % n_lineages) for i in range(n_lineages)]
    types, lineage_of_type = [], []
    for i, (name, size) in enumerate(zip(lineages, sizes, strict=True)):
        types += [f"{name}_{k + 1}" for k in range(size)]
        lineage_of_type += [i] * size
    return lineages, types, np.asarray(lineage_of_type)


def _specificities(lineage_of_type: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Stratified draws on [0, 1] within each lineage: m siblings get one value in each of m equal bins."""
    s = np.empty(len(lineage_of_type))
    for lin in np.unique(lineage_of_type):
        idx = np.flatnonzero(lineage_of_type == lin)
        s[idx] = (rng.permutation(len(idx)) + rng.uniform(size=len(idx))) / len(idx)
    return s


def _cell_labels(n_cells: int, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Type index per cell, drawn with the types' expected proportions ``weights``; every type present if possible."""
    n_types = len(weights)
    n_min = 1 if n_cells >= n_types else 0
    counts = rng.multinomial(n_cells - n_min * n_types, weights) + n_min
    return rng.permutation(np.repeat(np.arange(n_types), counts))


def _loadings(n_programs: int, n_features: int, density: float, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Sparse signed loadings (programs x features); every program loads on at least one feature."""
    mask = rng.random((n_programs, n_features)) < density
    mask[np.arange(n_programs), rng.permutation(np.arange(n_programs) % n_features)] = True
    signs = rng.choice([-1.0, 1.0], size=mask.shape)
    return mask * signs * rng.uniform(0.5 * scale, 1.5 * scale, size=mask.shape)


def _directions(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Random directions in R^k with norm sqrt(k), so that strength per program is 1 on average and never random."""
    u = rng.standard_normal((n, k))
    return np.sqrt(k) * u / np.linalg.norm(u, axis=1, keepdims=True)


def _negative_binomial(mu: np.ndarray, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gamma-Poisson draws with mean ``mu`` and inverse dispersion ``theta`` (variance mu + mu^2 / theta)."""
    return rng.poisson(rng.gamma(theta, mu / theta))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, without overflow warnings."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _no_empty_cells(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Add one count to a random feature of any cell without counts."""
    empty = np.flatnonzero(counts.sum(axis=1) == 0)
    counts[empty, rng.integers(counts.shape[1], size=len(empty))] += 1
    return counts


def _batches(
    n_cells: int, n_batches: int, n_genes: int, n_proteins: int, strength: float, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Batch index per cell (balanced, in random order) and each batch's multiplicative factors.

    The log factors are ``N(0, strength**2)`` centred over batches, so the batches scatter around the
    single-batch model and a single batch has factors of exactly 1.
    """
    batch = rng.permutation(np.arange(n_cells) % n_batches)

    def factors(*shape: int) -> np.ndarray:
        log = strength * rng.standard_normal((n_batches, *shape))
        return np.exp(log - log.mean(axis=0))

    return batch, {
        "rna_gene": factors(n_genes),
        "rna_library": factors(),
        "protein": factors(n_proteins),
        "protein_ambient": factors(),
    }


def simulate_citeseq(
    n_cells: int = 5000,
    n_genes: int = 2000,
    n_proteins: int = 25,
    n_lineages: int = 5,
    n_types: int = 27,
    seed: int = 0,
    *,
    n_shared_programs: int = 8,
    n_rna_programs: int = 6,
    n_protein_programs: int = 6,
    lineage_effect: float = 2.0,
    type_effect: float = 2.0,
    program_noise: float = 1.0,
    library_size_median: float = 3000.0,
    library_size_sigma: float = 0.5,
    protein_background: float = 10.0,
    protein_foreground: float = 500.0,
    n_batches: int = 1,
    batch_effect: float = 0.3,
    crossed_types: bool = False,
    progress_bar: bool = True,
) -> md.MuData:
    """Simulate paired RNA and protein (ADT) counts with a known split into shared and specific information.

    Each cell carries three kinds of latent programs: shared programs (drive RNA and protein), RNA-only
    programs and protein-only programs, each with independent Gaussian cell-to-cell noise of standard
    deviation ``program_noise``. Level-1 types (lineages) differ only through the shared programs. A
    level-2 type differs from its siblings (same lineage) only through the specific programs: with its
    RNA specificity ``s`` in [0, 1], its offset on the RNA-only programs is ``type_effect * sqrt(s) * u``
    and on the protein-only programs ``type_effect * sqrt(1 - s) * v`` (``u``, ``v`` standard Gaussian
    vectors), so that the total strength of its identity does not depend on ``s``. ``s = 1``: the type
    is told apart from its siblings by RNA alone; ``s = 0``: by protein alone. Within each lineage the
    values of ``s`` are stratified over [0, 1].

    Each type draws its own offsets, so the specific programs of a cell reveal its type and with it its lineage,
    which the shared programs carry: the specific programs are not independent of the shared ones, as in real data,
    where subtypes of one lineage differ in programs that only that lineage uses. ``crossed_types=True`` removes that
    dependence: every lineage then has the same ``n_types / n_lineages`` specific states (the same offsets and values
    of ``s``), and a cell's lineage and state are drawn independently, so the specific programs are distributed alike
    in every lineage and independent of the shared programs, as the method's model of the data assumes. Type
    ``<lineage>_<k>`` is state ``k`` of that lineage; types of one state differ only by their lineage, so features
    independent of the shared programs cannot tell them apart.

    RNA: negative binomial counts with mean ``library size * softmax_g(base_g + programs @ loadings)``,
    sparse gene loadings, per-gene dispersion and log-normal library sizes. Protein: negative binomial
    counts (per-protein dispersion, ``theta`` about 10) whose mean is a foreground plus a per-cell ambient
    background spread over the proteins (median ``protein_background`` per protein), as in real ADT data.
    The foreground of protein ``p`` in a cell is ``capture * exp(log_off_p + (log_on_p - log_off_p) *
    sigmoid(2 * (eta_p / sd_p - t_p)))``: ``eta_p`` is the linear predictor of the shared and protein-only
    programs (sparse signed loadings), ``sd_p`` its standard deviation over cells under the model,
    ``t_p`` a per-protein threshold (so some markers are on in most cells, others in few) and
    ``capture`` a per-cell capture efficiency. The logistic keeps every foreground between an "off" and
    an "on" level of realistic magnitude: "on" levels are log-normal around ``protein_foreground``
    (within a factor ``e**2``), "off" levels about 150-fold lower (a few counts of unspecific binding).
    An exponential of the linear predictor instead would give counts beyond what a sequencer counts
    (up to 1e10); with the defaults a cell has a few thousand ADT counts in total, a positive marker
    hundreds to a few thousand, a negative one tens (mostly background), and no count passes about 2e4,
    as in 10x PBMC CITE-seq runs. The transformation is monotone and the same for every cell, so it
    changes no part of the ground truth above. Every cell has at least one count in each modality.

    Batches: cells are split into ``n_batches`` batches of equal size (to one cell) at random, independently
    of their types, so every batch has the same type proportions in expectation. A batch changes the
    expected counts before sampling, never the latent programs: RNA through a per-gene factor on the
    expected composition (which is renormalised, so it moves counts between genes) and a factor on the
    library size; protein through a per-protein factor on the foreground (staining efficiency) and a
    factor on the ambient background. Each factor is ``exp(x)`` with ``x ~ N(0, batch_effect**2)``,
    centred over batches on the log scale: two batches' log factors differ by ``batch_effect * sqrt(2)``
    in standard deviation, a single batch has none, and ``batch_effect = 0`` makes batches labels only.
    The batches draw their random numbers from their own stream, so they never change the cell types,
    programs or model parameters, and ``n_batches = 1`` or ``batch_effect = 0`` gives the same counts as
    a simulation without batches.

    Parameters
    ----------
    n_cells
        Number of cells.
    n_genes
        Number of genes (RNA features).
    n_proteins
        Number of proteins (ADT features).
    n_lineages
        Number of level-1 types; named ``T, B, Mono, NK, Progenitor`` up to five, else ``L1, L2, ...``.
    n_types
        Number of level-2 types, at least ``n_lineages``; named ``<lineage>_<k>``.
    seed
        Seed of the random generator; the same seed gives the same data.
    n_shared_programs, n_rna_programs, n_protein_programs
        Numbers of shared, RNA-only and protein-only latent programs.
    lineage_effect
        Standard deviation of the lineage means on the shared programs.
    type_effect
        Standard deviation (per program) of a level-2 type's offset on the specific programs.
    program_noise
        Standard deviation of the cell-to-cell noise on every program.
    library_size_median, library_size_sigma
        Median and log-scale standard deviation of the expected RNA library size (UMIs per cell).
    protein_background
        Median expected ambient (background) counts per protein and cell.
    protein_foreground
        Median over proteins of the expected foreground counts of a cell fully positive for the protein
        (its "on" level, before capture efficiency).
    n_batches
        Number of batches, ``batch0, batch1, ...``.
    batch_effect
        Standard deviation of the batches' log factors (before centring over batches); 0: no batch effect.
    crossed_types
        Give every lineage the same specific states, so that the specific programs are independent of the shared
        ones (see above); needs ``n_types`` to be a multiple of ``n_lineages``.
    progress_bar
        Show a progress bar over chunks of cells.

    Returns
    -------
    MuData with modalities ``"rna"`` (``.X``: sparse CSR counts, float32) and ``"prot"`` (``.X``: dense
    counts, float32). ``obs["celltype.l1"]``, ``obs["celltype.l2"]``, ``obs["batch"]`` (categorical) and
    ``obs["rna_specificity"]`` (the cell's type ``s``) are set in the MuData and in both modalities.
    ``obsm["sim_shared"]``, ``obsm["sim_rna_specific"]``, ``obsm["sim_protein_specific"]`` hold the
    latent programs per cell. ``uns["simulation"]`` holds ``rna_specificity`` and ``lineage`` (dicts
    keyed by level-2 type), the parameters, and ``batch_factors``, the true batch factors, one row per
    batch in the order of ``obs["batch"].cat.categories``: ``"rna_gene"`` (``n_batches x n_genes``, on
    the expected composition before renormalising), ``"rna_library"`` (``n_batches``, on the library
    size), ``"protein"`` (``n_batches x n_proteins``, on the foreground) and ``"protein_ambient"``
    (``n_batches``, on the ambient background).

    """
    for name, value in {"n_cells": n_cells, "n_genes": n_genes, "n_proteins": n_proteins}.items():
        if value < 1:
            raise ValueError(f"`{name}` must be positive, got {value}.")
    if not protein_foreground > 0:
        raise ValueError(f"`protein_foreground` must be positive, got {protein_foreground}.")
    if not 1 <= n_lineages <= n_types:
        raise ValueError(f"Need 1 <= n_lineages <= n_types, got n_lineages={n_lineages}, n_types={n_types}.")
    n_batches = check_int(n_batches, "n_batches", 1, n_cells, hint="Every batch needs a cell.")
    batch_effect = check_real(batch_effect, "batch_effect", minimum=0)
    if crossed_types and n_types % n_lineages:
        raise ValueError(
            f"`crossed_types=True` gives every lineage the same specific states, so `n_types` must be a multiple of "
            f"`n_lineages`; got n_types={n_types}, n_lineages={n_lineages}. Pass "
            f"n_types={n_lineages * max(1, round(n_types / n_lineages))}, for instance."
        )
    rng = np.random.default_rng(seed)
    lineages, types, lineage_of_type = _layout(n_lineages, n_types)
    # specific states: one per type, or (crossed) the same n_states in every lineage, types lineage-major
    n_states = n_types // n_lineages if crossed_types else n_types
    state_of_type = np.arange(n_types) % n_states
    state_s = _specificities(np.zeros(n_states, int) if crossed_types else lineage_of_type, rng)
    specificity = state_s[state_of_type]

    # programs per cell: type means plus independent noise
    lineage_means = lineage_effect * rng.standard_normal((n_lineages, n_shared_programs))
    rna_offsets = type_effect * np.sqrt(state_s)[:, None] * _directions(n_states, n_rna_programs, rng)
    prot_offsets = type_effect * np.sqrt(1 - state_s)[:, None] * _directions(n_states, n_protein_programs, rng)
    rna_offsets, prot_offsets = rna_offsets[state_of_type], prot_offsets[state_of_type]
    if crossed_types:  # lineage and state independent: the proportions factorise
        weights = np.outer(rng.dirichlet(np.full(n_lineages, 8.0)), rng.dirichlet(np.full(n_states, 8.0))).ravel()
    else:
        weights = rng.dirichlet(np.full(n_types, 8.0))
    labels = _cell_labels(n_cells, weights, rng)
    k_s, k_r, k_p = n_shared_programs, n_rna_programs, n_protein_programs
    noise = program_noise * rng.standard_normal((n_cells, k_s + k_r + k_p))
    shared = lineage_means[lineage_of_type[labels]] + noise[:, :k_s]
    rna_specific = rna_offsets[labels] + noise[:, k_s : k_s + k_r]
    prot_specific = prot_offsets[labels] + noise[:, k_s + k_r :]

    # RNA model
    gene_base = rng.normal(0.0, 2.0, n_genes)
    gene_loadings = _loadings(k_s + k_r, n_genes, density=0.05, scale=0.5, rng=rng)
    gene_theta = np.clip(np.exp(rng.normal(np.log(4.0), 0.7, n_genes)), 0.3, 100.0)
    library = library_size_median * np.exp(library_size_sigma * rng.standard_normal(n_cells))
    # protein model, from its own stream so that the RNA counts do not depend on the protein settings
    prot_rng = rng.spawn(1)[0]
    # batches from a third stream (spawned after the protein one), so that they leave the other two untouched
    batch, batch_factors = _batches(n_cells, n_batches, n_genes, n_proteins, batch_effect, rng.spawn(1)[0])
    library = library * batch_factors["rna_library"][batch]
    log_gene_factor = np.log(batch_factors["rna_gene"])
    prot_loadings = _loadings(k_s + k_p, n_proteins, density=2.5 / n_proteins, scale=1.5, rng=prot_rng)
    # standard deviation of each protein's linear predictor over cells, from the model (not from the cells drawn)
    program_sd = np.sqrt(
        np.r_[
            np.full(k_s, lineage_effect**2 + program_noise**2),
            np.full(k_p, type_effect**2 * np.mean(1 - specificity) + program_noise**2),
        ]
    )
    eta_sd = np.sqrt(((program_sd[:, None] * prot_loadings) ** 2).sum(axis=0))
    eta_sd[eta_sd == 0] = 1.0  # a protein no program loads on stays at one level
    prot_threshold = prot_rng.normal(0.0, 0.75, n_proteins)
    log_on = np.log(protein_foreground) + np.clip(prot_rng.normal(0.0, 0.8, n_proteins), -2.0, 2.0)
    log_off = log_on - np.log(_ON_OFF_RATIO) + np.clip(prot_rng.normal(0.0, 0.5, n_proteins), -1.0, 1.0)
    prot_theta = np.exp(prot_rng.normal(np.log(10.0), 0.4, n_proteins))
    capture = np.exp(0.25 * prot_rng.standard_normal(n_cells))
    ambient = protein_background * np.exp(0.4 * prot_rng.standard_normal(n_cells))
    ambient = ambient * batch_factors["protein_ambient"][batch]
    ambient_share = n_proteins * prot_rng.dirichlet(np.full(n_proteins, 2.0))

    rna_h = np.hstack([shared, rna_specific])
    prot_h = np.hstack([shared, prot_specific])
    rna_chunks, prot_chunks = [], []
    starts = range(0, n_cells, _CHUNK)
    for start in tqdm(starts, desc="simulating cells", disable=not progress_bar or len(starts) < 2):
        sl = slice(start, start + _CHUNK)
        eta = gene_base + rna_h[sl] @ gene_loadings + log_gene_factor[batch[sl]]
        eta -= eta.max(axis=1, keepdims=True)
        prop = np.exp(eta)
        prop /= prop.sum(axis=1, keepdims=True)
        counts = _no_empty_cells(_negative_binomial(library[sl, None] * prop, gene_theta, rng), rng)
        rna_chunks.append(sparse.csr_matrix(counts.astype(np.float32)))
        on = _sigmoid(_PROTEIN_GAIN * (prot_h[sl] @ prot_loadings / eta_sd - prot_threshold))
        foreground = capture[sl, None] * np.exp(log_off + (log_on - log_off) * on) * batch_factors["protein"][batch[sl]]
        background = ambient[sl, None] * ambient_share
        prot_counts = _negative_binomial(foreground + background, prot_theta, prot_rng)
        prot_chunks.append(_no_empty_cells(prot_counts, prot_rng))

    width = max(5, len(str(n_cells)))
    obs = pd.DataFrame(
        {
            "celltype.l1": pd.Categorical([lineages[i] for i in lineage_of_type[labels]], categories=lineages),
            "celltype.l2": pd.Categorical([types[i] for i in labels], categories=types),
            "rna_specificity": specificity[labels].astype(np.float32),
            "batch": pd.Categorical.from_codes(batch, categories=[f"batch{b}" for b in range(n_batches)]),
        },
        index=[f"cell_{i + 1:0{width}d}" for i in range(n_cells)],
    )
    rna = ad.AnnData(
        sparse.vstack(rna_chunks, format="csr"),
        obs=obs.copy(),
        var=pd.DataFrame(index=[f"gene_{j + 1:0{max(4, len(str(n_genes)))}d}" for j in range(n_genes)]),
    )
    prot = ad.AnnData(
        np.vstack(prot_chunks).astype(np.float32),
        obs=obs.copy(),
        var=pd.DataFrame(index=[f"prot_{j + 1:0{max(2, len(str(n_proteins)))}d}" for j in range(n_proteins)]),
    )
    with md.set_options(pull_on_update=False):
        mdata = md.MuData({"rna": rna, "prot": prot})
    for key in obs.columns:
        mdata.obs[key] = obs[key].values
    mdata.obsm["sim_shared"] = shared.astype(np.float32)
    mdata.obsm["sim_rna_specific"] = rna_specific.astype(np.float32)
    mdata.obsm["sim_protein_specific"] = prot_specific.astype(np.float32)
    mdata.uns["simulation"] = {
        "rna_specificity": {t: float(v) for t, v in zip(types, specificity, strict=True)},
        "lineage": {t: lineages[i] for t, i in zip(types, lineage_of_type, strict=True)},
        "seed": int(seed),
        "n_shared_programs": int(k_s),
        "n_rna_programs": int(k_r),
        "n_protein_programs": int(k_p),
        "lineage_effect": float(lineage_effect),
        "type_effect": float(type_effect),
        "program_noise": float(program_noise),
        "library_size_median": float(library_size_median),
        "library_size_sigma": float(library_size_sigma),
        "protein_background": float(protein_background),
        "protein_foreground": float(protein_foreground),
        "n_batches": n_batches,
        "batch_effect": batch_effect,
        "crossed_types": bool(crossed_types),
        "batch_factors": batch_factors,
    }
    logger.info(
        "Simulated %d cells, %d genes, %d proteins, %d level-2 types in %d lineages.",
        n_cells,
        n_genes,
        n_proteins,
        n_types,
        n_lineages,
    )
    return mdata
