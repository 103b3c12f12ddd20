"""Neuromodulated plastic recurrent network of Miconi et al. 2019 ("Backpropamine").

Re-implemented from the paper's equations (see ``docs/TASKS.md``); no code was copied. The update
equations agree with the original code (uber-research/backpropamine, ``sr/modul.py``: ``PlasticRNN``,
``SimpleModulRNN``, ``RetroModulRNN`` with ``fm=1``, ``da=tanh``, ``rule=hebb``). ``W`` and ``alpha`` start as
``0.01 * U[0, 1)`` (all positive) as in the original (``init="uniform"``, the default). This
matters: with all-positive ``alpha`` the plastic term already acts as an associative memory at
initialisation (``alpha * Hebb`` pushes ``h`` towards stored post-patterns, in proportion to the
pre-pattern overlap), while with zero-mean ``alpha`` (``init="normal"``, ``0.01 * N(0, 1)``, this
class's default before 2026-11-23) its effect averages out. On the reduced cue task
``cue-small`` the uniform init learns (simple modulation: 3/3 seeds within 3000 outer steps);
the normal init had not learned after 6000 (retroactive, 1 seed; ``README.md``, Results). Known differences, all in parametrisation:

- the original's ``eta`` / ``etaet`` is an unconstrained parameter initialised at 0.1 on the
  cue-reward task (0.01 in its maze); here ``eta = sigmoid(raw)`` in (0, 1), initialised at
  ``eta_init`` (default 0.01; pass ``eta_init=0.1`` to match the cue-reward runs);
- the original's separate value head ``h2v`` is the last row of ``readout`` here (same function);
- the original's half-modulated variant (``fm=0``) is not implemented (the paper's runs use ``fm=1``).
"""
from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from spikeplastic.functional.plasticity import eligibility_step, outer
from spikeplastic.protocol import EpisodeModel

from ._common import (
    ALPHA_MODES,
    AlphaMode,
    UnitIntervalScalar,
    alpha_parameter,
    check_choice,
    check_init_std,
    check_int,
    check_step_input,
    plastic_matvec,
)

__all__ = ["Backpropamine", "BackpropamineState"]

MODES = ("simple", "retroactive", "none")
INITS = ("uniform", "normal")


class BackpropamineState(NamedTuple):
    """Per-episode state of :class:`Backpropamine`.

    Attributes:
        h: ``[B, n_hidden]`` hidden activations at the previous step.
        hebb: ``[B, n_hidden, n_hidden]`` clipped plastic trace (post x pre).
        elig: ``[B, n_hidden, n_hidden]`` eligibility trace ``E`` (``mode="retroactive"``);
            in the other modes it stays the zero tensor of :meth:`Backpropamine.initial_state`.
    """

    h: Tensor
    hebb: Tensor
    elig: Tensor


class Backpropamine(EpisodeModel):
    r"""Recurrent tanh network whose plastic weights are gated by a learned neuromodulator.

    Per step (``clip`` = 1 in the paper)::

        h_t   = tanh(W_in x_t + b_in + (W + alpha * Hebb_{t-1}) h_{t-1})
        M_t   = tanh(w_M . h_t + b_M)                        (one scalar per batch element)
        mode="simple":       Hebb_t = clip(Hebb_{t-1} + M_t * outer(h_t, h_{t-1}), -clip, clip)
        mode="retroactive":  Hebb_t = clip(Hebb_{t-1} + M_t * E_{t-1}, -clip, clip)
                             E_t    = (1 - eta) E_{t-1} + eta * outer(h_t, h_{t-1})
        mode="none":         Hebb_t = clip(Hebb_{t-1} + eta * outer(h_t, h_{t-1}), -clip, clip)
        out_t = R h_t + b_R                                  ([B, n_out])

    ``mode="none"`` is the paper's non-modulated plastic control: the same clipped Hebbian
    update with the modulator replaced by the learned constant ``eta``. ``eta = sigmoid(eta_raw)``
    in (0, 1) exists only in the ``"retroactive"`` and ``"none"`` modes; the modulator
    (``modulation``, a ``Linear(n_hidden, 1)``) only in ``"simple"`` and ``"retroactive"``.
    For A2C tasks use ``n_out = n_actions + 1`` (policy logits, then the value).

    Args:
        n_in, n_out: input and output sizes. n_hidden: recurrent units (200 in the paper).
        mode: ``"simple"``, ``"retroactive"`` or ``"none"``.
        alpha: ``"per_synapse"`` (the paper) or ``"shared"``.
        eta_init, learn_eta: initial value in (0, 1) and learnability of ``eta``.
        clip: bound of the plastic trace (> 0).
        init: ``"uniform"`` (the original): ``W``, ``alpha`` start as ``std * U[0, 1)``;
            ``"normal"``: as ``std * N(0, 1)``.
        w_init_std, alpha_init_std: the ``std`` scales of ``init`` for ``W`` and ``alpha``;
            ``W_in``, the modulator and the readout use ``nn.Linear``'s default init.

    Shape:
        ``step``: ``x`` ``[B, n_in]`` -> ``out`` ``[B, n_out]``.

    Example::

        >>> net = Backpropamine(26, 3, n_hidden=32, mode="retroactive")
        >>> out, state = net(torch.randn(5, 4, 26))
        >>> out.shape, state.elig.shape
        (torch.Size([5, 4, 3]), torch.Size([4, 32, 32]))
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        *,
        n_hidden: int = 200,
        mode: Literal["simple", "retroactive", "none"] = "simple",
        alpha: AlphaMode = "per_synapse",
        eta_init: float = 0.01,
        learn_eta: bool = True,
        clip: float = 1.0,
        w_init_std: float = 0.01,
        alpha_init_std: float = 0.01,
        init: Literal["uniform", "normal"] = "uniform",
    ) -> None:
        super().__init__()
        self.n_in = check_int("n_in", n_in)
        self.n_out = check_int("n_out", n_out)
        self.n_hidden = check_int("n_hidden", n_hidden)
        self.mode = check_choice("mode", mode, MODES)
        self.alpha_mode = check_choice("alpha", alpha, ALPHA_MODES)
        if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not 0.0 < clip < float("inf"):
            raise ValueError(f"clip must be a finite float > 0, got {clip!r}")
        self.clip = float(clip)

        self.init = check_choice("init", init, INITS)
        n = self.n_hidden
        self.w_in = nn.Linear(self.n_in, n)
        uniform = self.init == "uniform"
        draw = torch.rand if uniform else torch.randn
        self.w = nn.Parameter(check_init_std(w_init_std, "w_init_std") * draw(n, n))
        self.alpha = alpha_parameter(alpha, (n, n), check_init_std(alpha_init_std, "alpha_init_std"), uniform=uniform)
        self.readout = nn.Linear(n, self.n_out)
        self.modulation: nn.Linear | None = nn.Linear(n, 1) if self.mode != "none" else None
        self.eta: UnitIntervalScalar | None = (
            UnitIntervalScalar(eta_init, learn=learn_eta, name="eta_init") if self.mode != "simple" else None
        )

    def extra_repr(self) -> str:
        return (
            f"n_in={self.n_in}, n_out={self.n_out}, n_hidden={self.n_hidden}, mode={self.mode!r}, "
            f"alpha={self.alpha_mode!r}, clip={self.clip}, init={self.init!r}"
        )

    def initial_state(self, batch: int) -> BackpropamineState:
        """Zero activations and traces, on ``W``'s device and dtype."""
        check_int("batch", batch)
        n = self.n_hidden
        like = self.w
        zeros = like.new_zeros(batch, n, n)
        # The eligibility trace is carried unchanged (same tensor) outside the retroactive mode.
        elig = like.new_zeros(batch, n, n) if self.mode == "retroactive" else zeros
        return BackpropamineState(h=like.new_zeros(batch, n), hebb=zeros, elig=elig)

    def modulator(self, h: Tensor) -> Tensor:
        """``M = tanh(w_M . h + b_M)``: ``[B, n_hidden] -> [B]`` (modulated modes only)."""
        if self.modulation is None:
            raise ValueError("mode='none' has no neuromodulator")
        return torch.tanh(self.modulation(h)).squeeze(-1)

    def step(self, x: Tensor, state: BackpropamineState) -> tuple[Tensor, BackpropamineState]:
        check_step_input(x, self.n_in, state)
        h_prev = state.h
        h = torch.tanh(self.w_in(x) + plastic_matvec(self.w, self.alpha, state.hebb, h_prev))
        elig = state.elig
        if self.mode == "none":
            assert self.eta is not None  # structural invariant, set in __init__
            delta = self.eta() * outer(h, h_prev)
        else:
            m = self.modulator(h)[:, None, None]
            if self.mode == "simple":
                delta = m * outer(h, h_prev)
            else:
                assert self.eta is not None
                delta = m * state.elig
                elig = eligibility_step(state.elig, outer(h, h_prev), self.eta())
        hebb = torch.clamp(state.hebb + delta, -self.clip, self.clip)
        return self.readout(h), BackpropamineState(h=h, hebb=hebb, elig=elig)
