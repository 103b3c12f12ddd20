r"""Pair-STDP projection kernels: one step, no autograd.

Per step k of a projection pre -> post (``P = s_pre[k-1]``, ``R = s_post[k-1]``, Lava's lag)::

    current   c  = (alpha * H) @ P                    (the fixed part w @ P is added by the caller)
    traces    X' = X * dp + a_plus * P,  Y' = Y * dm + a_minus * R     (dp = exp(-1/tau_plus), ...)
    update    H' = clip(gamma * H + R (x) X' - Y' (x) P)              (gamma = 1 - decay, or absent)

The reference kernel composes these from :mod:`spikeplastic.functional` (bit-identical to
:class:`~spikeplastic.PlasticLinear`); the in-place and fused kernels re-express them for speed and
are tested against it (``tests/core/test_lean_vs_functional.py``).
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..functional.plasticity import STDPTraces, outer, stdp_traces_step, stdp_update
from ..functional.synapse import plastic_part, synaptic_update
from .backend import _call_kernel


class StdpArgs(NamedTuple):
    """What a plastic projection's kernels read besides ``H``, the traces and the spikes (detached).

    ``mode``: alpha ``"per_synapse"`` | ``"shared"`` | ``"none"`` (``alpha`` None); ``gamma`` =
    ``1 - decay`` or None (no decay term); ``dp``/``dm`` = ``decay_factor(tau_plus/tau_minus)``.
    ``tau_plus``, ``tau_minus``, ``decay``: what the reference kernel hands to ``functional``.
    """

    alpha: Tensor | None
    a_plus: Tensor
    a_minus: Tensor
    dp: Tensor
    dm: Tensor
    gamma: Tensor | None
    mode: str
    clip: float | None
    tau_plus: Tensor | None = None
    tau_minus: Tensor | None = None
    decay: Tensor | None = None


class StdpBwdFlags(NamedTuple):
    """Static choices of one projection's backward step: rebuild ``H[k]`` from ``H[k+1]`` first;
    return the sums for d gamma / d alpha; propagate into the update's spike inputs."""

    reconstruct: bool
    want_gamma: bool
    want_alpha: bool
    rule_grad: bool = True


# ---- forward step: (H, P, R, X, Y) -> (c, H', X', Y') -------------------------------------------
def _stdp_fwd_reference(H, P, R, X, Y, k: StdpArgs, buf):
    """``PlasticLinear.current`` + ``STDP.step`` + ``PlasticLinear.update`` through ``functional``."""
    cur = plastic_part(H, k.alpha, P, k.mode)
    tr = stdp_traces_step(STDPTraces(X, Y), P, R, k.a_plus, k.a_minus, k.tau_plus, k.tau_minus)
    Hn, _ = synaptic_update(H, stdp_update(tr, P, R), decay=k.decay, clip=k.clip)
    return cur, Hn, tr.x, tr.y


def _stdp_fwd_inplace(H, P, R, X, Y, k: StdpArgs, buf):
    # read H once with a transposed bmm (much faster than bmm(H, P[..., None]) on CPU), then a
    # rank-2 in-place update; alpha*H goes into a reused buffer (no allocation per step)
    alpha, gamma, mode, clip = k.alpha, k.gamma, k.mode, k.clip
    Hs = torch.mul(H, alpha, out=buf) if mode == "per_synapse" else H
    cur = torch.bmm(P.unsqueeze(1), Hs.transpose(1, 2)).squeeze(1)
    if mode == "shared":
        cur = cur * alpha
    Xn = X * k.dp + k.a_plus * P
    Yn = Y * k.dm + k.a_minus * R
    if gamma is not None:
        H.mul_(gamma)
    H.addcmul_(R.unsqueeze(2), Xn.unsqueeze(1)).addcmul_(Yn.unsqueeze(2), P.unsqueeze(1), value=-1.0)
    if clip is not None:
        H.clamp_(-clip, clip)
    return cur, H, Xn, Yn


def _stdp_fwd_fused(H, P, R, X, Y, k: StdpArgs, buf):
    # one expression: the compiler reads H once, reduces the current and writes the update
    alpha, gamma, mode, clip = k.alpha, k.gamma, k.mode, k.clip
    Xn = X * k.dp + k.a_plus * P
    Yn = Y * k.dm + k.a_minus * R
    Pr = P.unsqueeze(1)
    if mode == "per_synapse":
        cur = (H * alpha * Pr).sum(-1)
    else:
        cur = (H * Pr).sum(-1)
        if mode == "shared":
            cur = cur * alpha
    Hn = H if gamma is None else H * gamma
    Hn = Hn + R.unsqueeze(2) * Xn.unsqueeze(1) - Yn.unsqueeze(2) * Pr
    if clip is not None:
        Hn = Hn.clamp(-clip, clip)
    H.copy_(Hn)
    return cur, H, Xn, Yn


#: the forward step kernel of each step-function kind
_FWD_KERNELS = {"reference": _stdp_fwd_reference, "inplace": _stdp_fwd_inplace, "fused": _stdp_fwd_fused}


def _stdp_fwd(backend: str, *args: Any) -> Any:
    if backend == "compile":
        return _call_kernel(backend, _stdp_fwd_fused, _stdp_fwd_inplace, *args)
    return _FWD_KERNELS[backend](*args)


# ---- the update alone, and its inverse ---------------------------------------------------------
def _stdp_update_only(H, P, R, Xn, Yn, gamma, clip):
    """``H' = clip(gamma*H + R (x) X' - Y' (x) P)`` out of place (the backward's clip mask)."""
    Hn = H if gamma is None else gamma * H
    Hn = Hn + outer(R, Xn) - outer(Yn, P)
    return Hn if clip is None else Hn.clamp(-clip, clip)


def _stdp_recon_eager(H, P, R, Xn, Yn, gamma):
    """``H[k+1] -> H[k] = (H[k+1] - R (x) X' + Y' (x) P) / gamma`` in place."""
    H.addcmul_(R.unsqueeze(2), Xn.unsqueeze(1), value=-1.0).addcmul_(Yn.unsqueeze(2), P.unsqueeze(1))
    if gamma is not None:
        H.div_(gamma)


def _stdp_recon_fused(H, P, R, Xn, Yn, gamma):
    Hk = H - (R.unsqueeze(2) * Xn.unsqueeze(1) - Yn.unsqueeze(2) * P.unsqueeze(1))
    H.copy_(Hk if gamma is None else Hk / gamma)


def _stdp_unstep_cur_eager(H, P, R, Xn, Yn, k: StdpArgs, buf):
    """``H[k+1] -> H[k]`` in place and the plastic current ``(alpha*H[k]) @ P`` (rebuilding currents)."""
    alpha, gamma, mode = k.alpha, k.gamma, k.mode
    H.addcmul_(R.unsqueeze(2), Xn.unsqueeze(1), value=-1.0).addcmul_(Yn.unsqueeze(2), P.unsqueeze(1))
    if gamma is not None:
        H.div_(gamma)
    Hs = torch.mul(H, alpha, out=buf) if mode == "per_synapse" else H
    cur = torch.bmm(P.unsqueeze(1), Hs.transpose(1, 2)).squeeze(1)
    return cur * alpha if mode == "shared" else cur


def _stdp_unstep_cur_fused(H, P, R, Xn, Yn, k: StdpArgs, buf):
    alpha, gamma, mode = k.alpha, k.gamma, k.mode
    Pr = P.unsqueeze(1)
    Hk = H - (R.unsqueeze(2) * Xn.unsqueeze(1) - Yn.unsqueeze(2) * Pr)
    H.copy_(Hk if gamma is None else Hk / gamma)
    del Hk
    torch._dynamo.graph_break()  # read H itself below (no temporary), see _stdp_bwd_fused
    cur = (H * alpha * Pr).sum(-1) if mode == "per_synapse" else (H * Pr).sum(-1)
    return cur * alpha if mode == "shared" else cur


# ---- backward step -----------------------------------------------------------------------------
def _stdp_bwd_eager(H, gH, P, R, Xn, Yn, gc, k: StdpArgs, galpha, f: StdpBwdFlags, buf):
    """Backward of one projection step; ``H`` and ``gH`` are updated in place.

    In: ``H`` = H[k+1] if ``f.reconstruct`` (turned into H[k]) else H[k]; ``gH`` = dL/dH[k+1]
    (turned into dL/dH[k]); ``gc`` = dL/d(current of step k). Returns ``(gR, gP, gXn, gYn,
    s_gamma, s_alpha)``: gradients w.r.t. the post/pre spikes and new traces through this step,
    and the sums that give d gamma and d alpha (shared); per-synapse d alpha accumulates into ``galpha``.
    ``f.rule_grad=False`` (``PlasticLinear(rule_input_grad=False)``): the update's spike inputs are
    constants, so ``gR`` is zero and ``gP`` holds only the current's term.
    """
    alpha, gamma, mode, clip = k.alpha, k.gamma, k.mode, k.clip
    if f.reconstruct:
        H.addcmul_(R.unsqueeze(2), Xn.unsqueeze(1), value=-1.0).addcmul_(Yn.unsqueeze(2), P.unsqueeze(1))
        if gamma is not None:
            H.div_(gamma)
    if clip is not None:  # d clamp: pass where -clip <= pre-clip value <= clip
        pre = _stdp_update_only(H, P, R, Xn, Yn, gamma, None)
        gH.mul_((pre >= -clip) & (pre <= clip))
    # (vectors) x (matrix) bmm reads gH at full speed; (matrix) x (vectors) is several times slower on CPU
    rows = torch.bmm(torch.stack([Xn, P], 1), gH.transpose(1, 2))   # [B, 2, n_post]
    cols = torch.bmm(torch.stack([R, Yn], 1), gH)                   # [B, 2, n_pre]
    gR, gYn = rows[:, 0], -rows[:, 1]
    gXn, gP = cols[:, 0], -cols[:, 1]
    if not f.rule_grad:
        gR, gP = torch.zeros_like(gR), torch.zeros_like(gP)
    s_gamma = torch.dot(gH.reshape(-1), H.reshape(-1)) if f.want_gamma else None
    s_alpha = None
    if gamma is not None:
        gH.mul_(gamma)
    if mode == "per_synapse":
        gP = gP + torch.bmm(gc.unsqueeze(1), torch.mul(H, alpha, out=buf)).squeeze(1)
        O = torch.mul(gc.unsqueeze(2), P.unsqueeze(1), out=buf)  # gc (x) P
        gH.addcmul_(O, alpha)
        if f.want_alpha:
            for Ob in O.mul_(H):  # per sample: no [n_post, n_pre] temporary
                galpha.add_(Ob)
    else:
        v = torch.bmm(gc.unsqueeze(1), H).squeeze(1)  # gc^T H  [B, n_pre]
        if mode == "shared":
            if f.want_alpha:
                s_alpha = (v * P).sum()
            v = v * alpha
            gH.addcmul_((gc * alpha).unsqueeze(2), P.unsqueeze(1))
        else:
            gH.addcmul_(gc.unsqueeze(2), P.unsqueeze(1))
        gP = gP + v
    return gR, gP, gXn, gYn, s_gamma, s_alpha


def _stdp_bwd_fused(H, gH, P, R, Xn, Yn, gc, k: StdpArgs, galpha, f: StdpBwdFlags, buf):
    alpha, gamma, mode, clip, rule_grad = k.alpha, k.gamma, k.mode, k.clip, f.rule_grad
    Rc, Xr, Yc, Pr, gcc = R.unsqueeze(2), Xn.unsqueeze(1), Yn.unsqueeze(2), P.unsqueeze(1), gc.unsqueeze(2)
    if f.reconstruct:
        Hk = H - (Rc * Xr - Yc * Pr)
        H.copy_(Hk if gamma is None else Hk / gamma)
        del Hk
        # reconstruct in place, in a graph of its own: the rest then reads H itself, with no
        # [B, n_post, n_pre] temporary per step (fresh pages each step cost more than the kernel).
        # No B*N^2 value may stay alive across this break (it would become a graph output).
        torch._dynamo.graph_break()
    ge = gH
    if clip is not None:
        pre = (H if gamma is None else H * gamma) + (Rc * Xr - Yc * Pr)
        ge = torch.where((pre >= -clip) & (pre <= clip), gH, torch.zeros_like(gH))
    gR = (ge * Xr).sum(2) if rule_grad else torch.zeros_like(R)
    gYn = -(ge * Pr).sum(2)
    gXn = (ge * Rc).sum(1)
    s_gamma = (ge * H).sum() if f.want_gamma else None
    s_alpha = None
    O = gcc * Pr
    gHn = ge if gamma is None else ge * gamma
    if mode == "per_synapse":
        gP = ((alpha * H) * gcc - ge * Yc).sum(1) if rule_grad else ((alpha * H) * gcc).sum(1)
        gHn = gHn + alpha * O
        if f.want_alpha:
            galpha.add_((H * O).sum(0))
    else:
        v = (H * gcc).sum(1)
        if mode == "shared":
            if f.want_alpha:
                s_alpha = (v * P).sum()
            v = v * alpha
            gHn = gHn + alpha * O
        else:
            gHn = gHn + O
        gP = v - (ge * Yc).sum(1) if rule_grad else v
    gH.copy_(gHn)
    return gR, gP, gXn, gYn, s_gamma, s_alpha
