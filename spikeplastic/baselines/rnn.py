"""Non-plastic recurrent baselines: an Elman tanh RNN and an LSTM, each with a linear readout.

Options reproduce the originals' controls (sources in ``docs/REPRODUCTION.md``): the RNN's
``init="uniform"`` (``W = 0.01 * U[0, 1)``, the non-plastic nets of the maze and cue-reward code),
the LSTM's ``input_scale``, ``clamp`` and ``readout="first"`` (the pattern-task LSTM of
uber-research/differentiable-plasticity ``simple/lstm.py``).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from spikeplastic.protocol import EpisodeModel

from ._common import check_choice, check_init_std, check_int, check_step_input

__all__ = ["RNN", "RNNState", "LSTM", "LSTMState"]

RNN_INITS = ("default", "uniform")
LSTM_READOUTS = ("linear", "first")
#: the original LSTM's clamping values (``simple/lstm.py`` lines 157-165): cell-gate input weight of a
#: unit's own input bit, and the biases of its input, forget, cell and output gates
CLAMP_WEIGHT, CLAMP_GATE_BIASES = 10.0, (10.0, -1000.0, 0.0, 10.0)


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
    ``W_in`` and ``R`` use ``nn.Linear``'s default initialisation; ``W`` too with
    ``init="default"``, or ``w_init_std * U[0, 1)`` with ``init="uniform"`` (the originals'
    non-plastic controls: the plastic net's ``W`` init with plasticity removed, e.g.
    uber-research/backpropamine ``maze/batch.py`` line 74).

    Shape:
        ``step``: ``x`` ``[B, n_in]`` -> ``out`` ``[B, n_out]``.

    Example::

        >>> out, state = RNN(8, 3, n_hidden=16)(torch.randn(5, 2, 8))
        >>> out.shape, state.h.shape
        (torch.Size([5, 2, 3]), torch.Size([2, 16]))
    """

    def __init__(self, n_in: int, n_out: int, *, n_hidden: int = 200, init: str = "default",
                 w_init_std: float = 0.01) -> None:
        super().__init__()
        self.n_in = check_int("n_in", n_in)
        self.n_out = check_int("n_out", n_out)
        self.n_hidden = check_int("n_hidden", n_hidden)
        self.init = check_choice("init", init, RNN_INITS)
        std = check_init_std(w_init_std, "w_init_std")
        self.w_in = nn.Linear(self.n_in, self.n_hidden)
        self.w = nn.Linear(self.n_hidden, self.n_hidden, bias=False)
        if self.init == "uniform":
            with torch.no_grad():
                self.w.weight.copy_(std * torch.rand(self.n_hidden, self.n_hidden))
        self.readout = nn.Linear(self.n_hidden, self.n_out)

    def extra_repr(self) -> str:
        return f"n_in={self.n_in}, n_out={self.n_out}, n_hidden={self.n_hidden}, init={self.init!r}"

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

    ``(h_t, c_t) = LSTMCell(s x_t, (h_{t-1}, c_{t-1}))``, ``out_t = R h_t + b_R`` (``readout="linear"``)
    or ``h_t[:n_out]`` (``readout="first"``), with ``s = input_scale``.

    ``clamp=True`` is the original pattern-task LSTM's input clamping (uber-research/
    differentiable-plasticity ``simple/lstm.py``, lines 148-165, applied before every episode
    there, held fixed here): for each of the first ``n_in`` units ``i``, its cell-gate input
    weights are ``10`` from input ``i`` and 0 from the others, and its input-ih biases are
    ``(10, -1000, 0, 10)`` for the input, forget, cell and output gates; every hidden-hidden bias
    is 0. A unit whose input bit is non-zero is thus driven to ``~sign`` of it and forgets at once.
    The fixed entries get no gradient (``bias_hh`` is a frozen buffer-like parameter).

    Args:
        n_in, n_out: sizes. n_hidden: LSTM units (``>= n_in`` with ``clamp``, ``>= n_out`` with
            ``readout="first"``). input_scale: ``s`` (the original multiplies the +-1 patterns by 100).
        clamp: see above. readout: ``"linear"`` or ``"first"``.

    Shape:
        ``step``: ``x`` ``[B, n_in]`` -> ``out`` ``[B, n_out]``.

    Example::

        >>> out, state = LSTM(8, 3, n_hidden=16)(torch.randn(5, 2, 8))
        >>> out.shape, state.c.shape
        (torch.Size([5, 2, 3]), torch.Size([2, 16]))
    """

    def __init__(self, n_in: int, n_out: int, *, n_hidden: int = 200, input_scale: float = 1.0,
                 clamp: bool = False, readout: str = "linear") -> None:
        super().__init__()
        self.n_in = check_int("n_in", n_in)
        self.n_out = check_int("n_out", n_out)
        self.n_hidden = check_int("n_hidden", n_hidden)
        self.input_scale = check_init_std(input_scale, "input_scale")
        if self.input_scale == 0.0:
            raise ValueError("input_scale must be a finite float > 0, got 0.0")
        if not isinstance(clamp, bool):
            raise TypeError(f"clamp must be a bool, got {type(clamp).__name__} {clamp!r}")
        self.clamp = clamp
        self.readout_kind = check_choice("readout", readout, LSTM_READOUTS)
        if clamp and self.n_hidden < self.n_in:
            raise ValueError(f"clamp=True clamps the first n_in units: needs n_hidden >= n_in ({self.n_in}), "
                             f"got n_hidden={self.n_hidden}")
        if readout == "first" and self.n_hidden < self.n_out:
            raise ValueError(f"readout='first' reads the first n_out units: needs n_hidden >= n_out ({self.n_out}), "
                             f"got n_hidden={self.n_hidden}")
        self.cell = nn.LSTMCell(self.n_in, self.n_hidden)
        self.readout: nn.Linear | None = nn.Linear(self.n_hidden, self.n_out) if readout == "linear" else None
        if clamp:
            self._init_clamp()

    def _init_clamp(self) -> None:
        H, n = self.n_hidden, self.n_in
        keep_w = torch.ones(4 * H, n)
        fixed_w = torch.zeros(4 * H, n)
        keep_w[2 * H:2 * H + n] = 0.0                       # cell-gate rows of the clamped units
        fixed_w[2 * H + torch.arange(n), torch.arange(n)] = CLAMP_WEIGHT
        keep_b = torch.ones(4 * H)
        fixed_b = torch.zeros(4 * H)
        for gate, value in enumerate(CLAMP_GATE_BIASES):
            keep_b[gate * H:gate * H + n] = 0.0
            fixed_b[gate * H:gate * H + n] = value
        for name, t in (("keep_w", keep_w), ("fixed_w", fixed_w), ("keep_b", keep_b), ("fixed_b", fixed_b)):
            self.register_buffer(f"_clamp_{name}", t, persistent=False)
        with torch.no_grad():
            self.cell.bias_hh.zero_()
        self.cell.bias_hh.requires_grad_(False)

    def extra_repr(self) -> str:
        return (f"n_in={self.n_in}, n_out={self.n_out}, n_hidden={self.n_hidden}, input_scale={self.input_scale}, "
                f"clamp={self.clamp}, readout={self.readout_kind!r}")

    def initial_state(self, batch: int) -> LSTMState:
        """Zero hidden and cell states on the cell's device and dtype."""
        check_int("batch", batch)
        like = self.cell.weight_hh
        return LSTMState(h=like.new_zeros(batch, self.n_hidden), c=like.new_zeros(batch, self.n_hidden))

    def _clamped_cell(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        w_ih = self.cell.weight_ih * self._clamp_keep_w + self._clamp_fixed_w
        b_ih = self.cell.bias_ih * self._clamp_keep_b + self._clamp_fixed_b
        gates = nn.functional.linear(x, w_ih, b_ih) + nn.functional.linear(h, self.cell.weight_hh)
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def step(self, x: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        check_step_input(x, self.n_in, state)
        if self.input_scale != 1.0:
            x = x * self.input_scale
        if self.clamp:
            h, c = self._clamped_cell(x, state.h, state.c)
        else:
            h, c = self.cell(x, (state.h, state.c))
        out = h[:, : self.n_out] if self.readout is None else self.readout(h)
        return out, LSTMState(h=h, c=c)
