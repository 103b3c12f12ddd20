"""Leaky integrate-and-fire population module (thin wrapper around :func:`lif_step`)."""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor, nn

from ._params import Constrained
from ._validation import check_choice, check_int, check_positive, check_range
from .functional.lif import LIFState, lif_step
from .surrogate import Surrogate, surrogate as make_surrogate

__all__ = ["LIF", "LIFParams"]


class LIFParams(NamedTuple):
    """Mapped LIF parameters, each a scalar or ``[n]`` tensor."""

    du: Tensor
    dv: Tensor
    vth: Tensor
    bias: Tensor


class LIF(nn.Module):
    r"""Current-based LIF population with Lava's float semantics and an snnTorch surrogate gradient.

    .. math::
        u_t = u_{t-1}(1-d_u) + a_t,\quad v_t = v_{t-1}(1-d_v) + u_t + b,\quad
        s_t = [v_t > \vartheta],\quad v_t \leftarrow v_t (1 - s_t)

    Decays may be given Lava-style (``du``, ``dv``) or snnTorch-style (``alpha`` = 1 - du,
    ``beta`` = 1 - dv); ``alpha=None`` with ``beta`` given is snnTorch's ``Leaky`` (``du = 1``).

    Args:
        n: number of neurons.
        du, dv: current / voltage decay in [0, 1] (default ``du=1`` (no current memory), ``dv=0.1``).
        alpha, beta: snnTorch-style alternatives to ``du``/``dv`` (not both forms at once).
        vth: threshold (> 0). bias: constant input current added to ``v`` each step.
        reset: ``"zero"`` (Lava/Loihi; exportable) or ``"subtract"`` (snnTorch's delayed subtraction).
        surrogate: surrogate name (``"atan"``, ``"fast_sigmoid"``, ``"sigmoid"``, ``"triangular"``,
            ``"straight_through"``) or a :class:`~spikeplastic.surrogate.Surrogate`.
        per_neuron: one value per neuron for du, dv, vth and bias instead of shared scalars.
        learn_decay, learn_threshold, learn_bias: make those quantities learnable.

    Shape: input ``[B, n]`` per step; state :class:`~spikeplastic.functional.lif.LIFState` with
    ``[B, n]`` fields.

    Example::

        >>> lif = LIF(4, beta=0.9)
        >>> st = lif.initial_state(2)
        >>> st = lif(torch.ones(2, 4) * 0.6, st); st.s.sum().item()
        0.0
    """

    def __init__(
        self,
        n: int,
        *,
        du: float | Tensor | None = None,
        dv: float | Tensor | None = None,
        alpha: float | Tensor | None = None,
        beta: float | Tensor | None = None,
        vth: float | Tensor = 1.0,
        bias: float | Tensor = 0.0,
        reset: str = "zero",
        surrogate: str | Surrogate = "atan",
        per_neuron: bool = False,
        learn_decay: bool = False,
        learn_threshold: bool = False,
        learn_bias: bool = False,
        detach_reset: bool = True,
    ) -> None:
        super().__init__()
        self.n = check_int("n", n)
        if (du is not None or dv is not None) and (alpha is not None or beta is not None):
            raise ValueError("give decays either as du/dv (Lava) or as alpha/beta (snnTorch), not both")
        if alpha is not None:
            du = 1 - torch.as_tensor(alpha)
        if beta is not None:
            dv = 1 - torch.as_tensor(beta)
        du = 1.0 if du is None else du
        dv = 0.1 if dv is None else dv
        check_range("du (or 1 - alpha)", du, 0.0, 1.0)
        check_range("dv (or 1 - beta)", dv, 0.0, 1.0)
        check_positive("vth", vth)
        self.reset = check_choice("reset", reset, ["zero", "subtract"])
        self.spike_fn = make_surrogate(surrogate)
        self.detach_reset = bool(detach_reset)
        self.per_neuron = bool(per_neuron)

        def q(name: str, v: float | Tensor) -> Tensor:
            t = torch.as_tensor(v)
            t = t if t.is_floating_point() else t.to(torch.get_default_dtype())
            if t.dim() == 1 and t.shape[0] != n:
                raise ValueError(f"{name} must be a scalar or have shape [{n}], got {tuple(t.shape)}")
            if t.dim() > 1:
                raise ValueError(f"{name} must be a scalar or have shape [{n}], got {tuple(t.shape)}")
            if per_neuron and t.dim() == 0:
                t = t.expand(n).clone()
            return t

        self.du = Constrained(q("du", du), "unit", learn_decay, name="du", flag="learn_decay")
        self.dv = Constrained(q("dv", dv), "unit", learn_decay, name="dv", flag="learn_decay")
        self.vth = Constrained(q("vth", vth), "positive", learn_threshold, name="vth", flag="learn_threshold")
        self.bias = Constrained(q("bias", bias), "real", learn_bias, name="bias", flag="learn_bias")
        #: set by :func:`spikeplastic.quant.loihi_legal`: the integer state unit (Loihi emulation)
        self.quantum: Callable[[], Tensor] | None = None

    def params(self) -> LIFParams:
        """The mapped (legal-range) parameters."""
        return LIFParams(self.du(), self.dv(), self.vth(), self.bias())

    def initial_state(self, batch: int) -> LIFState:
        ref = self.vth()
        z = torch.zeros(batch, self.n, dtype=ref.dtype, device=ref.device)
        return LIFState(z, z.clone(), z.clone())

    def step(self, a: Tensor, state: LIFState, params: LIFParams | None = None) -> LIFState:
        """One step with input current ``a`` ``[B, n]``; the new state's ``s`` holds the spikes."""
        p = self.params() if params is None else params
        q = None if self.quantum is None else self.quantum()
        return lif_step(a, state, p.du, p.dv, p.vth, p.bias, self.spike_fn, self.reset, self.detach_reset, q)

    def forward(self, a: Tensor, state: LIFState) -> LIFState:
        return self.step(a, state)

    def extra_repr(self) -> str:
        return f"n={self.n}, reset={self.reset}, surrogate={self.spike_fn.name}"
