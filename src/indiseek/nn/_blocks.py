"""Multilayer perceptrons, the building block of every encoder, decoder and critic."""

from __future__ import annotations

from torch import nn

#: Activations of the hidden layers, by name: the paper's ReLU, and a leaky ReLU (slope 0.01 below zero), whose units
#: cannot die: with ReLU a hidden layer can end up at zero on every cell, and everything after it is constant.
ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU}


def check_activation(activation: str) -> None:
    """Raise a ``ValueError`` naming the choices unless ``activation`` is ``"relu"`` or ``"leaky_relu"``."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}.")


class MLP(nn.Sequential):
    """A multilayer perceptron.

    ``n_layers`` counts the linear layers, as the paper does ("5-layer ReLU MLP of width 50"):
    ``n_layers - 1`` hidden layers of width ``n_hidden``, each followed by the activation, then a linear output layer.

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
    activation
        Activation of the hidden layers: ``"relu"`` or ``"leaky_relu"`` (slope 0.01 below zero).
    """

    def __init__(self, n_input: int, n_output: int, n_hidden: int = 50, n_layers: int = 5, activation: str = "relu"):
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers}.")
        check_activation(activation)
        dims = [n_input] + [n_hidden] * (n_layers - 1) + [n_output]
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            layers.append(nn.Linear(d_in, d_out))
            if i < n_layers - 1:
                layers.append(ACTIVATIONS[activation]())
        super().__init__(*layers)
        self.n_input = n_input
        self.n_output = n_output
