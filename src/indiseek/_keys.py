"""Every ``.obs``, ``.obsm`` and ``.uns`` key the package writes, in one place (as scanpy keeps its names)."""

from __future__ import annotations

MODALITIES = ("rna", "protein")
KINDS = ("shared", "specific")

#: Default ``.obsm`` prefix of a method's features: ``X_<method>``.
EMBEDDING_PREFIX = "X_{method}"
#: ``.obs`` column of WNN modality weights (:func:`indiseek.tl.wnn_weights`): ``<key_added>_<modality>_weight``.
WNN_KEY = "wnn"
#: ``.obs`` columns and ``.uns`` entry of theta scores (:func:`indiseek.tl.theta_scores`).
THETA_KEY = "theta"
#: ``.uns`` entry of the label-free diagnostics (:func:`indiseek.tl.diagnostics`).
DIAGNOSTICS_KEY = "diagnostics"
#: ``.obsm`` key of a model's prepared inputs ``X_i`` (:meth:`indiseek.IndiSeek.get_prepared_inputs`).
INPUTS_KEY = "X_inputs_{modality}"
#: ``.uns`` entry the simulator writes its ground truth to.
SIMULATION_KEY = "simulation"


def embedding_key(method: str, kind: str | None = None, modality: str | None = None) -> str:
    """``.obsm`` key of a method's features: ``X_<method>`` (all four) or ``X_<method>_<kind>_<modality>``."""
    prefix = EMBEDDING_PREFIX.format(method=method)
    return prefix if kind is None else f"{prefix}_{kind}_{modality}"


def fits_key(method: str, modality: str) -> str:
    """``.obsm`` key of the specific features of several fits (:meth:`indiseek.IndiSeek.write_specific_fits`)."""
    return f"{embedding_key(method, 'specific', modality)}_fits"


def umap_key(method: str, row: str) -> str:
    """``.obsm`` key of the UMAP coordinates :func:`indiseek.pl.embeddings` draws for one row of panels."""
    return f"X_umap_{method}_{row}"


def wnn_keys(key_added: str = WNN_KEY) -> tuple[str, str]:
    """The ``.obs`` keys written by :func:`indiseek.tl.wnn_weights`: (RNA weight, protein weight)."""
    return f"{key_added}_rna_weight", f"{key_added}_protein_weight"


def theta_keys(key_added: str = THETA_KEY) -> tuple[str, str, str]:
    """The ``.obs`` keys written by :func:`indiseek.tl.theta_scores`: (beta RNA, beta protein, theta)."""
    if key_added == THETA_KEY:
        return "beta_rna", "beta_protein", THETA_KEY
    return f"{key_added}_beta_rna", f"{key_added}_beta_protein", key_added


def diagnostics_key(method: str) -> str:
    """The ``.uns`` key ``indiseek run`` writes a method's diagnostics to: ``diagnostics_<method>``."""
    return f"{DIAGNOSTICS_KEY}_{method}"


def theta_key(method: str) -> str:
    """The theta key ``indiseek run`` uses for a method: ``theta`` for IndiSeek, ``theta_<method>`` otherwise."""
    return THETA_KEY if method == "indiseek" else f"{THETA_KEY}_{method}"
