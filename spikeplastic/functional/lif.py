"""Current-based leaky integrate-and-fire step (Lava's ``LIF`` float model).

Per step, with synaptic input ``a``::

    u' = u * (1 - du) + a
    v' = v * (1 - dv) + u' + bias            (subtract reset: ... - vth * s_prev)
    s  = spike_fn(v' - vth)                   forward: strict threshold v' > vth
    v' = v' * (1 - s)                         zero reset (Lava); u is not reset

snnTorch mapping: ``Leaky(beta)`` is ``du = 1, dv = 1 - beta``; ``Synaptic(alpha, beta)`` is
``du = 1 - alpha, dv = 1 - beta``. ``reset="subtract"`` follows snnTorch's default delayed
subtraction: the spike of the previous step subtracts ``vth`` from this step's voltage.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from torch import Tensor

__all__ = ["LIFState", "lif_step"]


class LIFState(NamedTuple):
    """State of a LIF population, each ``[B, n]``: current ``u``, voltage ``v``, last spikes ``s``."""

    u: Tensor
    v: Tensor
    s: Tensor


def lif_step(
    a: Tensor,
    state: LIFState,
    du: Tensor | float,
    dv: Tensor | float,
    vth: Tensor | float,
    bias: Tensor | float,
    spike_fn: Callable[[Tensor], Tensor],
    reset: str = "zero",
    detach_reset: bool = True,
) -> LIFState:
    """One LIF step; returns the new state, whose ``s`` is this step's spikes.

    Args:
        a: synaptic input ``[B, n]``.
        state: previous :class:`LIFState`.
        du, dv: current and voltage decays in [0, 1] (scalars or ``[n]``).
        vth: threshold (scalar or ``[n]``); bias: constant input current.
        spike_fn: maps ``v - vth`` to spikes (a :class:`~spikeplastic.surrogate.Surrogate`).
        reset: ``"zero"`` (Lava/Loihi) or ``"subtract"`` (snnTorch default, delayed).
        detach_reset: stop gradients through the reset term (snnTorch default).
    """
    u = state.u * (1 - du) + a
    v = state.v * (1 - dv) + u + bias
    if reset == "subtract":
        s_prev = state.s.detach() if detach_reset else state.s
        v = v - s_prev * vth
    s = spike_fn(v - vth)
    if reset == "zero":
        r = s.detach() if detach_reset else s
        v = v * (1 - r)
    return LIFState(u, v, s)
