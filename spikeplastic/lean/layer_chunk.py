"""Backward of the lean layer op, one chunk of steps at a time (backwards in time).

Per chunk: rebuild what the forward did not keep (the traces, ``H`` for recomputed projections,
the input currents if not stored, the LIF's pre-threshold voltages), run the step backward
(:func:`~.layer_step._layer_bwd_step`) from the chunk's last step to its first, then reduce the
chunk's per-step terms into the parameter gradients.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .backend import _call_kernel, _StepRunner
from .layer_step import LayerFlags, LIFConsts, ProjAdj, _layer_bwd_step, _lif_chunk
from .params import _LayerSpec, _Proj
from .stdp import _FWD_KERNELS, _stdp_recon_eager, _stdp_recon_fused, _stdp_unstep_cur_eager, _stdp_unstep_cur_fused


def _add(a: Tensor | None, b: Tensor | None) -> Tensor | None:
    return b if a is None else (a if b is None else a + b)


class _BwdRun:
    """What one backward pass shares between its chunks (set up by :func:`.layer_bwd.layer_backward`)."""

    spec: _LayerSpec
    ff: _Proj
    rec: _Proj | None
    projs: list[_Proj]
    plastic: list[_Proj]
    fpl: _Proj | None       # ff if plastic
    rpl: _Proj | None       # rec if plastic
    be: str
    Kv: int
    C: Tensor | None        # stored input currents, or None (rebuilt per chunk)
    Sb: Tensor              # spikes as bits
    lif: LIFConsts          # detached
    w_rec: Tensor | None
    flags: LayerFlags
    step: _StepRunner
    gu: Tensor
    gv: Tensor
    gR_carry: Tensor
    acc: dict[str, Tensor | None]
    gx: Tensor | None
    gxp0: Tensor | None

    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)
        self.step = _StepRunner(_layer_bwd_step, self.be)


def _rebuild_chunk(r: _BwdRun, ctx: Any, k0: int, k1: int, Pc: Tensor, Sc: Tensor, one_du, one_dv, vth, bias):
    """Traces ``Xc``/``Yc`` ``[L+1]`` and (recompute mode) ``H_k`` of each plastic projection, the
    chunk's input currents and its LIF: returns ``(Uc, Vc, VPc, SG)``."""
    L = k1 - k0
    be, C = r.be, r.C
    u_c, v_c, tr_c = ctx.vec_ckpt[k0]
    curs: dict[int, list[Tensor]] = {}
    for p, (X, Y) in zip(r.plastic, tr_c):
        pre_c = Pc if p is r.ff else Sc[:-1]
        Xs, Ys = [X], [Y]
        for i in range(L):
            Xs.append(Xs[-1] * p.dp + p.ap * pre_c[i])
            Ys.append(Ys[-1] * p.dm + p.am * Sc[i])
        p.Xc, p.Yc = torch.stack(Xs), torch.stack(Ys)
        if p.recompute:  # H_k for k in [k0, k1) from the chunk's copy, same kernel as the forward
            kern = _FWD_KERNELS["inplace" if be == "compile" else be]
            Hs, cs = [p.ckpt[k0]], []
            for i in range(L if C is None else L - 1):
                cur, Hn, _, _ = kern(Hs[-1].clone(), pre_c[i], Sc[i], Xs[i], Ys[i], p.k, p.buf)
                cs.append(cur)
                if i < L - 1:
                    Hs.append(Hn)
            p.Hs = Hs
            curs[id(p)] = cs
        elif C is None:  # sweep the chunk backwards once to rebuild its plastic currents
            p.spare.copy_(p.Hw)
            cs = [None] * L
            for i in range(L - 1, -1, -1):
                if (k0 + i + 1) in p.ckpt:
                    p.Hw.copy_(p.ckpt[k0 + i + 1])
                cs[i] = _call_kernel(be, _stdp_unstep_cur_fused, _stdp_unstep_cur_eager, p.Hw, pre_c[i], Sc[i],
                                     p.Xc[i + 1], p.Yc[i + 1], p.k, p.buf)
            p.Hw.copy_(p.spare)
            curs[id(p)] = cs
    if C is not None:
        Cc = C[k0:k1]
    else:  # input currents of the chunk, summed in the forward's order
        Cc = None
        for p in r.projs:
            pre_c = Pc if p is r.ff else Sc[:-1]
            a = pre_c @ p.w.detach().t()
            if p.spec.plastic:
                a = a + torch.stack(curs[id(p)])
            Cc = a if Cc is None else Cc + a
    curs.clear()
    Uc, Vc, VPc = _lif_chunk(Cc, Sc, u_c, v_c, LIFConsts(one_du, one_dv, vth, bias), r.spec.reset)
    SG = r.spec.spike_fn.scaled_grad(VPc - vth)
    return Uc, Vc, VPc, SG


def _run_chunk(r: _BwdRun, k0: int, k1: int, Pc: Tensor, Sc: Tensor, VPc: Tensor, SG: Tensor, gS, gV, gU):
    """The step backward over ``k = k1-1 .. k0``; returns the stacked ``dL/dc``, ``dL/dv_pre`` and
    spike terms ``[L, B, n]`` and leaves ``GX``, ``GY`` (``GP``), the sums and the carried adjoints
    on the projections and ``r``."""
    L = k1 - k0
    ff, fpl, rpl = r.ff, r.fpl, r.rpl
    # per-step views taken once per chunk and per-step results collected in lists: the
    # Python work per step is what limits small layers
    S_, VP_, SG_, P_ = Sc.unbind(0), VPc.unbind(0), SG.unbind(0), Pc.unbind(0)
    gS_ = None if gS is None else gS[k0:k1].unbind(0)
    gV_ = None if gV is None else gV[k0:k1].unbind(0)
    gU_ = None if gU is None else gU[k0:k1].unbind(0)
    Xf_, Yf_ = (fpl.Xc.unbind(0), fpl.Yc.unbind(0)) if fpl else (None, None)
    Xr_, Yr_ = (rpl.Xc.unbind(0), rpl.Yc.unbind(0)) if rpl else (None, None)
    GC_: list[Tensor] = [None] * L  # type: ignore[list-item]
    GVP_: list[Tensor] = [None] * L  # type: ignore[list-item]
    GXS_: list[Tensor] = [None] * L  # type: ignore[list-item]
    outs: dict[int, list] = {id(p): [None] * L for p in r.plastic}
    gR_carry, gv, gu = r.gR_carry, r.gv, r.gu
    for i in range(L - 1, -1, -1):
        k = k0 + i
        gs = gR_carry if gS_ is None else gR_carry + gS_[i]
        if gV_ is not None:
            gv = gv + gV_[i]
        if gU_ is not None:
            gu = gu + gU_[i]
        Hf = Hr = None
        for p in r.plastic:
            if p.recompute:
                H = p.Hs[i]
            else:
                H = p.Hw
                if (k + 1) in p.ckpt:
                    H.copy_(p.ckpt[k + 1])
                Xs_ = Xf_ if p is ff else Xr_
                Ys_ = Yf_ if p is ff else Yr_
                _call_kernel(r.be, _stdp_recon_fused, _stdp_recon_eager, H, P_[i] if p is ff else S_[i], S_[i],
                             Xs_[i + 1], Ys_[i + 1], p.k.gamma)
            if p is ff:
                Hf = H
            else:
                Hr = H
        fa = None if fpl is None else ProjAdj(Hf, fpl.gH, Xf_[i + 1], Yf_[i + 1], fpl.gX, fpl.gY, fpl.k,
                                              fpl.galpha, fpl.buf, fpl.f)
        ra = None if rpl is None else ProjAdj(Hr, rpl.gH, Xr_[i + 1], Yr_[i + 1], rpl.gX, rpl.gY, rpl.k,
                                              rpl.galpha, rpl.buf, rpl.f)
        gR_carry, gv, gu, GXS_[i], GVP_[i], GC_[i], fo, ro = r.step(
            gs, gv, gu, S_[i + 1], VP_[i], SG_[i], S_[i], P_[i], r.lif, fa, r.w_rec, ra, r.flags)
        if fpl is not None:
            outs[id(fpl)][i] = fo
            fpl.gX, fpl.gY = fo[2], fo[3]
        if rpl is not None:
            outs[id(rpl)][i] = ro
            rpl.gX, rpl.gY = ro[2], ro[3]
    r.gR_carry, r.gv, r.gu = gR_carry, gv, gu
    GC, GVP, GXS = torch.stack(GC_), torch.stack(GVP_), torch.stack(GXS_)
    for p in r.plastic:
        o = outs[id(p)]
        p.GX = torch.stack([q[0] for q in o])
        p.GY = torch.stack([q[1] for q in o])
        if p is ff:
            p.GP = torch.stack([q[4] for q in o])
        if o[0][5] is not None:
            p.s_gamma = _add(p.s_gamma, torch.stack([q[5] for q in o]).sum())
        if o[0][6] is not None:
            p.s_alpha = _add(p.s_alpha, torch.stack([q[6] for q in o]).sum())
    return GC, GVP, GXS


def _reduce_chunk(r: _BwdRun, ctx: Any, needp, k0: int, k1: int, Pc: Tensor, Sc: Tensor,
                  Uc: Tensor, Vc: Tensor, GC: Tensor, GVP: Tensor, GXS: Tensor) -> None:
    """The chunk's contributions to the parameter and input gradients."""
    L = k1 - k0
    B, N = Sc.shape[1], Sc.shape[2]
    acc, ff, need = r.acc, r.ff, ctx.needs_input_grad
    acc["bias"] = _add(acc["bias"], GVP.sum(0))
    acc["dv"] = _add(acc["dv"], -(GVP * Vc[:-1]).sum(0))
    acc["du"] = _add(acc["du"], -(GC * Uc[:-1]).sum(0))
    gvth = -GXS.sum(0)
    if r.spec.reset == "subtract":
        gvth = gvth - (GVP * Sc[:-1]).sum(0)
    acc["vth"] = _add(acc["vth"], gvth)
    GC2 = GC.reshape(L * B, N)
    for p in r.projs:
        pre_c = Pc if p is ff else Sc[:-1]
        if p.gw is not None:
            p.gw += GC2.t() @ pre_c.reshape(L * B, -1)
        if p.spec.plastic:
            if needp(p, 4):
                p.gdp = _add(p.gdp, (p.GX * p.Xc[:-1]).sum())
            if needp(p, 5):
                p.gdm = _add(p.gdm, (p.GY * p.Yc[:-1]).sum())
            if needp(p, 2):
                p.gap = _add(p.gap, (p.GX * pre_c).sum())
            if needp(p, 3):
                p.gam = _add(p.gam, (p.GY * Sc[:-1]).sum())
    if need[1] or need[2]:
        gPc = GC @ ff.w
        if r.fpl is not None:
            gPc = gPc + ff.GP + (ff.ap * ff.GX if ff.spec.rule_grad else 0.0)
        gPc = gPc.to(ctx.x_dtype)
        if k0 == 0:
            r.gxp0 = gPc[0]
            if r.gx is not None and L > 1:
                r.gx[: L - 1] = gPc[1:]
        elif r.gx is not None:
            r.gx[k0 - 1 : k1 - 1] = gPc
    for p in r.plastic:
        p.Xc = p.Yc = p.GX = p.GY = p.GP = p.Hs = None
