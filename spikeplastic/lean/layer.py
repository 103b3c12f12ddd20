"""The lean spiking layer: its autograd op and the functions that run it."""
from __future__ import annotations

import torch
from torch import Tensor

from ..surrogate import Surrogate
from .backend import _resolve_backend
from .layer_bwd import layer_backward
from .layer_fwd import layer_forward
from .params import (
    LayerOutput,
    LayerState,
    LeanLIF,
    LeanProjection,
    _as_param,
    _LayerSpec,
    _proj_spec,
    _proj_tensors,
)
from .plan import _check_reconstruct, _chunk
from .stdp import StdpArgs, _stdp_fwd


class _LIFLayerFn(torch.autograd.Function):
    """``(spec, x, x_prev, u0, v0, s0, du, dv, vth, bias, *ff, *rec)`` -> ``(S, V, U, u, v, H_ff, X_ff,
    Y_ff, H_rec, X_rec, Y_rec)``; ``ff``/``rec``: :class:`~.params.ProjTensors` fields each."""

    @staticmethod
    def forward(ctx, spec: _LayerSpec, x, xp0, u0, v0, s0, du, dv, vth, bias, *pt):  # type: ignore[override]
        return layer_forward(ctx, spec, x, xp0, u0, v0, s0, du, dv, vth, bias, pt)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gS, gV, gU, guT, gvT, *gp):  # type: ignore[override]
        return layer_backward(ctx, gS, gV, gU, guT, gvT, gp)


def plastic_lif_layer(
    x: Tensor,
    ff: LeanProjection,
    lif: LeanLIF,
    rec: LeanProjection | None = None,
    state: LayerState | None = None,
    *,
    record_voltages: bool = False,
    record_currents: bool = False,
    backend: str = "auto",
    checkpoint_every: int | None = None,
    reconstruct: str = "auto",
    rec_first: bool = False,
    x_is_spikes: bool = False,
    store_currents: bool | None = None,
) -> tuple[LayerOutput, LayerState]:
    r"""Run an episode of one spiking layer, memory-lean: ``x`` ``[T, B, n_in]`` -> spikes ``[T, B, n]``.

    Per step ``t`` (the core :class:`~spikeplastic.network.Network`'s timing; ``s_in[t-1] = x[t-1]``,
    ``x[-1] = state.x_prev``)::

        a[t]  = (w_ff + alpha_ff*H_ff) @ s_in[t-1] + (w_rec + alpha_rec*H_rec) @ s[t-1]
        H_ff  <- clip(gamma*H_ff + s[t-1] (x) x_ff - y_ff (x) s_in[t-1])   (traces first take the
        H_rec <- same with s[t-1] as pre and post                         spikes of step t-1)
        u = u*(1-du) + a;  v = v*(1-dv) + u + bias;  s[t] = v > vth;  v[s] = 0

    Gradients (surrogate ``lif.spike_fn``) reach ``x``, the initial state and every tensor in
    ``ff``/``rec``/``lif`` (weights, alpha, STDP impulses and time constants, decay, LIF parameters).
    Memory: the final ``H`` plus a working copy and its adjoint (and, for per-synapse alpha with the
    eager backends, one buffer) per plastic projection, plus ``T*B*n`` currents and ``bool`` spikes.

    Args:
        x: presynaptic spikes (or currents) ``[T, B, n_in]``.
        ff: the projection ``x -> layer``; ``rec``: optional ``layer -> layer`` projection.
        lif: LIF parameters and surrogate. state: initial :class:`LayerState` (default zeros).
        record_voltages, record_currents: also return post-reset ``v`` / ``u`` per step.
        backend: ``"auto" | "reference" | "inplace" | "compile"`` (see :mod:`spikeplastic.lean`).
        checkpoint_every: steps per chunk (default 32, or ``ceil(sqrt(T))`` when recomputing).
        reconstruct: ``"auto"`` (reverse where invertible) or ``"never"`` (always recompute chunks).
        rec_first: add the recurrent current before the feed-forward one (the core sums currents in
            the order of its projections; matters only for bit-exactness).
        x_is_spikes: ``x`` holds only 0/1: keep it as bits for the backward.
        store_currents: keep each step's input current (``T*B*n`` values) for the backward; if not,
            the backward sweeps each chunk once more to rebuild them (about one extra forward step of
            work and one more ``H``-sized buffer per plastic projection). Default: store them when they
            cost less than that buffer (``T <= n_in`` (+ ``n`` with a plastic recurrent projection)).

    Returns: :class:`LayerOutput` and the final :class:`LayerState`.
    """
    if not isinstance(x, Tensor) or x.dim() != 3 or not x.is_floating_point():
        raise ValueError(f"x must be a floating tensor [T, B, n_in], got {getattr(x, 'shape', type(x).__name__)}")
    T, B, n_in = x.shape
    if T < 1:
        raise ValueError("x must have at least one time step")
    if not isinstance(lif.spike_fn, Surrogate):
        raise TypeError(f"lif.spike_fn must be a Surrogate, got {type(lif.spike_fn).__name__}")
    if lif.reset not in ("zero", "subtract"):
        raise ValueError(f"lif.reset must be 'zero' or 'subtract', got {lif.reset!r}")
    _check_reconstruct(reconstruct)
    N = ff.weight.shape[0]
    if ff.weight.shape != (N, n_in):
        raise ValueError(f"ff.weight must be [n, {n_in}], got {tuple(ff.weight.shape)}")
    if rec is not None and rec.weight.shape != (N, N):
        raise ValueError(f"rec.weight must be [{N}, {N}], got {tuple(rec.weight.shape)}")
    ref = ff.weight
    dtype, dev = ref.dtype, ref.device
    if state is None:
        z = torch.zeros(B, N, dtype=dtype, device=dev)
        state = LayerState(z, z, z, torch.zeros(B, n_in, dtype=dtype, device=dev))

    def zeros_if(t: Tensor | None, p: LeanProjection | None, shape: tuple[int, ...]) -> Tensor | None:
        if p is None or p.stdp is None:
            return None
        return torch.zeros(shape, dtype=dtype, device=dev) if t is None else t

    Hf = state.H_ff  # None: the op starts from zeros without allocating an input
    Xf, Yf = zeros_if(state.x_ff, ff, (B, n_in)), zeros_if(state.y_ff, ff, (B, N))
    Hr = state.H_rec
    Xr, Yr = zeros_if(state.x_rec, rec, (B, N)), zeros_if(state.y_rec, rec, (B, N))
    be = _resolve_backend(backend, ref, B * N * max(n_in, N))
    if store_currents is None:
        plastic_width = (n_in if ff.stdp is not None else 0) + (N if (rec is not None and rec.stdp is not None) else 0)
        store_currents = T <= max(plastic_width, 1)
    spec = _LayerSpec(
        ff=_proj_spec(ff), rec=_proj_spec(rec), rec_first=bool(rec_first and rec is not None),
        spike_fn=lif.spike_fn, reset=lif.reset, detach_reset=bool(lif.detach_reset),
        record_v=record_voltages, record_u=record_currents, backend=be,
        checkpoint_every=checkpoint_every, reconstruct=reconstruct, x_as_bool=bool(x_is_spikes),
        store_currents=bool(store_currents),
    )
    if checkpoint_every is not None:
        _chunk(T, checkpoint_every, False)  # validate
    outs = _LIFLayerFn.apply(
        spec, x, state.x_prev, state.u, state.v, state.s,
        _as_param(lif.du, ref), _as_param(lif.dv, ref), _as_param(lif.vth, ref), _as_param(lif.bias, ref),
        *_proj_tensors(ff, ref, Hf, Xf, Yf), *_proj_tensors(rec, ref, Hr, Xr, Yr),
    )
    S, V, U, uT, vT, Hf, Xf, Yf, Hr, Xr, Yr = outs
    return LayerOutput(S, V, U), LayerState(uT, vT, S[-1], x[-1], Hf, Xf, Yf, Hr, Xr, Yr)


@torch.no_grad()
def fused_stdp_step(
    H: Tensor,
    s_pre: Tensor,
    s_post: Tensor,
    x: Tensor,
    y: Tensor,
    proj: LeanProjection,
    *,
    backend: str = "auto",
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One fused no-grad plastic step of an STDP projection (synaptic input, traces, weights).

    ``a = (w + alpha*H) @ s_pre`` with the *old* ``H``; ``x' = x e^{-1/tau+} + A+ s_pre``,
    ``y' = y e^{-1/tau-} + A- s_post``; ``H' = clip((1-decay) H + s_post (x) x' - y' (x) s_pre)``.
    ``s_pre``/``s_post`` are the spikes of the previous step (Lava's lag). Shapes: ``H``
    ``[B, n_post, n_pre]``, ``s_pre``/``x`` ``[B, n_pre]``, ``s_post``/``y`` ``[B, n_post]``.

    Returns ``(a, H', x', y')``. ``backend="inplace"``/``"compile"`` overwrite ``H`` (``H'`` is ``H``);
    ``"reference"`` allocates. For training use :func:`plastic_lif_layer` (this has no autograd).
    """
    if proj.stdp is None:
        raise ValueError("fused_stdp_step needs a plastic projection (proj.stdp is None)")
    t = _proj_tensors(proj, proj.weight, H, x, y)
    spec = _proj_spec(proj)
    assert spec is not None
    be = _resolve_backend(backend, H, H.numel())
    buf = torch.empty_like(H) if (spec.mode == "per_synapse" and be == "inplace") else None
    k = StdpArgs(t.alpha, t.a_plus, t.a_minus, t.dp, t.dm, t.gamma, spec.mode, spec.clip, t.tau_plus, t.tau_minus,
                 t.decay)
    cur, Hn, Xn, Yn = _stdp_fwd(be, H, s_pre, s_post, x, y, k, buf)
    return s_pre @ t.w.t() + cur, Hn, Xn, Yn
