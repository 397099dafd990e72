"""Input preparation: fitted on training cells, replayed on every minibatch by the module."""

from ._inputs import clr, fit_protein_inputs, fit_rna_inputs, standard_rna_pcs

__all__ = ["clr", "fit_protein_inputs", "fit_rna_inputs", "standard_rna_pcs"]
