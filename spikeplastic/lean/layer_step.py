r"""One time step of a lean spiking layer, forward and backward (compiled whole by ``"compile"``).

Forward step ``k`` (``P`` = input spikes of step k-1, ``s`` = the layer's own)::

    a  = w_ff @ P + (alpha_ff*H_ff) @ P  [+ w_rec @ s + (alpha_rec*H_rec) @ s]     (projection kernels)
    u' = u*(1-du) + a;   v' = v*(1-dv) + u' + bias  [- vth*s];   s' = v' > vth;   v' = v'*(1-s')

the CUBA LIF of :func:`spikeplastic.functional.lif.lif_step` with its forward spike (strict threshold).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .stdp import _FWD_KERNELS, StdpArgs, StdpBwdFlags, _stdp_bwd_eager, _stdp_bwd_fused


class LIFConsts(NamedTuple):
    """The LIF's constants in a step: ``1 - du``, ``1 - dv``, ``vth``, ``bias`` (scalars or ``[n]``)."""

    one_du: Tensor
    one_dv: Tensor
    vth: Tensor
    bias: Tensor


class LayerFlags(NamedTuple):
    """Static options of a layer step: LIF reset (``"zero"``/``"subtract"``) and whether it is
    detached; ``rec_first``: add the recurrent current before the feed-forward one."""

    reset: str
    detach_reset: bool
    rec_first: bool


class ProjStep(NamedTuple):
    """One projection in a forward step: fixed weight ``w``; for a plastic one (``k`` set) its ``H``,
    traces ``X``/``Y``, kernel constants ``k`` and workspace ``buf``."""

    w: Tensor
    H: Tensor | None = None
    X: Tensor | None = None
    Y: Tensor | None = None
    k: StdpArgs | None = None
    buf: Tensor | None = None


class ProjAdj(NamedTuple):
    """One plastic projection in a backward step ``k``: ``H`` (H[k+1] when ``f.reconstruct``, else
    H[k]) and its adjoint ``gH``; the traces after step k ``X1``/``Y1`` and their adjoints from later
    steps ``gX``/``gY``; constants ``k``, per-synapse d alpha accumulator, workspace, flags."""

    H: Tensor
    gH: Tensor
    X1: Tensor
    Y1: Tensor
    gX: Tensor
    gY: Tensor
    k: StdpArgs
    galpha: Tensor | None
    buf: Tensor | None
    f: StdpBwdFlags


def _layer_fwd_step(kind, P, s, u, v, a_ff, ff: ProjStep, rec: ProjStep | None, lif: LIFConsts, flags: LayerFlags):
    """One forward step of a layer (currents of both projections, their plasticity, the LIF).

    ``kind`` picks the projection kernel (``"reference"``, ``"inplace"``, ``"fused"``); ``a_ff``:
    the feed-forward fixed current ``P @ w_ff^T`` if precomputed, else None. ``H`` tensors are
    updated in place except by the reference kernel. Returns ``(s, u, v, c, H_ff, X_ff, Y_ff,
    H_rec, X_rec, Y_rec)`` (``c``: the input current).
    """
    kern = _FWD_KERNELS[kind]
    f_H, f_X, f_Y = ff.H, ff.X, ff.Y
    r_H = r_X = r_Y = None
    if a_ff is None:
        a_ff = P @ ff.w.t()
    if ff.k is not None:
        cur, f_H, f_X, f_Y = kern(f_H, P, s, f_X, f_Y, ff.k, ff.buf)
        a_ff = a_ff + cur
    c = a_ff
    if rec is not None:
        r_H, r_X, r_Y = rec.H, rec.X, rec.Y
        a_r = s @ rec.w.t()
        if rec.k is not None:
            cur, r_H, r_X, r_Y = kern(r_H, s, s, r_X, r_Y, rec.k, rec.buf)
            a_r = a_r + cur
        c = a_r + a_ff if flags.rec_first else a_ff + a_r
    # CUBA LIF, op for op as functional.lif_step
    u = u * lif.one_du + c
    v = v * lif.one_dv + u + lif.bias
    if flags.reset == "subtract":
        v = v - s * lif.vth
    s = (v - lif.vth > 0).to(v.dtype)
    if flags.reset == "zero":
        v = v * (1 - s)
    return s, u, v, c, f_H, f_X, f_Y, r_H, r_X, r_Y


def _layer_bwd_step(kind, gs, gv, gu, s1, vp, sg, R, P, lif: LIFConsts,
                    ff: ProjAdj | None, r_w: Tensor | None, rec: ProjAdj | None, flags: LayerFlags):
    """Backward of one layer step ``k`` (see :func:`_layer_fwd_step`); ``H``/``gH`` in place.

    In: ``gs``, ``gv``, ``gu``: dL/d s_{k+1}, v_{k+1}, u_{k+1} from everything later; ``s1`` =
    s_{k+1}, ``vp`` its pre-reset voltage, ``sg`` the surrogate derivative there; ``R`` = s_k,
    ``P`` the input spikes of step k; ``ff``/``rec``: the plastic projections (None if static or
    absent); ``r_w``: the recurrent weight (None: no recurrent projection).
    Returns ``(gR, gv, gu, gxs, gvp, gc, ff, rec)``: dL/d s_k, v_k, u_k; the spike and voltage
    terms and dL/d(current) for the parameter sums; per plastic projection ``(gX1, gY1, gX, gY,
    gP, s_gamma, s_alpha)`` = total trace adjoints after step k (for parameter sums), the ones
    before it, dL/d pre (ff only; without the fixed and impulse terms) and the decay/alpha sums.
    """
    reset, detach_reset, rec_first = flags
    kern = _stdp_bwd_fused if kind == "fused" else _stdp_bwd_eager
    # ---- LIF ----
    gR = None
    if reset == "zero":
        gvp = gv * (1 - s1)
        if not detach_reset:
            gs = gs - gv * vp
    else:
        gvp = gv
    gxs = gs * sg
    gvp = gvp + gxs
    if reset == "subtract" and not detach_reset:
        gR = -gvp * lif.vth
    gu = gu + gvp
    gc = gu
    gv_prev = gvp * lif.one_dv
    gu_prev = gu * lif.one_du
    # ---- projections ----
    ff_out = rec_out = None

    def proj(a: ProjAdj, Pk):
        k, rg = a.k, a.f.rule_grad
        gRp, gPp, gXn, gYn, sgm, sal = kern(a.H, a.gH, Pk, R, a.X1, a.Y1, gc, k, a.galpha, a.f, a.buf)
        gX = a.gX + gXn
        gY = a.gY + gYn
        # the traces' impulse terms (am * R, ap * P) carry gradient into the spikes only with rg
        return (gRp + k.a_minus * gY) if rg else gRp, gPp, gX, gY, gX * k.dp, gY * k.dm, sgm, sal

    def do_ff(gR):
        nonlocal ff_out
        if ff is not None:
            gRp, gPp, gX1, gY1, gXn, gYn, sgm, sal = proj(ff, P)
            ff_out = (gX1, gY1, gXn, gYn, gPp, sgm, sal)
            gR = gRp if gR is None else gR + gRp
        return gR

    def do_rec(gR):
        nonlocal rec_out
        if r_w is not None:
            gr = gc @ r_w
            gR = gr if gR is None else gR + gr
        if rec is not None:
            gRp, gPp, gX1, gY1, gXn, gYn, sgm, sal = proj(rec, R)
            rec_out = (gX1, gY1, gXn, gYn, None, sgm, sal)
            gR = gR + gRp + gPp + (rec.k.a_plus * gX1 if rec.f.rule_grad else 0.0)
        return gR

    if rec_first:
        gR = do_ff(do_rec(gR))
    else:
        gR = do_rec(do_ff(gR))
    if gR is None:
        gR = torch.zeros_like(gc)
    return gR, gv_prev, gu_prev, gxs, gvp, gc, ff_out, rec_out


def _lif_chunk(C: Tensor, S: Tensor, u: Tensor, v: Tensor, lif: LIFConsts, reset: str):
    """Re-run the LIF of a chunk from its start state with the stored input currents ``C`` ``[L,B,n]``
    and spikes ``S`` ``[L+1,B,n]`` (``S[0]`` the spikes before the chunk). Same ops as the forward.
    Returns ``u`` ``[L+1]``, post-reset ``v`` ``[L+1]``, pre-threshold ``v`` ``[L]``."""
    one_du, one_dv, vth, bias = lif
    L = C.shape[0]
    U, V, VP = [u], [v], []
    for i in range(L):
        u = u * one_du + C[i]
        vp = v * one_dv + u + bias
        if reset == "subtract":
            vp = vp - S[i] * vth
        v = vp * (1 - S[i + 1]) if reset == "zero" else vp
        U.append(u)
        V.append(v)
        VP.append(vp)
    return torch.stack(U), torch.stack(V), torch.stack(VP)
