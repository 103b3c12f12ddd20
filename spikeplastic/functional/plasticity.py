"""Pure plasticity step functions (no module state, tensors in -> tensors out).

Layout convention everywhere: a plastic matrix ``H`` is ``[B, n_post, n_pre]`` (one per batch
element), presynaptic activity ``pre`` is ``[B, n_pre]``, postsynaptic ``post`` is ``[B, n_post]``.
Scalars such as ``eta`` may be Python floats or tensors broadcastable to ``H``.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "decay_factor",
    "STDPTraces",
    "trace_step",
    "stdp_traces_step",
    "stdp_update",
    "hebb_step",
    "oja_step",
    "hebb_increment",
    "oja_increment",
    "eligibility_step",
    "outer",
    "stdp_window",
    "NOISE_KIND",
    "perturbation_noise",
    "NPState",
    "node_perturbation_step",
    "reward_baseline_step",
]


def outer(post: Tensor, pre: Tensor) -> Tensor:
    """Batched outer product ``post ⊗ pre``: ``[B, n_post] x [B, n_pre] -> [B, n_post, n_pre]``."""
    return post.unsqueeze(-1) * pre.unsqueeze(-2)


def decay_factor(tau: Tensor | float) -> Tensor | float:
    """Per-step decay factor of a trace with time constant ``tau`` (in steps): ``exp(-1/tau)``."""
    if isinstance(tau, Tensor):
        return torch.exp(-1.0 / tau)
    return math.exp(-1.0 / tau)


def trace_step(trace: Tensor, spikes: Tensor, tau: Tensor | float, impulse: Tensor | float) -> Tensor:
    """Exponential trace that includes this step's spike.

    ``trace' = trace * exp(-1/tau) + impulse * spikes``  (Lava's x1/y1 traces with t_epoch = 1)
    """
    return trace * decay_factor(tau) + impulse * spikes


class STDPTraces(NamedTuple):
    """Pair-STDP traces: presynaptic ``x`` ``[B, n_pre]`` and postsynaptic ``y`` ``[B, n_post]``."""

    x: Tensor
    y: Tensor


def stdp_traces_step(
    traces: STDPTraces,
    s_pre: Tensor,
    s_post: Tensor,
    a_plus: Tensor | float,
    a_minus: Tensor | float,
    tau_plus: Tensor | float,
    tau_minus: Tensor | float,
) -> STDPTraces:
    """Update both traces with this step's spikes.

    ``x' = x*exp(-1/tau_plus) + a_plus*s_pre``, ``y' = y*exp(-1/tau_minus) + a_minus*s_post``
    """
    return STDPTraces(
        trace_step(traces.x, s_pre, tau_plus, a_plus),
        trace_step(traces.y, s_post, tau_minus, a_minus),
    )


def stdp_update(traces: STDPTraces, s_pre: Tensor, s_post: Tensor) -> Tensor:
    """Pair-STDP weight change from traces that already include this step's spikes.

    ``dH = outer(s_post, x) - outer(y, s_pre)``; a single pre spike followed ``dt`` steps later by a
    post spike gives ``+a_plus*exp(-dt/tau_plus)``, post-then-pre gives ``-a_minus*exp(-dt/tau_minus)``,
    and a simultaneous pair gives ``a_plus - a_minus``.
    Lava: ``Loihi2FLearningRule(dw="y0*x1 - x0*y1", ...)``.
    """
    return outer(s_post, traces.x) - outer(traces.y, s_pre)


def hebb_step(H: Tensor, pre: Tensor, post: Tensor, eta: Tensor | float) -> Tensor:
    """Hebbian trace with decay (Miconi et al. 2018).

    ``H' = (1 - eta) * H + eta * outer(post, pre)``
    """
    return (1.0 - eta) * H + eta * outer(post, pre)


def oja_step(H: Tensor, pre: Tensor, post: Tensor, eta: Tensor | float) -> Tensor:
    """Oja's rule (Miconi et al. 2018, one-shot / maze tasks).

    ``H'_{ji} = H_{ji} + eta * post_j * (pre_i - H_{ji} * post_j)``
    """
    p = post.unsqueeze(-1)
    return H + eta * p * (pre.unsqueeze(-2) - H * p)


def eligibility_step(E: Tensor, e: Tensor, eta_e: Tensor | float) -> Tensor:
    """Eligibility trace of Backpropamine's retroactive modulation.

    ``E' = (1 - eta_e) * E + eta_e * e``, computed as ``E + eta_e * (e - E)`` (Lava's ``dt`` form).
    """
    return E + eta_e * (e - E)


def hebb_increment(H: Tensor, pre: Tensor, post: Tensor, eta: Tensor | float) -> Tensor:
    """The Hebbian rule's candidate update ``e = eta * (outer(post, pre) - H)``; added to ``H``
    without modulation it is :func:`hebb_step`'s ``H' = (1 - eta) H + eta outer(post, pre)``."""
    return eta * (outer(post, pre) - H)


def oja_increment(H: Tensor, pre: Tensor, post: Tensor, eta: Tensor | float) -> Tensor:
    """Oja's candidate update ``e_ji = eta * post_j * (pre_i - H_ji * post_j)`` (:func:`oja_step` = ``H + e``)."""
    p = post.unsqueeze(-1)
    return eta * p * (pre.unsqueeze(-2) - H * p)


def stdp_window(
    a_plus: float, a_minus: float, tau_plus: float, tau_minus: float, max_dt: int
) -> tuple[Tensor, Tensor]:
    """The pair-STDP learning window, measured by running :func:`stdp_traces_step` and
    :func:`stdp_update` on one pre and one post spike ``dt`` steps apart.

    Returns ``(dt, dw)`` for ``dt = -max_dt .. max_dt`` (``dt = t_post - t_pre``): the total weight
    change the pair causes, ``+a_plus*exp(-dt/tau_plus)`` for ``dt > 0``, ``-a_minus*exp(dt/tau_minus)``
    for ``dt < 0`` and ``a_plus - a_minus`` at ``dt = 0``.
    """
    dts = torch.arange(-max_dt, max_dt + 1)
    n = dts.numel()
    T = 2 * max_dt + 1
    t_pre = torch.full((n,), max_dt)
    t_post = t_pre + dts
    tr = STDPTraces(torch.zeros(n, 1, dtype=torch.float64), torch.zeros(n, 1, dtype=torch.float64))
    dw = torch.zeros(n, 1, 1, dtype=torch.float64)
    for t in range(T):
        pre = (t_pre == t).to(torch.float64).unsqueeze(1)
        post = (t_post == t).to(torch.float64).unsqueeze(1)
        tr = stdp_traces_step(tr, pre, post, a_plus, a_minus, tau_plus, tau_minus)
        dw = dw + stdp_update(tr, pre, post)
    return dts, dw[:, 0, 0]


# ---- node perturbation -------------------------------------------------------------------------

#: name of the perturbation noise stream below (stored in the IR, checked by the exporter)
NOISE_KIND = "uniform-hash32"

_MASK32 = 0xFFFFFFFF
_SQRT3 = math.sqrt(3.0)


def _mul32(x: Tensor, c: int) -> Tensor:
    """``(x * c) mod 2^32`` for int64 ``x`` in ``[0, 2^32)``, in two 16-bit halves of ``c`` so that no
    intermediate exceeds ``2^49`` (int64 never overflows, on any device)."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & _MASK32


def _hash32(x: Tensor) -> Tensor:
    """A bijective 32-bit integer mix (``lowbias32``, C. Wellons' hash-prospector) of int64 ``x`` in ``[0, 2^32)``."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def perturbation_noise(seed: Tensor, step: Tensor, n: int, dtype: torch.dtype | None = None) -> Tensor:
    r"""Unit perturbation noise ``xi [B, n]`` of step ``step``: a pure function of ``(seed_b, step_b, i)``.

    ::

        h  = hash32(hash32(hash32(seed_b) ^ step_b) ^ i)        (32-bit integer hash, lowbias32)
        xi = sqrt(3) * (2u - 1),   u = (h + 1/2) / 2^32          (uniform on (-sqrt 3, sqrt 3))

    Zero mean, unit variance, independent across samples, steps and neurons. Counter-based: no
    generator state, so the stream of any step can be recomputed anywhere (``seed``/``step`` are
    taken mod 2^32). Integer ops and one rounding in float64 (``* sqrt(3)``), so the values are
    bit-identical on every device and in numpy, which is how the Lava export feeds the same noise.

    Args:
        seed, step: int64 ``[B]``. n: neurons. dtype: of the result (default: torch's default).
    """
    if seed.dtype != torch.int64 or step.dtype != torch.int64:
        raise TypeError(f"perturbation_noise: seed and step must be int64 tensors, got {seed.dtype} and {step.dtype}")
    i = torch.arange(n, device=seed.device, dtype=torch.int64)
    h = _hash32(_hash32(seed & _MASK32) ^ (step & _MASK32))
    h = _hash32(h.unsqueeze(-1) ^ i)
    u = (h.to(torch.float64) + 0.5) * 2.0**-32
    return ((2.0 * u - 1.0) * _SQRT3).to(dtype or torch.get_default_dtype())


class NPState(NamedTuple):
    """State of node perturbation for one projection.

    ``x``: presynaptic trace ``[B, n_pre]``; ``xi``: unit noise of the next perturbation ``[B, n_post]``
    (:func:`perturbation_noise` of ``(seed, step)``); ``baseline``: running reward baseline
    ``[B, n_post]``; ``seed``: int64 ``[B]``; ``step``: int64 ``[B]``, perturbations injected so far.
    """

    x: Tensor
    xi: Tensor
    baseline: Tensor
    seed: Tensor
    step: Tensor


def node_perturbation_step(
    x: Tensor, s_pre: Tensor, noise: Tensor, tau: Tensor | float, eta: Tensor | float
) -> tuple[Tensor, Tensor]:
    r"""Node perturbation's update candidate (Fiete & Seung 2006) and the new presynaptic trace.

    ::

        x' = x * exp(-1/tau) + eta * s_pre          (Lava's x1 trace: impulse eta, time constant tau)
        e  = outer(noise, x')                        noise: the perturbation [B, n_post]

    Returns ``(e [B, n_post, n_pre], x')``. Lava: ``e = y1*x1`` with ``y1`` the perturbation.
    """
    xn = trace_step(x, s_pre, tau, eta)
    return outer(noise, xn), xn


def reward_baseline_step(baseline: Tensor, r: Tensor, eta_b: Tensor | float) -> tuple[Tensor, Tensor]:
    r"""Third factor minus a running baseline, and the new baseline.

    ``m = r - b``, ``b' = b + eta_b * (r - b)`` (an exponential average of ``r`` with rate ``eta_b``).
    Returns ``(m, b')``.
    """
    d = r - baseline
    return d, baseline + eta_b * d
