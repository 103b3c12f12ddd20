"""Backward pass of the lean layer op: set-up, the chunks from last to first, the gradients.

Each backward starts from a fresh copy of the saved final ``H`` (the reverse mode rebuilds ``H[t]``
in it) and never writes into what the graph saved, so a second backward repeats the first bit for bit.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .layer_chunk import _BwdRun, _rebuild_chunk, _reduce_chunk, _run_chunk
from .layer_step import LayerFlags, LIFConsts
from .params import _PROJ_FIELDS, _PROJ_GRAD_FIELDS, _LayerSpec, _Proj
from .plan import _reduce_like, _unpack_bits
from .stdp import StdpBwdFlags


def layer_backward(ctx: Any, gS, gV, gU, guT, gvT, gp: tuple) -> tuple:
    """``_LIFLayerFn.backward``: gradients of the inputs of :func:`.layer_fwd.layer_forward`."""
    spec: _LayerSpec = ctx.spec
    xs, xp0, u0, v0, s0, du, dv, vth, bias, HfT, HrT = ctx.saved_tensors
    ff: _Proj = ctx.ff
    rec: _Proj | None = ctx.rec
    projs: list[_Proj] = ctx.projs
    plastic = [p for p in projs if p.spec.plastic]
    need = ctx.needs_input_grad  # (spec, x, xp0, u0, v0, s0, du, dv, vth, bias, *proj fields)
    Kv, C, Sb = ctx.Kv, ctx.C, ctx.Sb
    be = spec.backend
    T, B, N = Sb.shape[0], Sb.shape[1], ctx.N
    dtype = ctx.dtype
    one_du, one_dv = 1 - du, 1 - dv

    def pre_chunk(k0: int, k1: int) -> Tensor:  # P_k = x[k-1], k in [k0, k1), unpacked chunk by chunk
        rows = xs[max(k0 - 1, 0):k1 - 1]
        rows = (_unpack_bits(rows, ctx.x_n, dtype) if spec.x_as_bool else rows.detach().to(dtype))
        return torch.cat([xp0.detach().to(dtype).unsqueeze(0), rows], 0) if k0 == 0 else rows

    def needp(p: _Proj, i: int) -> bool:
        return bool(need[10 + i + (0 if p is ff else _PROJ_FIELDS)])

    # adjoints of the final state
    gu = torch.zeros_like(u0) if guT is None else guT.clone()
    gv = torch.zeros_like(v0) if gvT is None else gvT.clone()
    gR_carry = torch.zeros_like(s0)
    for j, p in enumerate((ff, rec)):
        if p is None or not p.spec.plastic:
            continue
        gH_T, gX_T, gY_T = gp[3 * j], gp[3 * j + 1], gp[3 * j + 2]
        HT = HfT if p is ff else HrT
        # reverse mode rebuilds H[t] in place: in a workspace, a fresh copy of the saved final H,
        # so that nothing the graph holds is written and every backward starts from the same H
        p.Hw = None if p.recompute else HT.clone()
        p.gH = torch.zeros_like(HT) if gH_T is None else gH_T.clone()
        p.gX = torch.zeros_like(p.X0) if gX_T is None else gX_T.clone()
        p.gY = torch.zeros_like(p.Y0) if gY_T is None else gY_T.clone()
        p.want_alpha = p.spec.mode != "none" and needp(p, 1)
        p.want_gamma = p.spec.has_gamma and needp(p, 6)
        p.galpha = torch.zeros_like(p.alpha) if (p.want_alpha and p.spec.mode == "per_synapse") else None
        p.s_alpha = p.s_gamma = None
        p.gdp = p.gdm = p.gap = p.gam = None
        p.buf = torch.empty_like(HT) if (p.spec.mode == "per_synapse" and (be != "compile" or p.recompute)) else None
        # without stored currents, each chunk is first swept to rebuild them: keep H at its end
        p.spare = torch.empty_like(HT) if (C is None and not p.recompute) else None
        p.k = p.args(be)
        # reverse mode: H[k+1] -> H[k] runs as its own (compiled) call before each step, so the
        # step's graph reads H in place and allocates no B*N^2 temporary
        p.f = StdpBwdFlags(False, p.want_gamma, p.want_alpha, p.spec.rule_grad)
    for p in projs:
        p.gw = torch.zeros_like(p.w) if needp(p, 0) else None
    one_du, one_dv = one_du.detach(), one_dv.detach()
    r = _BwdRun(
        spec=spec, ff=ff, rec=rec, projs=projs, plastic=plastic, be=be, Kv=Kv, C=C, Sb=Sb,
        fpl=ff if ff.spec.plastic else None, rpl=rec if (rec is not None and rec.spec.plastic) else None,
        lif=LIFConsts(one_du, one_dv, vth.detach(), bias.detach()), w_rec=None if rec is None else rec.w.detach(),
        flags=LayerFlags(spec.reset, spec.detach_reset, spec.rec_first),
        gu=gu, gv=gv, gR_carry=gR_carry, acc={k: None for k in ("du", "dv", "vth", "bias")},
        gx=torch.zeros(T, B, ctx.x_n, dtype=ctx.x_dtype, device=Sb.device) if need[1] else None, gxp0=None,
    )
    n_chunks = (T + Kv - 1) // Kv
    for ci in range(n_chunks - 1, -1, -1):
        k0 = ci * Kv
        k1 = min(T, k0 + Kv)
        Pc = pre_chunk(k0, k1)                                             # P_k, k in [k0, k1)
        Sc = _unpack_bits(Sb[max(k0 - 1, 0):k1], N, dtype)                # s_k, k in [k0, k1]
        if k0 == 0:
            Sc = torch.cat([s0.detach().unsqueeze(0), Sc], 0)
        Uc, Vc, VPc, SG = _rebuild_chunk(r, ctx, k0, k1, Pc, Sc, one_du, one_dv, vth, bias)
        GC, GVP, GXS = _run_chunk(r, k0, k1, Pc, Sc, VPc, SG, gS, gV, gU)
        _reduce_chunk(r, ctx, needp, k0, k1, Pc, Sc, Uc, Vc, GC, GVP, GXS)
    out = _assemble(r, need, needp, du, dv, vth, bias)
    for p in projs:
        p.release_backward()
    return out


def _assemble(r: _BwdRun, need, needp, du: Tensor, dv: Tensor, vth: Tensor, bias: Tensor) -> tuple:
    """The backward's result, one entry per input of the forward."""

    def grad_param(name: str, like: Tensor, i: int) -> Tensor | None:
        a = r.acc[name]
        return None if (not need[i] or a is None) else _reduce_like(a, like)

    out: list[Tensor | None] = [
        None, r.gx, r.gxp0 if need[2] else None,
        r.gu if need[3] else None, r.gv if need[4] else None, r.gR_carry if need[5] else None,
        grad_param("du", du, 6), grad_param("dv", dv, 7), grad_param("vth", vth, 8), grad_param("bias", bias, 9),
    ]
    consts = [None] * (_PROJ_FIELDS - _PROJ_GRAD_FIELDS)  # tau_plus, tau_minus, decay: detached
    for j, p in enumerate((r.ff, r.rec)):
        if j == 1 and p is None:
            out += [None] * _PROJ_FIELDS
            continue
        assert p is not None
        if not p.spec.plastic:
            out += [p.gw] + [None] * (_PROJ_FIELDS - 1)
            continue
        ga = p.galpha if p.spec.mode == "per_synapse" else p.s_alpha
        out += [p.gw, ga if p.want_alpha else None, p.gap, p.gam, p.gdp, p.gdm,
                p.s_gamma if p.want_gamma else None,
                p.gH if needp(p, 7) else None, p.gX if needp(p, 8) else None, p.gY if needp(p, 9) else None,
                *consts]
    return tuple(out)
