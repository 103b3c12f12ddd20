"""Non-plastic recurrent baselines: an Elman tanh RNN and an LSTM, each with a linear readout."""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from spikeplastic.protocol import EpisodeModel

from ._common import check_int, check_step_input

__all__ = ["RNN", "RNNState", "LSTM", "LSTMState"]


class RNNState(NamedTuple):
    """State of :class:`RNN`: ``h`` ``[B, n_hidden]``."""

    h: Tensor


class LSTMState(NamedTuple):
    """State of :class:`LSTM`: hidden ``h`` and cell ``c``, each ``[B, n_hidden]``."""

    h: Tensor
    c: Tensor


class RNN(EpisodeModel):
    r"""Vanilla (Elman) tanh RNN with a linear readout; no plasticity.

    ``h_t = tanh(W_in x_t + b_in + W h_{t-1})``, ``out_t = R h_t + b_R``.
    ``W_in``, ``W`` and ``R`` use ``nn.Linear``'s default initialisation.

    Shape:
        ``step``: ``x`` ``[B, n_in]`` -> ``out`` ``[B, n_out]``.

    Example::

        >>> out, state = RNN(8, 3, n_hidden=16)(torch.randn(5, 2, 8))
        >>> out.shape, state.h.shape
        (torch.Size([5, 2, 3]), torch.Size([2, 16]))
    """

    def __init__(self, n_in: int, n_out: int, *, n_hidden: int = 200) -> None:
        super().__init__()
        self.n_in = check_int("n_in", n_in)
        self.n_out = check_int("n_out", n_out)
        self.n_hidden = check_int("n_hidden", n_hidden)
        self.w_in = nn.Linear(self.n_in, self.n_hidden)
        self.w = nn.Linear(self.n_hidden, self.n_hidden, bias=False)
        self.readout = nn.Linear(self.n_hidden, self.n_out)

    def extra_repr(self) -> str:
        return f"n_in={self.n_in}, n_out={self.n_out}, n_hidden={self.n_hidden}"

    def initial_state(self, batch: int) -> RNNState:
        """Zero hidden state on the readout's device and dtype."""
        check_int("batch", batch)
        return RNNState(h=self.readout.weight.new_zeros(batch, self.n_hidden))

    def step(self, x: Tensor, state: RNNState) -> tuple[Tensor, RNNState]:
        check_step_input(x, self.n_in, state)
        h = torch.tanh(self.w_in(x) + self.w(state.h))
        return self.readout(h), RNNState(h=h)


class LSTM(EpisodeModel):
    r"""LSTM (``torch.nn.LSTMCell``) with a linear readout; no plasticity.

    ``(h_t, c_t) = LSTMCell(x_t, (h_{t-1}, c_{t-1}))``, ``out_t = R h_t + b_R``.

    Shape:
        ``step``: ``x`` ``[B, n_in]`` -> ``out`` ``[B, n_out]``.

    Example::

        >>> out, state = LSTM(8, 3, n_hidden=16)(torch.randn(5, 2, 8))
        >>> out.shape, state.c.shape
        (torch.Size([5, 2, 3]), torch.Size([2, 16]))
    """

    def __init__(self, n_in: int, n_out: int, *, n_hidden: int = 200) -> None:
        super().__init__()
        self.n_in = check_int("n_in", n_in)
        self.n_out = check_int("n_out", n_out)
        self.n_hidden = check_int("n_hidden", n_hidden)
        self.cell = nn.LSTMCell(self.n_in, self.n_hidden)
        self.readout = nn.Linear(self.n_hidden, self.n_out)

    def extra_repr(self) -> str:
        return f"n_in={self.n_in}, n_out={self.n_out}, n_hidden={self.n_hidden}"

    def initial_state(self, batch: int) -> LSTMState:
        """Zero hidden and cell states on the readout's device and dtype."""
        check_int("batch", batch)
        like = self.readout.weight
        return LSTMState(h=like.new_zeros(batch, self.n_hidden), c=like.new_zeros(batch, self.n_hidden))

    def step(self, x: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        check_step_input(x, self.n_in, state)
        h, c = self.cell(x, (state.h, state.c))
        return self.readout(h), LSTMState(h=h, c=c)
