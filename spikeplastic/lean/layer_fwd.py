"""Forward pass of the lean layer op: the time loop under ``no_grad`` with ``H`` updated in place,
saving spikes as bits, the chunks' start state and (optionally) each step's input current."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .backend import _detach, _StepRunner
from .layer_step import LayerFlags, LIFConsts, ProjStep, _layer_fwd_step
from .params import _PROJ_FIELDS, ProjTensors, _LayerSpec, _Proj
from .plan import _chunk, _pack_bits, _pre_chunk


def layer_forward(ctx: Any, spec: _LayerSpec, x, xp0, u0, v0, s0, du, dv, vth, bias, pt: tuple) -> tuple:
    """``_LIFLayerFn.forward``; ``pt``: the two projections' :class:`ProjTensors` fields, flat."""
    T, B = x.shape[0], x.shape[1]
    N = u0.shape[-1]
    ff = _Proj(spec.ff, ProjTensors(*pt[:_PROJ_FIELDS]), T, spec.reconstruct)
    rec = _Proj(spec.rec, ProjTensors(*pt[_PROJ_FIELDS:]), T, spec.reconstruct) if spec.rec else None
    projs = [p for p in ((rec, ff) if spec.rec_first else (ff, rec)) if p is not None]
    plastic = [p for p in projs if p.spec.plastic]
    Kv = _chunk(T, spec.checkpoint_every, any(p.recompute for p in plastic))
    for p in plastic:
        if p.recompute:
            p.k_h = Kv
    save = any(ctx.needs_input_grad)
    be = spec.backend
    dtype = u0.dtype
    S = x.new_empty(T, B, N, dtype=dtype)
    V = x.new_empty(T, B, N, dtype=dtype) if spec.record_v else None
    U = x.new_empty(T, B, N, dtype=dtype) if spec.record_u else None
    C = x.new_empty(T, B, N, dtype=dtype) if (save and spec.store_currents) else None
    u, v, s = u0.detach(), v0.detach(), s0.detach()
    lif = _detach(LIFConsts(1 - du, 1 - dv, vth, bias))
    for p in plastic:
        p.H = p.H0.detach().clone() if p.H0 is not None else p.w.new_zeros(B, *p.w.shape)
        p.X, p.Y = p.X0.detach(), p.Y0.detach()
        p.buf = torch.empty_like(p.H) if (p.spec.mode == "per_synapse" and be == "inplace") else None
        p.ckpt = {}
    fp = ff if ff.spec.plastic else None
    rp = rec if (rec is not None and rec.spec.plastic) else None
    f_k, r_k = fp and fp.args(be), rp and rp.args(be)
    w_ff, w_rec = ff.w.detach(), None if rec is None else rec.w.detach()
    flags = LayerFlags(spec.reset, spec.detach_reset, spec.rec_first)
    step = _StepRunner(_layer_fwd_step, be)
    vec_ckpt: dict[int, tuple] = {}
    fixed_ff = None
    for k in range(T):
        if k % Kv == 0:
            k1 = min(T, k + Kv)
            if be != "reference":  # fixed part of the feed-forward input for the chunk: one GEMM
                fixed_ff = _pre_chunk(x.detach(), xp0.detach(), k, k1).to(dtype) @ w_ff.t()
            if save:
                vec_ckpt[k] = (u, v, tuple((p.X, p.Y) for p in plastic))
        for p in plastic:
            if save and ((p.recompute and k % p.k_h == 0) or (not p.recompute and k > 0 and k % p.k_h == 0)):
                p.ckpt[k] = p.H.clone()
        P = (xp0 if k == 0 else x[k - 1]).detach().to(dtype)
        f_step = ProjStep(w_ff) if fp is None else ProjStep(w_ff, fp.H, fp.X, fp.Y, f_k, fp.buf)
        r_step = None
        if rec is not None:
            r_step = ProjStep(w_rec) if rp is None else ProjStep(w_rec, rp.H, rp.X, rp.Y, r_k, rp.buf)
        s, u, v, c, fH, fX, fY, rH, rX, rY = step(
            P, s, u, v, None if fixed_ff is None else fixed_ff[k % Kv], f_step, r_step, lif, flags)
        if fp is not None:
            fp.H, fp.X, fp.Y = fH, fX, fY
        if rp is not None:
            rp.H, rp.X, rp.Y = rH, rX, rY
        if C is not None:
            C[k] = c
        S[k] = s
        if V is not None:
            V[k] = v
        if U is not None:
            U[k] = u
    outs_p: list[Tensor | None] = []
    for p in (ff, rec):
        if p is None or not p.spec.plastic:
            outs_p += [None, None, None]
        else:
            # the final H goes to the caller and is saved as is; the backward reconstructs
            # H[t] in a copy of it (a workspace of its own), never in the saved tensor
            outs_p += [p.H, p.X, p.Y]
    if save:
        ctx.spec, ctx.Kv, ctx.ff, ctx.rec, ctx.projs = spec, Kv, ff, rec, projs
        ctx.C, ctx.Sb, ctx.vec_ckpt, ctx.N, ctx.dtype = C, _pack_bits(S), vec_ckpt, N, dtype
        xs = _pack_bits(x) if spec.x_as_bool else x
        ctx.x_dtype, ctx.x_n = x.dtype, x.shape[-1]
        # outputs must not hang off ctx (reference cycle): the final H are saved tensors
        ctx.save_for_backward(xs, xp0, u0, v0, s0, du, dv, vth, bias, outs_p[0], outs_p[3])
        for p in plastic:
            p.H0 = p.H = p.X = p.Y = p.buf = None
    return (S, V, U, u, v, *outs_p)
