"""Rate-based baselines from the literature; every model is an :class:`~spikeplastic.meta.protocol.EpisodeModel`.

- :class:`PlasticRNN` — Miconi et al. 2018, ``(W + alpha * H) y`` with Hebbian or Oja traces.
- :class:`Backpropamine` — Miconi et al. 2019, neuromodulated (simple / retroactive) plasticity.
- :class:`RNN`, :class:`LSTM` — non-plastic recurrent baselines.
- :class:`OneShotPlastic` — Miconi et al. 2018's conv net with a plastic Oja readout (Omniglot).

Plastic traces are per episode and per batch element (``[B, n_post, n_pre]``) and live in each
model's state NamedTuple, never in parameters.
"""
from __future__ import annotations

from torch import nn

from .backpropamine import Backpropamine, BackpropamineState
from .oneshot import OneShotPlastic, OneShotState
from .rate_plastic import PlasticRNN, PlasticRNNState
from .rnn import LSTM, RNN, LSTMState, RNNState

__all__ = [
    "Backpropamine",
    "BackpropamineState",
    "LSTM",
    "LSTMState",
    "OneShotPlastic",
    "OneShotState",
    "PlasticRNN",
    "PlasticRNNState",
    "RNN",
    "RNNState",
    "count_parameters",
]


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars: elements of the parameters with ``requires_grad``.

    Buffers (e.g. a fixed ``eta`` with ``learn_eta=False``) and frozen parameters are not counted;
    a parameter shared between submodules is counted once.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
