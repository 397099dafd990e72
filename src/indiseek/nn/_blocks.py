"""Multilayer perceptrons, the building block of every encoder, decoder and critic."""

from __future__ import annotations

from torch import nn


class MLP(nn.Sequential):
    """A ReLU multilayer perceptron.

    ``n_layers`` counts the linear layers, as the paper does ("5-layer ReLU MLP of width 50"):
    ``n_layers - 1`` hidden layers of width ``n_hidden``, each followed by a ReLU, then a linear output layer.

    Parameters
    ----------
    n_input
        Input dimension.
    n_output
        Output dimension.
    n_hidden
        Width of the hidden layers.
    n_layers
        Number of linear layers (at least 1).
    """

    def __init__(self, n_input: int, n_output: int, n_hidden: int = 50, n_layers: int = 5):
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers}.")
        dims = [n_input] + [n_hidden] * (n_layers - 1) + [n_output]
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            layers.append(nn.Linear(d_in, d_out))
            if i < n_layers - 1:
                layers.append(nn.ReLU())
        super().__init__(*layers)
        self.n_input = n_input
        self.n_output = n_output
