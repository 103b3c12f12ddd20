r"""Hebbian rate-RNN kernels (``PlasticRNN(rule="hebb")``): one step, no autograd.

With ``pre = [y_{t-1}, 1]`` (the 1 only with a bias unit)::

    a  = (w + alpha*H) @ pre + inp;   y = tanh(a)   (clamp: y*(1-c) + inp*c)
    H' = (1 - eta) H + eta * y (x) pre

The reference kernel composes these from :mod:`spikeplastic.functional` (bit-identical to
``PlasticRNN.step``); the in-place and fused kernels re-express them and are tested against it.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from ..functional.plasticity import hebb_step
from ..functional.synapse import plastic_current
from .backend import _call_kernel


class HebbArgs(NamedTuple):
    """The rate net's constants: fixed weights ``w`` ``[n, n_units]``, ``alpha`` (like ``w`` or 0-d), ``eta``."""

    w: Tensor
    alpha: Tensor
    eta: Tensor


class HebbBwdFlags(NamedTuple):
    """Static choices of a backward step: rebuild ``H[t]`` from ``H[t+1]`` first; return the sums for
    d eta / d alpha."""

    reconstruct: bool
    want_eta: bool
    want_alpha: bool


# ---- forward step: (H, pre, inp, c) -> (y, H') ------------------------------------------------
def _hebb_fwd_reference(H, pre, inp, c, k: HebbArgs, buf):
    """``PlasticRNN.step`` through ``functional``: ``(alpha * H) @ pre`` for per-synapse and shared
    alpha alike, as the rate net computes it."""
    y = torch.tanh(plastic_current(k.w, H, k.alpha, pre, "per_synapse") + inp)
    if c is not None:
        y = y * (1.0 - c) + inp * c
    return y, hebb_step(H, pre, y, k.eta)


def _hebb_fwd_inplace(H, pre, inp, c, k: HebbArgs, buf):
    w, alpha, eta = k
    Hs = torch.mul(H, alpha, out=buf) if alpha.dim() else H
    plastic = torch.bmm(pre.unsqueeze(1), Hs.transpose(1, 2)).squeeze(1)
    if not alpha.dim():
        plastic = plastic * alpha
    y = torch.tanh(pre @ w.t() + plastic + inp)
    if c is not None:
        y = y * (1.0 - c) + inp * c
    H.mul_(1.0 - eta).addcmul_(y.unsqueeze(2), (eta * pre).unsqueeze(1))
    return y, H


def _hebb_fwd_fused(H, pre, inp, c, k: HebbArgs, buf):
    # row j of H is read once: its reduction gives y_j, which is all the row's update needs
    w, alpha, eta = k
    Pr = pre.unsqueeze(1)
    a = ((w + alpha * H) * Pr).sum(-1) + inp
    y = torch.tanh(a)
    if c is not None:
        y = y * (1.0 - c) + inp * c
    H.copy_(H * (1.0 - eta) + eta * y.unsqueeze(2) * Pr)
    return y, H


def _hebb_fwd(backend: str, *args: Any) -> Any:
    if backend == "compile":
        return _call_kernel(backend, _hebb_fwd_fused, _hebb_fwd_inplace, *args)
    return {"reference": _hebb_fwd_reference, "inplace": _hebb_fwd_inplace}[backend](*args)


# ---- backward step -----------------------------------------------------------------------------
def _hebb_bwd_eager(H, gH, pre, y, gy, c, k: HebbArgs, galpha, f: HebbBwdFlags, buf):
    """Backward of one Hebbian step; ``H`` (H[t+1] -> H[t] if ``f.reconstruct``) and ``gH``
    (dL/dH[t+1] -> dL/dH[t]) in place. ``gy``: dL/dy_t from everything but H[t+1].

    Returns ``(ga, gyt, gpre, s_eta, s_alpha)``: dL/da_t, dL/dy_t (total), dL/dpre (through this
    step, without the fixed weights' ``w^T ga``, added by the caller), and the sums giving d eta and
    d alpha (shared).
    """
    w, alpha, eta = k
    if f.reconstruct:
        H.addcmul_(y.unsqueeze(2), (eta * pre).unsqueeze(1), value=-1.0).div_(1.0 - eta)
    r = torch.bmm(pre.unsqueeze(1), gH.transpose(1, 2)).squeeze(1)   # gH pre   [B, n_hidden]
    gpre = eta * torch.bmm(y.unsqueeze(1), gH).squeeze(1)   # eta gH^T y    [B, n_units]
    s_eta = None
    if f.want_eta:  # sum gH * (y (x) pre - H)
        s_eta = (y * r).sum() - torch.dot(gH.reshape(-1), H.reshape(-1))
    gyt = gy + eta * r
    ga = gyt * (1.0 - y * y)
    if c is not None:
        ga = ga * (1.0 - c)
    gH.mul_(1.0 - eta)
    s_alpha = None
    if alpha.dim():
        gpre = gpre + torch.bmm(ga.unsqueeze(1), torch.mul(H, alpha, out=buf)).squeeze(1)
        O = torch.mul(ga.unsqueeze(2), pre.unsqueeze(1), out=buf)
        gH.addcmul_(O, alpha)
        if f.want_alpha:
            for Ob in O.mul_(H):
                galpha.add_(Ob)
    else:
        v = torch.bmm(ga.unsqueeze(1), H).squeeze(1)
        if f.want_alpha:
            s_alpha = (v * pre).sum()
        gpre = gpre + alpha * v
        gH.addcmul_((alpha * ga).unsqueeze(2), pre.unsqueeze(1))
    return ga, gyt, gpre, s_eta, s_alpha


def _hebb_bwd_fused(H, gH, pre, y, gy, c, k: HebbArgs, galpha, f: HebbBwdFlags, buf):
    w, alpha, eta = k
    Pr, Yc = pre.unsqueeze(1), y.unsqueeze(2)
    if f.reconstruct:
        H.copy_((H - eta * Yc * Pr) / (1.0 - eta))
        torch._dynamo.graph_break()  # read H itself below (no temporary), see _stdp_bwd_fused
    r = (gH * Pr).sum(2)
    s_eta = ((y * r).sum() - (gH * H).sum(2).sum()) if f.want_eta else None
    gyt = gy + eta * r
    ga = gyt * (1.0 - y * y)
    if c is not None:
        ga = ga * (1.0 - c)
    gac = ga.unsqueeze(2)
    O = gac * Pr
    gpre = eta * torch.bmm(y.unsqueeze(1), gH).squeeze(1)
    s_alpha = None
    if alpha.dim():
        gpre = gpre + ((alpha * H) * gac).sum(1)
        if f.want_alpha:
            galpha.add_((H * O).sum(0))
    else:
        v = (H * gac).sum(1)
        if f.want_alpha:
            s_alpha = (v * pre).sum()
        gpre = gpre + alpha * v
    gH.copy_(gH * (1.0 - eta) + alpha * O)
    return ga, gyt, gpre, s_eta, s_alpha


def _hebb_bwd(backend: str, *args: Any) -> Any:
    if backend == "compile":
        return _call_kernel(backend, _hebb_bwd_fused, _hebb_bwd_eager, *args)
    return _hebb_bwd_eager(*args)
