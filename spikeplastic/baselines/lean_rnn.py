"""The memory-lean path of :class:`~spikeplastic.baselines.PlasticRNN` (``rule="hebb"``): the model's
episode through :func:`spikeplastic.lean.hebb_rnn`, same parameters, outputs and gradients."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from spikeplastic.lean import BACKENDS, hebb_rnn
from spikeplastic.lean.plan import _check_reconstruct

from ._common import check_step_input
from .rate_plastic import PlasticRNN, PlasticRNNState

__all__ = ["check_plastic_rnn", "plastic_rnn_forward", "LeanPlasticRNN"]


def check_plastic_rnn(model: Any) -> None:
    """Raise ``ValueError`` unless ``model`` is a ``PlasticRNN`` the lean path runs (``rule="hebb"``)."""
    if not isinstance(model, PlasticRNN):
        raise TypeError(f"model must be a spikeplastic.baselines.PlasticRNN, got {type(model).__name__}")
    if model.rule != "hebb":
        raise ValueError(f"lean path: PlasticRNN rule={model.rule!r} is not supported (only 'hebb')")


def plastic_rnn_forward(
    model: Any,
    inputs: Tensor,
    state: Any = None,
    *,
    backend: str = "auto",
    checkpoint_every: int | None = None,
    reconstruct: str = "auto",
) -> tuple[Tensor, Any]:
    """``model(inputs, state)`` for a core ``PlasticRNN(rule="hebb")``, the lean way.

    ``inputs`` ``[T, B, n_in]`` -> outputs ``[T, B, n_out]`` and the final ``PlasticRNNState``, with
    the model's own parameters (input map, ``W``, ``alpha``, ``eta``, readout) and its gradients.
    """
    check_plastic_rnn(model)
    if not isinstance(inputs, Tensor) or inputs.dim() != 3:
        raise ValueError(f"inputs must be a tensor [T, B, n_in], got {getattr(inputs, 'shape', type(inputs).__name__)}")
    check_step_input(inputs[0], model.n_in)
    T, B = inputs.shape[0], inputs.shape[1]
    if state is None:
        state = model.initial_state(B)
    exact = backend == "reference"

    def per_step(f: Callable[[Tensor], Tensor], z: Tensor) -> Tensor:
        # the reference backend maps step by step, like PlasticRNN.step (bit-identical GEMMs)
        return torch.stack([f(z[t]) for t in range(z.shape[0])]) if exact else f(z)

    inp = inputs if model.in_proj is None else per_step(model.in_proj, inputs)
    Y, H = hebb_rnn(inp, model.w, model.alpha, model.eta(), state.y, state.hebb, bias_unit=model.bias_unit,
                    clamp=model.clamp, backend=backend, checkpoint_every=checkpoint_every, reconstruct=reconstruct)
    out = Y[:, :, : model.n_out] if model.readout is None else per_step(model.readout, Y)
    return out, PlasticRNNState(y=Y[-1], hebb=H)


class LeanPlasticRNN(nn.Module):
    """A core ``PlasticRNN(rule="hebb")`` run the lean way: ``LeanPlasticRNN(model)(inputs, state)``
    equals ``model(inputs, state)`` (same parameters: ``model`` is a submodule) with lean memory."""

    def __init__(self, model: Any, *, backend: str = "auto", checkpoint_every: int | None = None,
                 reconstruct: str = "auto") -> None:
        super().__init__()
        check_plastic_rnn(model)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
        _check_reconstruct(reconstruct)
        self.model = model
        self.backend = backend
        self.checkpoint_every = checkpoint_every
        self.reconstruct = reconstruct

    @property
    def n_in(self) -> int:
        return self.model.n_in

    @property
    def n_out(self) -> int:
        return self.model.n_out

    def initial_state(self, batch: int) -> Any:
        return self.model.initial_state(batch)

    def forward(self, inputs: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        return plastic_rnn_forward(self.model, inputs, state, backend=self.backend,
                                   checkpoint_every=self.checkpoint_every, reconstruct=self.reconstruct)
