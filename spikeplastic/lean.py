r"""Memory-lean whole-episode ops: BPTT through plastic networks without storing ``H`` per step.

Meta-learning backpropagates through every step of an episode, and every sample owns plastic
weights ``H`` ``[B, n_post, n_pre]``. Plain autograd keeps one or more such tensors per step
(memory ``O(T*B*N^2)``). The ops here are custom :class:`torch.autograd.Function`\ s whose forward
runs the time loop under ``no_grad`` with ``H`` updated in place and saves only per-step vectors
(the spikes as bits, each step's input current or -- when that costs more than one more ``H`` --
nothing, plus the rate net's activations) and a few chunk-start copies of the small state; their
backward runs backwards in time and gets ``H[t]`` back from ``H[t+1]``:

- **reverse** (invertible updates): ``H[t] = (H[t+1] - e[t]) / gamma`` with ``gamma = 1 - decay``
  (STDP) or ``1 - eta`` (Hebb). Dividing by ``gamma`` amplifies rounding by ``gamma^-1`` per step,
  so exact copies of ``H`` are kept every ``K_H`` steps with ``gamma^-K_H <= MAX_AMPLIFICATION``
  (none at all when ``gamma = 1``) and the reconstruction restarts from them. Measured: float32
  gradients through 600 reconstructed steps are as close to float64 as plain float32 BPTT
  (``tests/perf/test_lean_kernels.py``), so reconstruction is the default.
- **recompute** (not invertible: ``clip``, ``gamma = 0``, ``reconstruct="never"``, or so strong a
  decay that the copies would outnumber ``2*sqrt(T)``): copies of ``H`` every ``K`` steps (default
  ``ceil(sqrt(T))``); each chunk is recomputed forward from its copy, then backpropagated: memory
  ``O(T/K * B*N^2 + K * B*N^2)``.

Per plastic projection the peak is about three ``B*N^2`` tensors (the final ``H``, which the
caller gets and the graph saves; the backward's working copy of it, in which ``H[t]`` is rebuilt;
its adjoint; one more buffer for the eager backends' per-synapse alpha) plus ``O(T*B*N)`` bits and
currents; the time per step is a few passes over ``H``. The backward runs the kernels once per
step and never writes into what the graph saved (the final ``H``, the copies of ``H``, the
checkpoints): each backward starts from a fresh copy of the saved final ``H``, so a second backward
(``retain_graph=True``, ``gradcheck``) repeats the first bit for bit. Like any op that saves its
output, modifying the returned ``H`` in place before the backward is an autograd error.

Ops (functions) and thin wrappers (modules) that run a core model's episode the lean way with the
same parameters:

=================================  ==========================================================
:func:`plastic_lif_layer`           input spikes -> (pair-STDP or static) projection -> CUBA LIF
                                    population, optional (plastic) recurrent projection; the
                                    core :class:`~spikeplastic.network.Network`'s exact timing
                                    ``a[t] = (w + alpha*H[t-2]) @ s_pre[t-1]``
:func:`network_forward`,            a core ``Network`` that is a chain of such layers
:class:`LeanNetwork`
:func:`hebb_rnn`                    the rate :class:`~spikeplastic.baselines.PlasticRNN` Hebbian
                                    recurrence ``y_t = tanh((W + alpha*H) y_{t-1} + x_t)``,
                                    ``H_t = (1-eta) H_{t-1} + eta * outer(y_t, y_{t-1})``
:func:`plastic_rnn_forward`,        a core ``PlasticRNN`` (``rule="hebb"``)
:class:`LeanPlasticRNN`
:func:`fused_stdp_step`             one no-grad fused plastic step (synaptic input + trace update
                                    + weight update in one pass over ``H``)
=================================  ==========================================================

Backends (``backend=``): ``"reference"`` mirrors the core's ops one for one (forward bit-identical
to the core model; used by the tests); ``"inplace"`` updates ``H`` in place with ``addcmul_`` and
reads it with (vector x matrix) ``bmm`` -- no ``B*N^2`` tensor is allocated per step;
``"compile"`` writes each time step (projections + LIF) as pointwise + reduction expressions and
compiles the whole step with :func:`torch.compile` (C++/OpenMP on CPU; Triton on CUDA, untested
here: no GPU was available), so a forward step reads and writes ``H`` once and no step allocates a
``B*N^2`` temporary (fresh pages per step cost more than the kernels). ``"auto"`` picks ``"compile"`` from
``AUTO_COMPILE_MIN_ELEMENTS`` and ``"inplace"`` below; a failed compile warns once and falls back
to ``"inplace"``. The fast backends agree with the core to rounding (a float32 spike can flip
where the membrane lands within rounding of the threshold).

Example::

    >>> net = Network.feedforward([64, 32], rule="stdp")
    >>> rec, state = lean.network_forward(net, torch.bernoulli(torch.full((100, 4, 64), 0.1)))
    >>> rec.spikes["l1"].shape
    torch.Size([100, 4, 32])
"""
from __future__ import annotations

import math
import types
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .functional.plasticity import outer
from .surrogate import Surrogate

__all__ = [
    "BACKENDS",
    "MAX_AMPLIFICATION",
    "STDPParams",
    "LeanProjection",
    "LeanLIF",
    "LayerState",
    "LayerOutput",
    "plastic_lif_layer",
    "fused_stdp_step",
    "hebb_rnn",
    "network_forward",
    "check_network",
    "LeanNetwork",
    "plastic_rnn_forward",
    "check_plastic_rnn",
    "LeanPlasticRNN",
]

BACKENDS = ("auto", "reference", "inplace", "compile")
#: largest rounding amplification ``gamma^-K`` allowed between two exact copies of ``H``
MAX_AMPLIFICATION = 8.0
#: ``backend="auto"`` compiles steps with at least this many plastic-weight elements (``B*N*n``)
AUTO_COMPILE_MIN_ELEMENTS = 1 << 18


# =================================================================================================
# backends
# =================================================================================================
_COMPILED: dict[tuple, Callable[..., Any]] = {}
_COMPILE_BROKEN: list[str] = []


def _static_key(a: Any) -> Any:
    """What a compiled function specialises on: flags, and the rank/dtype/device of each tensor."""
    if isinstance(a, Tensor):
        return ("T", a.dim(), a.dtype, a.device.type)
    if isinstance(a, tuple):
        return tuple(_static_key(b) for b in a)
    return a


def _detach(a: Any) -> Any:
    # detached views share storage (in-place updates still land) and keep requires_grad out of the guards
    if isinstance(a, Tensor):
        return a.detach()
    if isinstance(a, tuple):
        return tuple(_detach(b) for b in a)
    return a


def _compiled(fn: Callable[..., Any], key: Any) -> Callable[..., Any]:
    """``torch.compile(fn)`` for one static configuration (flags, ranks, dtypes) of its arguments.

    Each configuration gets its own copy of ``fn``'s code object: dynamo keeps guards and its
    recompile budget per code object, so configurations never evict one another.
    """
    c = _COMPILED.get((fn.__name__, key))
    if c is None:
        code = fn.__code__.replace(co_name=f"{fn.__name__}_{len(_COMPILED)}")
        f = types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)
        c = torch.compile(f, dynamic=None)
        _COMPILED[(fn.__name__, key)] = c
    return c


def _call_kernel(backend: str, fused: Callable[..., Any], eager: Callable[..., Any], *args: Any) -> Any:
    """``fused(*args)`` compiled; if compilation fails (no C++ compiler, no Triton, ...) warn once and
    run ``eager(*args)`` instead for the rest of the process."""
    if backend == "compile" and not _COMPILE_BROKEN:
        dargs = _detach(args)
        try:
            return _compiled(fused, _static_key(dargs))(*dargs)
        except Exception as exc:  # a failed compile is an environment problem, not a wrong result
            _COMPILE_BROKEN.append(f"{type(exc).__name__}: {exc}")
            warnings.warn(
                f"spikeplastic.lean: torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); "
                "falling back to backend='inplace'", RuntimeWarning, stacklevel=3,
            )
    return eager(*args)


def _resolve_backend(backend: str, ref: Tensor, elements: int) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if backend != "auto":
        return backend
    if _COMPILE_BROKEN or elements < AUTO_COMPILE_MIN_ELEMENTS:
        return "inplace"
    if ref.device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return "inplace"
    return "compile"


def _f(t: Tensor | float | None) -> float | None:
    return None if t is None else float(t)


# =================================================================================================
# STDP projection kernels (one step; no autograd)
#
# Per step k of a projection pre -> post (P = s_pre[k-1], R = s_post[k-1], Lava's lag):
#   current   c  = (alpha * H) @ P                       (the fixed part w @ P is added by the caller)
#   traces    X' = X * dp + a_plus * P,  Y' = Y * dm + a_minus * R     (dp = exp(-1/tau_plus), ...)
#   update    H' = clip(gamma * H + R (x) X' - Y' (x) P)               (gamma = 1 - decay or absent)
# =================================================================================================
def _stdp_fwd_reference(H, P, R, X, Y, alpha, dp, dm, ap, am, gamma, mode, clip, buf):
    # op for op as PlasticLinear.current / STDP.step / PlasticLinear.update (bit-identical)
    if mode == "per_synapse":
        cur = torch.einsum("boi,bi->bo", alpha * H, P)
    else:
        cur = torch.einsum("boi,bi->bo", H, P)
        if mode == "shared":
            cur = alpha * cur
    Xn = X * dp + ap * P
    Yn = Y * dm + am * R
    e = outer(R, Xn) - outer(Yn, P)
    Hn = H if gamma is None else gamma * H
    Hn = Hn + e
    if clip is not None:
        Hn = Hn.clamp(-clip, clip)
    return cur, Hn, Xn, Yn


def _stdp_fwd_inplace(H, P, R, X, Y, alpha, dp, dm, ap, am, gamma, mode, clip, buf):
    # read H once with a transposed bmm (much faster than bmm(H, P[..., None]) on CPU), then a
    # rank-2 in-place update; alpha*H goes into a reused buffer (no allocation per step)
    Hs = torch.mul(H, alpha, out=buf) if mode == "per_synapse" else H
    cur = torch.bmm(P.unsqueeze(1), Hs.transpose(1, 2)).squeeze(1)
    if mode == "shared":
        cur = cur * alpha
    Xn = X * dp + ap * P
    Yn = Y * dm + am * R
    if gamma is not None:
        H.mul_(gamma)
    H.addcmul_(R.unsqueeze(2), Xn.unsqueeze(1)).addcmul_(Yn.unsqueeze(2), P.unsqueeze(1), value=-1.0)
    if clip is not None:
        H.clamp_(-clip, clip)
    return cur, H, Xn, Yn


def _stdp_fwd_fused(H, P, R, X, Y, alpha, dp, dm, ap, am, gamma, mode, clip, buf):
    # one expression: the compiler reads H once, reduces the current and writes the update
    Xn = X * dp + ap * P
    Yn = Y * dm + am * R
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


def _stdp_fwd(backend: str, *args: Any) -> Any:
    if backend == "compile":
        return _call_kernel(backend, _stdp_fwd_fused, _stdp_fwd_inplace, *args)
    return {"reference": _stdp_fwd_reference, "inplace": _stdp_fwd_inplace}[backend](*args)


def _stdp_update_only(H, P, R, Xn, Yn, gamma, clip):
    """``H' = clip(gamma*H + R (x) X' - Y' (x) P)`` out of place (chunk recomputation)."""
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


def _stdp_unstep_cur_eager(H, P, R, Xn, Yn, alpha, gamma, mode, buf):
    """``H[k+1] -> H[k]`` in place and the plastic current ``(alpha*H[k]) @ P`` (rebuilding currents)."""
    H.addcmul_(R.unsqueeze(2), Xn.unsqueeze(1), value=-1.0).addcmul_(Yn.unsqueeze(2), P.unsqueeze(1))
    if gamma is not None:
        H.div_(gamma)
    Hs = torch.mul(H, alpha, out=buf) if mode == "per_synapse" else H
    cur = torch.bmm(P.unsqueeze(1), Hs.transpose(1, 2)).squeeze(1)
    return cur * alpha if mode == "shared" else cur


def _stdp_unstep_cur_fused(H, P, R, Xn, Yn, alpha, gamma, mode, buf):
    Pr = P.unsqueeze(1)
    Hk = H - (R.unsqueeze(2) * Xn.unsqueeze(1) - Yn.unsqueeze(2) * Pr)
    H.copy_(Hk if gamma is None else Hk / gamma)
    del Hk
    torch._dynamo.graph_break()  # read H itself below (no temporary), see _stdp_bwd_fused
    cur = (H * alpha * Pr).sum(-1) if mode == "per_synapse" else (H * Pr).sum(-1)
    return cur * alpha if mode == "shared" else cur


def _stdp_bwd_eager(H, gH, P, R, Xn, Yn, gc, alpha, gamma, galpha, mode, clip, reconstruct, want_gamma, want_alpha, buf,
                    rule_grad=True):
    """Backward of one projection step (see module notes); ``H`` and ``gH`` are updated in place.

    In: ``H`` = H[k+1] if ``reconstruct`` (turned into H[k]) else H[k]; ``gH`` = dL/dH[k+1]
    (turned into dL/dH[k]); ``gc`` = dL/d(current of step k). Returns ``(gR, gP, gXn, gYn,
    s_gamma, s_alpha)``: gradients w.r.t. the post/pre spikes and new traces through this step,
    and the sums that give d gamma and d alpha (shared); per-synapse d alpha accumulates into ``galpha``.
    ``rule_grad=False`` (``PlasticLinear(rule_input_grad=False)``): the update's spike inputs are
    constants, so ``gR`` is zero and ``gP`` holds only the current's term.
    """
    if reconstruct:
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
    if not rule_grad:
        gR, gP = torch.zeros_like(gR), torch.zeros_like(gP)
    s_gamma = torch.dot(gH.reshape(-1), H.reshape(-1)) if want_gamma else None
    s_alpha = None
    if gamma is not None:
        gH.mul_(gamma)
    if mode == "per_synapse":
        gP = gP + torch.bmm(gc.unsqueeze(1), torch.mul(H, alpha, out=buf)).squeeze(1)
        O = torch.mul(gc.unsqueeze(2), P.unsqueeze(1), out=buf)  # gc (x) P
        gH.addcmul_(O, alpha)
        if want_alpha:
            for Ob in O.mul_(H):  # per sample: no [n_post, n_pre] temporary
                galpha.add_(Ob)
    else:
        v = torch.bmm(gc.unsqueeze(1), H).squeeze(1)  # gc^T H  [B, n_pre]
        if mode == "shared":
            if want_alpha:
                s_alpha = (v * P).sum()
            v = v * alpha
            gH.addcmul_((gc * alpha).unsqueeze(2), P.unsqueeze(1))
        else:
            gH.addcmul_(gc.unsqueeze(2), P.unsqueeze(1))
        gP = gP + v
    return gR, gP, gXn, gYn, s_gamma, s_alpha


def _stdp_bwd_fused(H, gH, P, R, Xn, Yn, gc, alpha, gamma, galpha, mode, clip, reconstruct, want_gamma, want_alpha, buf,
                    rule_grad=True):
    Rc, Xr, Yc, Pr, gcc = R.unsqueeze(2), Xn.unsqueeze(1), Yn.unsqueeze(2), P.unsqueeze(1), gc.unsqueeze(2)
    if reconstruct:
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
    s_gamma = (ge * H).sum() if want_gamma else None
    s_alpha = None
    O = gcc * Pr
    gHn = ge if gamma is None else ge * gamma
    if mode == "per_synapse":
        gP = ((alpha * H) * gcc - ge * Yc).sum(1) if rule_grad else ((alpha * H) * gcc).sum(1)
        gHn = gHn + alpha * O
        if want_alpha:
            galpha.add_((H * O).sum(0))
    else:
        v = (H * gcc).sum(1)
        if mode == "shared":
            if want_alpha:
                s_alpha = (v * P).sum()
            v = v * alpha
            gHn = gHn + alpha * O
        else:
            gHn = gHn + O
        gP = v - (ge * Yc).sum(1) if rule_grad else v
    gH.copy_(gHn)
    return gR, gP, gXn, gYn, s_gamma, s_alpha


# =================================================================================================
# Hebbian rate-RNN kernels (PlasticRNN, rule="hebb"; one step, no autograd)
#   pre = [y_{t-1}, 1];  a = (W + alpha*H) pre + x_t;  y = tanh(a) (clamp: y*(1-c) + x*c)
#   H' = (1 - eta) H + eta * y (x) pre
# =================================================================================================
def _hebb_fwd_reference(H, pre, inp, c, w, alpha, eta, buf):
    # op for op as PlasticRNN.step / plastic_matvec / hebb_step (bit-identical)
    fixed = pre @ w.t()
    plastic = torch.bmm(alpha * H, pre.unsqueeze(-1)).squeeze(-1)
    y = torch.tanh(fixed + plastic + inp)
    if c is not None:
        y = y * (1.0 - c) + inp * c
    Hn = (1.0 - eta) * H + eta * outer(y, pre)
    return y, Hn


def _hebb_fwd_inplace(H, pre, inp, c, w, alpha, eta, buf):
    Hs = torch.mul(H, alpha, out=buf) if alpha.dim() else H
    plastic = torch.bmm(pre.unsqueeze(1), Hs.transpose(1, 2)).squeeze(1)
    if not alpha.dim():
        plastic = plastic * alpha
    y = torch.tanh(pre @ w.t() + plastic + inp)
    if c is not None:
        y = y * (1.0 - c) + inp * c
    H.mul_(1.0 - eta).addcmul_(y.unsqueeze(2), (eta * pre).unsqueeze(1))
    return y, H


def _hebb_fwd_fused(H, pre, inp, c, w, alpha, eta, buf):
    # row j of H is read once: its reduction gives y_j, which is all the row's update needs
    Pr = pre.unsqueeze(1)
    a = ((w + alpha * H) * Pr).sum(-1) + inp
    y = torch.tanh(a)
    if c is not None:
        y = y * (1.0 - c) + inp * c
    H.copy_(H * (1.0 - eta) + eta * y.unsqueeze(2) * Pr)
    return y, H


def _hebb_fwd(backend, *args):
    if backend == "compile":
        return _call_kernel(backend, _hebb_fwd_fused, _hebb_fwd_inplace, *args)
    return {"reference": _hebb_fwd_reference, "inplace": _hebb_fwd_inplace}[backend](*args)


def _hebb_bwd_eager(H, gH, pre, y, gy, c, w, alpha, eta, galpha, reconstruct, want_eta, want_alpha, buf):
    """Backward of one Hebbian step; ``H`` (H[t+1] -> H[t] if ``reconstruct``) and ``gH``
    (dL/dH[t+1] -> dL/dH[t]) in place. ``gy``: dL/dy_t from everything but H[t+1].

    Returns ``(ga, gyt, gpre, s_eta, s_alpha)``: dL/da_t, dL/dy_t (total), dL/dpre (through this
    step, without the fixed weights' ``w^T ga``, added by the caller), and the sums giving d eta and
    d alpha (shared).
    """
    if reconstruct:
        H.addcmul_(y.unsqueeze(2), (eta * pre).unsqueeze(1), value=-1.0).div_(1.0 - eta)
    r = torch.bmm(pre.unsqueeze(1), gH.transpose(1, 2)).squeeze(1)   # gH pre   [B, n_hidden]
    gpre = eta * torch.bmm(y.unsqueeze(1), gH).squeeze(1)   # eta gH^T y    [B, n_units]
    s_eta = None
    if want_eta:  # sum gH * (y (x) pre - H)
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
        if want_alpha:
            for Ob in O.mul_(H):
                galpha.add_(Ob)
    else:
        v = torch.bmm(ga.unsqueeze(1), H).squeeze(1)
        if want_alpha:
            s_alpha = (v * pre).sum()
        gpre = gpre + alpha * v
        gH.addcmul_((alpha * ga).unsqueeze(2), pre.unsqueeze(1))
    return ga, gyt, gpre, s_eta, s_alpha


def _hebb_bwd_fused(H, gH, pre, y, gy, c, w, alpha, eta, galpha, reconstruct, want_eta, want_alpha, buf):
    Pr, Yc = pre.unsqueeze(1), y.unsqueeze(2)
    if reconstruct:
        H.copy_((H - eta * Yc * Pr) / (1.0 - eta))
        torch._dynamo.graph_break()  # read H itself below (no temporary), see _stdp_bwd_fused
    r = (gH * Pr).sum(2)
    s_eta = ((y * r).sum() - (gH * H).sum(2).sum()) if want_eta else None
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
        if want_alpha:
            galpha.add_((H * O).sum(0))
    else:
        v = (H * gac).sum(1)
        if want_alpha:
            s_alpha = (v * pre).sum()
        gpre = gpre + alpha * v
    gH.copy_(gH * (1.0 - eta) + alpha * O)
    return ga, gyt, gpre, s_eta, s_alpha


def _hebb_bwd(backend, *args):
    if backend == "compile":
        return _call_kernel(backend, _hebb_bwd_fused, _hebb_bwd_eager, *args)
    return _hebb_bwd_eager(*args)


# =================================================================================================
# checkpoint plan
# =================================================================================================
def _reverse_interval(T: int, gamma: float | None) -> int | None:
    """Steps between exact copies of ``H`` for the reverse mode (``None``: not invertible)."""
    if gamma is None or gamma == 1.0:
        return T
    if not 0.0 < gamma < 1.0 + 1e-12 or not math.isfinite(gamma):
        return None
    k = int(math.log(MAX_AMPLIFICATION) / -math.log(gamma)) if gamma < 1.0 else T
    return max(1, min(T, k))


def _chunk(T: int, checkpoint_every: int | None, recompute: bool) -> int:
    if checkpoint_every is not None:
        if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be an int >= 1 or None, got {checkpoint_every!r}")
        return min(T, checkpoint_every)
    if recompute:
        return max(1, math.ceil(math.sqrt(T)))
    return min(T, 16)


def _check_reconstruct(reconstruct: str) -> None:
    if reconstruct not in ("auto", "never"):
        raise ValueError(f"reconstruct must be 'auto' or 'never', got {reconstruct!r}")


# =================================================================================================
# spiking layer: (plastic) projection(s) into a CUBA LIF population
# =================================================================================================
class STDPParams(NamedTuple):
    """Mapped pair-STDP parameters (0-d tensors or floats): impulses ``a_plus``/``a_minus`` and
    time constants ``tau_plus``/``tau_minus`` (in steps), as :class:`~spikeplastic.rules.STDP` maps them."""

    a_plus: Tensor | float
    a_minus: Tensor | float
    tau_plus: Tensor | float
    tau_minus: Tensor | float


class LeanProjection(NamedTuple):
    """One projection into the layer: ``W = weight + alpha * H`` with ``H`` learned by ``stdp``.

    ``weight`` ``[n_post, n_pre]``; ``stdp=None`` makes it static (``alpha``, ``decay``, ``clip``
    unused); ``alpha``: ``[n_post, n_pre]`` (per synapse), 0-d (shared) or ``None`` (coefficient 1);
    ``decay``: 0-d rate in [0, 1] pulling ``H`` to 0 each step, or ``None`` for none at all;
    ``clip``: clamp ``H`` to ``[-clip, clip]`` (not invertible: chunked recomputation);
    ``rule_input_grad``: as :class:`~spikeplastic.PlasticLinear`'s (``False``: no gradient from the
    update back into the spikes it reads).
    """

    weight: Tensor
    stdp: STDPParams | None = None
    alpha: Tensor | None = None
    decay: Tensor | float | None = None
    clip: float | None = None
    rule_input_grad: bool = True


class LeanLIF(NamedTuple):
    """Mapped CUBA LIF parameters (scalars or ``[n]``) and its options, as :class:`~spikeplastic.neurons.LIF`."""

    du: Tensor | float
    dv: Tensor | float
    vth: Tensor | float
    bias: Tensor | float
    spike_fn: Surrogate
    reset: str = "zero"
    detach_reset: bool = True


class LayerState(NamedTuple):
    """State of a lean layer between episodes (``None`` where a projection is absent or static).

    ``u, v, s`` ``[B, n]`` (LIF); ``x_prev`` ``[B, n_in]`` (last input, consumed next step);
    ``H_ff [B, n, n_in]``, ``x_ff [B, n_in]``, ``y_ff [B, n]``: plastic part and STDP traces of the
    feed-forward projection; ``H_rec``, ``x_rec``, ``y_rec``: same for the recurrent one.
    """

    u: Tensor
    v: Tensor
    s: Tensor
    x_prev: Tensor
    H_ff: Tensor | None = None
    x_ff: Tensor | None = None
    y_ff: Tensor | None = None
    H_rec: Tensor | None = None
    x_rec: Tensor | None = None
    y_rec: Tensor | None = None


class LayerOutput(NamedTuple):
    """``spikes`` ``[T, B, n]``; ``voltages`` (post-reset ``v``) and ``currents`` (``u``) when requested."""

    spikes: Tensor
    voltages: Tensor | None
    currents: Tensor | None


@dataclass(frozen=True)
class _ProjSpec:
    plastic: bool
    mode: str          # alpha: "per_synapse" | "shared" | "none"
    clip: float | None
    has_gamma: bool
    rule_grad: bool = True  # gradients from the update back into its spike inputs


@dataclass(frozen=True)
class _LayerSpec:
    ff: _ProjSpec
    rec: _ProjSpec | None
    rec_first: bool
    spike_fn: Surrogate
    reset: str
    detach_reset: bool
    record_v: bool
    record_u: bool
    backend: str
    checkpoint_every: int | None
    reconstruct: str
    x_as_bool: bool
    store_currents: bool


_PROJ_FIELDS = 10  # w, alpha, a_plus, a_minus, dp, dm, gamma, H0, X0, Y0


def _pre_chunk(x: Tensor, xp0: Tensor, k0: int, k1: int) -> Tensor:
    """Presynaptic activity ``P_k = x[k-1]`` (``P_0 = x_prev``) for ``k`` in ``[k0, k1)`` -> ``[k1-k0, B, n]``."""
    if k0 == 0:
        return torch.cat([xp0.unsqueeze(0), x[: k1 - 1]], 0)
    return x[k0 - 1 : k1 - 1]


def _reduce_like(acc: Tensor, like: Tensor) -> Tensor:
    """Sum a ``[B, n]`` (or any) accumulator down to the shape of parameter ``like`` (0-d or ``[n]``)."""
    if like.dim() == 0:
        return acc.sum()
    while acc.dim() > like.dim():
        acc = acc.sum(0)
    return acc


_BITS = (1, 2, 4, 8, 16, 32, 64, 128)


def _pack_bits(s: Tensor) -> Tensor:
    """0/1 spikes ``[..., n]`` -> ``uint8`` ``[..., ceil(n/8)]`` (the backward keeps 1 bit per spike)."""
    n = s.shape[-1]
    b = s.to(torch.uint8)
    if n % 8:
        b = torch.nn.functional.pad(b, (0, 8 - n % 8))
    w = torch.tensor(_BITS, dtype=torch.uint8, device=s.device)
    return (b.unflatten(-1, (-1, 8)) * w).sum(-1, dtype=torch.uint8)


def _unpack_bits(p: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    w = torch.tensor(_BITS, dtype=torch.uint8, device=p.device)
    return (p.unsqueeze(-1).bitwise_and(w) != 0).flatten(-2)[..., :n].to(dtype)


class _Proj:
    """Run-time state of one projection inside :class:`_LIFLayerFn` (forward and backward)."""

    def __init__(self, spec: _ProjSpec, t: Sequence[Tensor | None], T: int, reconstruct: str) -> None:
        self.spec = spec
        self.w, self.alpha, self.ap, self.am, self.dp, self.dm, self.gamma, self.H0, self.X0, self.Y0 = t
        self.mode_bwd: str | None = None
        self.k_h = T
        if spec.plastic:
            g = _f(self.gamma)
            k_rev = None if (spec.clip is not None or reconstruct == "never") else _reverse_interval(T, g)
            if k_rev is not None and T / k_rev > 2.0 * math.sqrt(T):
                k_rev = None  # so many copies that chunked recomputation is leaner
            self.mode_bwd = "recompute" if k_rev is None else "reverse"
            self.k_h = T if k_rev is None else k_rev

    @property
    def recompute(self) -> bool:
        return self.mode_bwd == "recompute"

    def prm(self) -> tuple:
        return (self.alpha, self.dp, self.dm, self.ap, self.am, self.gamma)

    # what a backward keeps on the projection while it runs (workspace, adjoints, sums, buffers)
    _BACKWARD_ONLY = ("Hw", "gH", "gX", "gY", "gw", "galpha", "s_alpha", "s_gamma", "gdp", "gdm", "gap", "gam",
                      "gamma_d", "want_alpha", "want_gamma", "recon", "buf", "spare", "Xc", "Yc", "GX", "GY", "GP", "Hs")

    def release_backward(self) -> None:
        """Drop what a backward left here: the graph keeps only what the forward saved."""
        for k in self._BACKWARD_ONLY:
            self.__dict__.pop(k, None)


def _lif_chunk(C: Tensor, S: Tensor, u: Tensor, v: Tensor, one_du, one_dv, vth, bias, reset: str):
    """Re-run the LIF of a chunk from its start state with the stored input currents ``C`` ``[L,B,n]``
    and spikes ``S`` ``[L+1,B,n]`` (``S[0]`` the spikes before the chunk). Same ops as the forward.
    Returns ``u`` ``[L+1]``, post-reset ``v`` ``[L+1]``, pre-threshold ``v`` ``[L]``."""
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


_FWD_KERNELS = {"reference": None, "inplace": None, "fused": None}  # filled below


def _layer_fwd_step(kind, P, s, u, v, a_ff, f_w, f_H, f_X, f_Y, f_prm, r_w, r_H, r_X, r_Y, r_prm,
                    one_du, one_dv, vth, bias, flags, f_buf, r_buf):
    """One forward step of a layer (currents of both projections, their plasticity, the LIF).

    ``kind`` picks the projection kernel (``"reference"``, ``"inplace"``, ``"fused"``); ``flags`` =
    ``(ff_mode, ff_clip, rec_mode, rec_clip, rec_first, reset)``; ``*_prm`` = ``(alpha, dp, dm,
    a_plus, a_minus, gamma)`` of a plastic projection, else ``None``. ``H`` tensors are updated in
    place except by the reference kernel. Compiled whole for the ``compile`` backend.
    """
    ff_mode, ff_clip, rec_mode, rec_clip, rec_first, reset = flags
    kern = _FWD_KERNELS[kind]
    if a_ff is None:
        a_ff = P @ f_w.t()
    if f_prm is not None:
        alpha, dp, dm, ap, am, gamma = f_prm
        cur, f_H, f_X, f_Y = kern(f_H, P, s, f_X, f_Y, alpha, dp, dm, ap, am, gamma, ff_mode, ff_clip, f_buf)
        a_ff = a_ff + cur
    c = a_ff
    if r_w is not None:
        a_r = s @ r_w.t()
        if r_prm is not None:
            alpha, dp, dm, ap, am, gamma = r_prm
            cur, r_H, r_X, r_Y = kern(r_H, s, s, r_X, r_Y, alpha, dp, dm, ap, am, gamma, rec_mode, rec_clip, r_buf)
            a_r = a_r + cur
        c = a_r + a_ff if rec_first else a_ff + a_r
    # CUBA LIF, op for op as functional.lif_step
    u = u * one_du + c
    v = v * one_dv + u + bias
    if reset == "subtract":
        v = v - s * vth
    s = (v - vth > 0).to(v.dtype)
    if reset == "zero":
        v = v * (1 - s)
    return s, u, v, c, f_H, f_X, f_Y, r_H, r_X, r_Y


def _layer_bwd_step(kind, gs, gv, gu, s1, vp, sg, R, one_du, one_dv, vth,
                    P, f_H, f_gH, f_X1, f_Y1, f_gX, f_gY, f_prm, f_galpha, f_buf,
                    r_w, r_H, r_gH, r_X1, r_Y1, r_gX, r_gY, r_prm, r_galpha, r_buf, flags):
    """Backward of one layer step ``k`` (see :func:`_layer_fwd_step`); ``H``/``gH`` in place.

    In: ``gs``, ``gv``, ``gu``: dL/d s_{k+1}, v_{k+1}, u_{k+1} from everything later; ``s1`` =
    s_{k+1}, ``vp`` its pre-reset voltage, ``sg`` the surrogate derivative there; ``R`` = s_k;
    ``*_X1``/``*_Y1`` the traces after step k; ``*_gX``/``*_gY`` their adjoints from later steps.
    ``flags`` = ``(reset, detach_reset, ff_plastic, ff_mode, ff_clip, ff_recon, ff_want_gamma,
    ff_want_alpha, rec_kind, rec_mode, rec_clip, rec_recon, rec_want_gamma, rec_want_alpha,
    rec_first, ff_rule_grad, rec_rule_grad)`` with ``rec_kind`` 0 (none), 1 (static), 2 (plastic).
    Returns ``(gR, gv, gu, gxs, gvp, gc, ff, rec)``: dL/d s_k, v_k, u_k; the spike and voltage
    terms and dL/d(current) for the parameter sums; per plastic projection ``(gX1, gY1, gX, gY,
    gP, s_gamma, s_alpha)`` = total trace adjoints after step k (for parameter sums), the ones
    before it, dL/d pre (ff only; without the fixed and impulse terms) and the decay/alpha sums.
    """
    (reset, detach_reset, ff_plastic, ff_mode, ff_clip, ff_recon, ff_wg, ff_wa,
     rec_kind, rec_mode, rec_clip, rec_recon, rec_wg, rec_wa, rec_first, ff_rg, rec_rg) = flags
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
        gR = -gvp * vth
    gu = gu + gvp
    gc = gu
    gv_prev = gvp * one_dv
    gu_prev = gu * one_du
    # ---- projections ----
    ff_out = rec_out = None

    def proj(H, gH, Pk, X1, Y1, gX, gY, prm, galpha, buf, mode, clip, recon, wg, wa, rg):
        alpha, dp, dm, ap, am, gamma = prm
        gRp, gPp, gXn, gYn, sgm, sal = kern(H, gH, Pk, R, X1, Y1, gc, alpha, gamma, galpha, mode, clip, recon, wg, wa, buf, rg)
        gX = gX + gXn
        gY = gY + gYn
        # the traces' impulse terms (am * R, ap * P) carry gradient into the spikes only with rg
        return (gRp + am * gY) if rg else gRp, gPp, gX, gY, gX * dp, gY * dm, sgm, sal, ap

    def do_ff(gR):
        nonlocal ff_out
        if ff_plastic:
            gRp, gPp, gX1, gY1, gXn, gYn, sgm, sal, _ = proj(
                f_H, f_gH, P, f_X1, f_Y1, f_gX, f_gY, f_prm, f_galpha, f_buf, ff_mode, ff_clip, ff_recon, ff_wg, ff_wa, ff_rg)
            ff_out = (gX1, gY1, gXn, gYn, gPp, sgm, sal)
            gR = gRp if gR is None else gR + gRp
        return gR

    def do_rec(gR):
        nonlocal rec_out
        if rec_kind:
            gr = gc @ r_w
            gR = gr if gR is None else gR + gr
        if rec_kind == 2:
            gRp, gPp, gX1, gY1, gXn, gYn, sgm, sal, ap = proj(
                r_H, r_gH, R, r_X1, r_Y1, r_gX, r_gY, r_prm, r_galpha, r_buf, rec_mode, rec_clip, rec_recon, rec_wg, rec_wa,
                rec_rg)
            rec_out = (gX1, gY1, gXn, gYn, None, sgm, sal)
            gR = gR + gRp + gPp + (ap * gX1 if rec_rg else 0.0)
        return gR

    if rec_first:
        gR = do_ff(do_rec(gR))
    else:
        gR = do_rec(do_ff(gR))
    if gR is None:
        gR = torch.zeros_like(gc)
    return gR, gv_prev, gu_prev, gxs, gvp, gc, ff_out, rec_out


class _LIFLayerFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spec: _LayerSpec, x, xp0, u0, v0, s0, du, dv, vth, bias, *pt):  # type: ignore[override]
        T, B = x.shape[0], x.shape[1]
        N = u0.shape[-1]
        ff = _Proj(spec.ff, pt[:_PROJ_FIELDS], T, spec.reconstruct)
        rec = _Proj(spec.rec, pt[_PROJ_FIELDS:], T, spec.reconstruct) if spec.rec else None
        projs = [p for p in ((rec, ff) if spec.rec_first else (ff, rec)) if p is not None]
        plastic = [p for p in projs if p.spec.plastic]
        Kv = _chunk(T, spec.checkpoint_every, any(p.recompute for p in plastic))
        for p in plastic:
            if p.recompute:
                p.k_h = Kv
        save = any(ctx.needs_input_grad)
        be = spec.backend
        one_du, one_dv = 1 - du, 1 - dv
        dtype = u0.dtype
        S = x.new_empty(T, B, N, dtype=dtype)
        V = x.new_empty(T, B, N, dtype=dtype) if spec.record_v else None
        U = x.new_empty(T, B, N, dtype=dtype) if spec.record_u else None
        C = x.new_empty(T, B, N, dtype=dtype) if (save and spec.store_currents) else None
        u, v, s = u0.detach(), v0.detach(), s0.detach()
        vth_d, bias_d = vth.detach(), bias.detach()
        one_du, one_dv = one_du.detach(), one_dv.detach()
        for p in plastic:
            p.H = p.H0.detach().clone() if p.H0 is not None else p.w.new_zeros(B, *p.w.shape)
            p.X, p.Y = p.X0.detach(), p.Y0.detach()
            p.buf = torch.empty_like(p.H) if (p.spec.mode == "per_synapse" and be == "inplace") else None
            p.ckpt = {}
        f_prm = _detach(ff.prm()) if ff.spec.plastic else None
        r_prm = _detach(rec.prm()) if (rec is not None and rec.spec.plastic) else None
        w_ff, w_rec = ff.w.detach(), None if rec is None else rec.w.detach()
        flags = (spec.ff.mode, spec.ff.clip, None if rec is None else rec.spec.mode,
                 None if rec is None else rec.spec.clip, spec.rec_first, spec.reset)
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
            fp, rp = (ff if ff.spec.plastic else None), (rec if r_prm is not None else None)
            s, u, v, c, fH, fX, fY, rH, rX, rY = step(
                P, s, u, v, None if fixed_ff is None else fixed_ff[k % Kv], w_ff,
                fp and fp.H, fp and fp.X, fp and fp.Y, f_prm,
                w_rec, rp and rp.H, rp and rp.X, rp and rp.Y, r_prm,
                one_du, one_dv, vth_d, bias_d, flags, fp and fp.buf, rp and rp.buf)
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

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gS, gV, gU, guT, gvT, *gp):  # type: ignore[override]
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
            p.gamma_d = None if p.gamma is None else p.gamma.detach()
            p.want_alpha = p.spec.mode != "none" and needp(p, 1)
            p.want_gamma = p.spec.has_gamma and needp(p, 6)
            p.galpha = torch.zeros_like(p.alpha) if (p.want_alpha and p.spec.mode == "per_synapse") else None
            p.s_alpha = p.s_gamma = None
            p.gdp = p.gdm = p.gap = p.gam = None
            p.buf = torch.empty_like(HT) if (p.spec.mode == "per_synapse" and (be != "compile" or p.recompute)) else None
            # without stored currents, each chunk is first swept to rebuild them: keep H at its end
            p.spare = torch.empty_like(HT) if (C is None and not p.recompute) else None
        for p in projs:
            p.gw = torch.zeros_like(p.w) if needp(p, 0) else None
        acc: dict[str, Tensor | None] = {k: None for k in ("du", "dv", "vth", "bias")}
        gx = torch.zeros(T, B, ctx.x_n, dtype=ctx.x_dtype, device=Sb.device) if need[1] else None
        gxp0 = None
        fpl = ff if ff.spec.plastic else None
        rpl = rec if (rec is not None and rec.spec.plastic) else None
        f_prm = _detach(ff.prm()) if fpl else None
        r_prm = _detach(rec.prm()) if rpl else None
        w_rec = None if rec is None else rec.w.detach()
        vth_d, one_du, one_dv = vth.detach(), one_du.detach(), one_dv.detach()
        # reverse mode: H[k+1] -> H[k] runs as its own (compiled) call before each step, so the
        # step's graph reads H in place and allocates no B*N^2 temporary
        for p in plastic:
            p.recon = False
        flags = (spec.reset, spec.detach_reset, fpl is not None, ff.spec.mode, ff.spec.clip,
                 fpl is not None and fpl.recon, fpl is not None and fpl.want_gamma,
                 fpl is not None and fpl.want_alpha, 0 if rec is None else (2 if rpl else 1),
                 rpl and rpl.spec.mode, rpl and rpl.spec.clip, rpl is not None and rpl.recon,
                 rpl is not None and rpl.want_gamma, rpl is not None and rpl.want_alpha, spec.rec_first,
                 fpl is None or fpl.spec.rule_grad, rpl is None or rpl.spec.rule_grad)
        rec_kind = 0 if rec is None else (2 if rpl else 1)

        def add(a: Tensor | None, b: Tensor | None) -> Tensor | None:
            return b if a is None else (a if b is None else a + b)

        step = _StepRunner(_layer_bwd_step, be)
        n_chunks = (T + Kv - 1) // Kv
        for ci in range(n_chunks - 1, -1, -1):
            k0 = ci * Kv
            k1 = min(T, k0 + Kv)
            L = k1 - k0
            u_c, v_c, tr_c = ctx.vec_ckpt[k0]
            Pc = pre_chunk(k0, k1)                                             # P_k, k in [k0, k1)
            Sc = _unpack_bits(Sb[max(k0 - 1, 0):k1], N, dtype)                # s_k, k in [k0, k1]
            if k0 == 0:
                Sc = torch.cat([s0.detach().unsqueeze(0), Sc], 0)
            curs: dict[int, list[Tensor]] = {}
            for p, (X, Y) in zip(plastic, tr_c):
                pre_c = Pc if p is ff else Sc[:-1]
                Xs, Ys = [X], [Y]
                for i in range(L):
                    Xs.append(Xs[-1] * p.dp + p.ap * pre_c[i])
                    Ys.append(Ys[-1] * p.dm + p.am * Sc[i])
                p.Xc, p.Yc = torch.stack(Xs), torch.stack(Ys)
                if p.recompute:  # H_k for k in [k0, k1) from the chunk's copy, same kernel as the forward
                    kern = _FWD_KERNELS["inplace" if be == "compile" else be]
                    Hs, cs = [p.ckpt[k0]], []
                    for i in range(L if C is None else L - 1):
                        cur, Hn, _, _ = kern(Hs[-1].clone(), pre_c[i], Sc[i], Xs[i], Ys[i], p.alpha, p.dp, p.dm,
                                             p.ap, p.am, p.gamma, p.spec.mode, p.spec.clip, p.buf)
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
                                             p.Xc[i + 1], p.Yc[i + 1], p.alpha.detach() if p.alpha is not None else None,
                                             None if p.gamma is None else p.gamma.detach(), p.spec.mode, p.buf)
                    p.Hw.copy_(p.spare)
                    curs[id(p)] = cs
            if C is not None:
                Cc = C[k0:k1]
            else:  # input currents of the chunk, summed in the forward's order
                Cc = None
                for p in projs:
                    pre_c = Pc if p is ff else Sc[:-1]
                    a = pre_c @ p.w.detach().t()
                    if p.spec.plastic:
                        a = a + torch.stack(curs[id(p)])
                    Cc = a if Cc is None else Cc + a
            curs.clear()
            Uc, Vc, VPc = _lif_chunk(Cc, Sc, u_c, v_c, one_du, one_dv, vth, bias, spec.reset)
            SG = spec.spike_fn.grad(VPc - vth)
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
            outs: dict[int, list] = {id(p): [None] * L for p in plastic}
            for i in range(L - 1, -1, -1):
                k = k0 + i
                gs = gR_carry if gS_ is None else gR_carry + gS_[i]
                if gV_ is not None:
                    gv = gv + gV_[i]
                if gU_ is not None:
                    gu = gu + gU_[i]
                Hf = Hr = None
                for p in plastic:
                    if p.recompute:
                        H = p.Hs[i]
                    else:
                        H = p.Hw
                        if (k + 1) in p.ckpt:
                            H.copy_(p.ckpt[k + 1])
                        Xs_ = Xf_ if p is ff else Xr_
                        Ys_ = Yf_ if p is ff else Yr_
                        _call_kernel(be, _stdp_recon_fused, _stdp_recon_eager, H, P_[i] if p is ff else S_[i], S_[i],
                                     Xs_[i + 1], Ys_[i + 1], p.gamma_d)
                    if p is ff:
                        Hf = H
                    else:
                        Hr = H
                gR_carry, gv, gu, GXS_[i], GVP_[i], GC_[i], fo, ro = step(
                    gs, gv, gu, S_[i + 1], VP_[i], SG_[i], S_[i], one_du, one_dv, vth_d,
                    P_[i], Hf, fpl and fpl.gH, Xf_ and Xf_[i + 1], Yf_ and Yf_[i + 1], fpl and fpl.gX,
                    fpl and fpl.gY, f_prm, fpl and fpl.galpha, fpl and fpl.buf,
                    w_rec, Hr, rpl and rpl.gH, Xr_ and Xr_[i + 1], Yr_ and Yr_[i + 1],
                    rpl and rpl.gX, rpl and rpl.gY, r_prm, rpl and rpl.galpha, rpl and rpl.buf, flags)
                if fpl is not None:
                    outs[id(fpl)][i] = fo
                    fpl.gX, fpl.gY = fo[2], fo[3]
                if rpl is not None:
                    outs[id(rpl)][i] = ro
                    rpl.gX, rpl.gY = ro[2], ro[3]
            GC, GVP, GXS = torch.stack(GC_), torch.stack(GVP_), torch.stack(GXS_)
            for p in plastic:
                o = outs[id(p)]
                p.GX = torch.stack([q[0] for q in o])
                p.GY = torch.stack([q[1] for q in o])
                if p is ff:
                    p.GP = torch.stack([q[4] for q in o])
                if o[0][5] is not None:
                    p.s_gamma = add(p.s_gamma, torch.stack([q[5] for q in o]).sum())
                if o[0][6] is not None:
                    p.s_alpha = add(p.s_alpha, torch.stack([q[6] for q in o]).sum())
            # ---- chunk reductions: parameters and input gradients ----
            acc["bias"] = add(acc["bias"], GVP.sum(0))
            acc["dv"] = add(acc["dv"], -(GVP * Vc[:-1]).sum(0))
            acc["du"] = add(acc["du"], -(GC * Uc[:-1]).sum(0))
            gvth = -GXS.sum(0)
            if spec.reset == "subtract":
                gvth = gvth - (GVP * Sc[:-1]).sum(0)
            acc["vth"] = add(acc["vth"], gvth)
            GC2 = GC.reshape(L * B, N)
            for p in projs:
                pre_c = Pc if p is ff else Sc[:-1]
                if p.gw is not None:
                    p.gw += GC2.t() @ pre_c.reshape(L * B, -1)
                if p.spec.plastic:
                    if needp(p, 4):
                        p.gdp = add(p.gdp, (p.GX * p.Xc[:-1]).sum())
                    if needp(p, 5):
                        p.gdm = add(p.gdm, (p.GY * p.Yc[:-1]).sum())
                    if needp(p, 2):
                        p.gap = add(p.gap, (p.GX * pre_c).sum())
                    if needp(p, 3):
                        p.gam = add(p.gam, (p.GY * Sc[:-1]).sum())
            if need[1] or need[2]:
                gPc = GC @ ff.w
                if fpl is not None:
                    gPc = gPc + ff.GP + (ff.ap * ff.GX if ff.spec.rule_grad else 0.0)
                gPc = gPc.to(ctx.x_dtype)
                if k0 == 0:
                    gxp0 = gPc[0]
                    if gx is not None and L > 1:
                        gx[: L - 1] = gPc[1:]
                elif gx is not None:
                    gx[k0 - 1 : k1 - 1] = gPc
            for p in plastic:
                p.Xc = p.Yc = p.GX = p.GY = p.GP = p.Hs = None
        # ---- assemble ----
        def grad_param(name: str, like: Tensor, i: int) -> Tensor | None:
            a = acc[name]
            return None if (not need[i] or a is None) else _reduce_like(a, like)

        out: list[Tensor | None] = [
            None, gx, gxp0 if need[2] else None,
            gu if need[3] else None, gv if need[4] else None, gR_carry if need[5] else None,
            grad_param("du", du, 6), grad_param("dv", dv, 7), grad_param("vth", vth, 8), grad_param("bias", bias, 9),
        ]
        for j, p in enumerate((ff, rec)):
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
                    p.gH if needp(p, 7) else None, p.gX if needp(p, 8) else None, p.gY if needp(p, 9) else None]
        for p in projs:
            p.release_backward()
        return tuple(out)


_FWD_KERNELS.update(reference=_stdp_fwd_reference, inplace=_stdp_fwd_inplace, fused=_stdp_fwd_fused)


class _StepRunner:
    """Calls a whole-step function for one run (one forward or backward pass).

    ``compile``: the step is compiled with the fused kernels, once per static configuration (the
    key is computed on the first call only); tensors must already be detached. If compilation
    fails it warns once and runs the ``inplace`` kernels eagerly. Other backends run eagerly.
    """

    def __init__(self, fn: Callable[..., Any], backend: str) -> None:
        self.fn, self.backend, self.compiled = fn, backend, None

    def __call__(self, *args: Any) -> Any:
        if self.backend != "compile" or _COMPILE_BROKEN:
            return self.fn("inplace" if self.backend == "compile" else self.backend, *args)
        try:
            if self.compiled is None:
                self.compiled = _compiled(self.fn, _static_key(args))
            return self.compiled("fused", *args)
        except Exception as exc:  # a failed compile is an environment problem, not a wrong result
            _COMPILE_BROKEN.append(f"{type(exc).__name__}: {exc}")
            warnings.warn(f"spikeplastic.lean: torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); "
                          "falling back to backend='inplace'", RuntimeWarning, stacklevel=2)
            return self.fn("inplace", *args)


def _as_param(v: Tensor | float, like: Tensor) -> Tensor:
    return v if isinstance(v, Tensor) else torch.tensor(float(v), dtype=like.dtype, device=like.device)


def _alpha_mode(alpha: Tensor | None) -> str:
    if alpha is None:
        return "none"
    return "shared" if alpha.dim() == 0 else "per_synapse"


def _proj_tensors(p: LeanProjection | None, like: Tensor, H0, X0, Y0) -> list[Tensor | None]:
    if p is None:
        return [None] * _PROJ_FIELDS
    if p.stdp is None:
        return [p.weight] + [None] * (_PROJ_FIELDS - 1)
    r = p.stdp
    tau_p, tau_m = _as_param(r.tau_plus, like), _as_param(r.tau_minus, like)
    gamma = None if p.decay is None else 1 - _as_param(p.decay, like)
    # exp(-1/tau) exactly as functional.plasticity computes it
    return [p.weight, p.alpha, _as_param(r.a_plus, like), _as_param(r.a_minus, like),
            torch.exp(-1.0 / tau_p), torch.exp(-1.0 / tau_m), gamma, H0, X0, Y0]


def _proj_spec(p: LeanProjection | None) -> _ProjSpec | None:
    if p is None:
        return None
    if p.stdp is None:
        return _ProjSpec(False, "none", None, False)
    if p.alpha is not None and p.alpha.dim() not in (0, 2):
        raise ValueError(f"alpha must be 0-d (shared) or [n_post, n_pre] (per synapse), got shape {tuple(p.alpha.shape)}")
    return _ProjSpec(True, _alpha_mode(p.alpha), None if p.clip is None else float(p.clip), p.decay is not None,
                     bool(p.rule_input_grad))


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
        backend: ``"auto" | "reference" | "inplace" | "compile"`` (module docstring).
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
    w, alpha, ap, am, dp, dm, gamma = t[:7]
    spec = _proj_spec(proj)
    assert spec is not None
    be = _resolve_backend(backend, H, H.numel())
    buf = torch.empty_like(H) if (spec.mode == "per_synapse" and be == "inplace") else None
    cur, Hn, Xn, Yn = _stdp_fwd(be, H, s_pre, s_post, x, y, alpha, dp, dm, ap, am, gamma, spec.mode, spec.clip, buf)
    return s_pre @ w.t() + cur, Hn, Xn, Yn


# =================================================================================================
# rate Hebbian RNN (PlasticRNN, rule="hebb")
# =================================================================================================
@dataclass(frozen=True)
class _HebbSpec:
    bias_unit: bool
    clamp: bool
    backend: str
    checkpoint_every: int | None
    reconstruct: str


def _with_bias(y: Tensor, bias_unit: bool) -> Tensor:
    return torch.cat([y, y.new_ones(y.shape[0], 1)], dim=1) if bias_unit else y


class _HebbRNNFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spec: _HebbSpec, inp, c, w, alpha, eta, y0, H0):  # type: ignore[override]
        T, B, Nh = inp.shape
        be = spec.backend
        save = any(ctx.needs_input_grad)
        k_rev = None if spec.reconstruct == "never" else _reverse_interval(T, float(1.0 - eta))
        if k_rev is not None and T / k_rev > 2.0 * math.sqrt(T):
            k_rev = None
        recompute = k_rev is None
        Kv = _chunk(T, spec.checkpoint_every, recompute)
        k_h = Kv if recompute else k_rev
        H = H0.clone()
        buf = torch.empty_like(H) if (alpha.dim() and be != "reference") else None
        Y = inp.new_empty(T, B, Nh)
        y = y0
        ckpt: dict[int, Tensor] = {}
        for t in range(T):
            if save and ((recompute and t % k_h == 0) or (not recompute and t > 0 and t % k_h == 0)):
                ckpt[t] = H.clone()
            pre = _with_bias(y, spec.bias_unit)
            y, H = _hebb_fwd(be, H, pre, inp[t], None if c is None else c[t], w, alpha, eta, buf)
            Y[t] = y
        if not save:
            return Y, H
        ctx.spec, ctx.recompute, ctx.Kv, ctx.ckpt = spec, recompute, Kv, ckpt
        # the final H goes to the caller and is saved as is; the backward reconstructs H[t] in a
        # copy of it (a workspace of its own), never in the saved tensor
        ctx.save_for_backward(inp, c, w, alpha, eta, y0, Y, H)
        return Y, H

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gY, gHT):  # type: ignore[override]
        spec: _HebbSpec = ctx.spec
        inp, c, w, alpha, eta, y0, Y, HT = ctx.saved_tensors
        need = ctx.needs_input_grad  # spec, inp, c, w, alpha, eta, y0, H0
        be = spec.backend
        T, B, Nh = Y.shape
        Kv, recompute, ckpt = ctx.Kv, ctx.recompute, ctx.ckpt
        want_eta, want_alpha = bool(need[5]), bool(need[4])
        # reverse mode rebuilds H[t] in place: in a workspace, a fresh copy of the saved final H,
        # so that nothing the graph holds is written and every backward starts from the same H
        Hw = None if recompute else HT.clone()
        gH = torch.zeros_like(HT) if gHT is None else gHT.clone()
        galpha = torch.zeros_like(alpha) if (want_alpha and alpha.dim()) else None
        buf = torch.empty_like(HT) if (alpha.dim() and (be != "compile" or recompute)) else None
        gw = torch.zeros_like(w) if need[3] else None
        ginp = torch.zeros_like(inp) if need[1] else None
        s_eta = s_alpha = None
        gy_carry = torch.zeros_like(y0)
        n_chunks = (T + Kv - 1) // Kv
        for ci in range(n_chunks - 1, -1, -1):
            k0 = ci * Kv
            k1 = min(T, k0 + Kv)
            L = k1 - k0
            prev = torch.cat([y0.unsqueeze(0), Y[: k1 - 1]], 0) if k0 == 0 else Y[k0 - 1 : k1 - 1]
            PRE = _with_bias(prev.reshape(L * B, Nh), spec.bias_unit).reshape(L, B, -1)
            if recompute:
                Hs = [ckpt[k0]]
                for i in range(L - 1):
                    _, Hn = _hebb_fwd(be, Hs[-1].clone(), PRE[i], inp[k0 + i], None if c is None else c[k0 + i],
                                      w, alpha, eta, buf)
                    Hs.append(Hn)
            GA = torch.empty(L, B, Nh, dtype=Y.dtype, device=Y.device)
            for i in range(L - 1, -1, -1):
                t = k0 + i
                gy = gy_carry if gY is None else gy_carry + gY[t]
                if recompute:
                    H, recon = Hs[i], False
                else:
                    H, recon = Hw, True
                    if (t + 1) in ckpt:
                        H.copy_(ckpt[t + 1])
                ct = None if c is None else c[t]
                ga, gyt, gpre, se, sa = _hebb_bwd(be, H, gH, PRE[i], Y[t], gy, ct, w, alpha, eta, galpha,
                                                 recon, want_eta, want_alpha, buf)
                GA[i] = ga
                if ginp is not None:
                    ginp[t] = ga if ct is None else ga + gyt * ct
                if se is not None:
                    s_eta = se if s_eta is None else s_eta + se
                if sa is not None:
                    s_alpha = sa if s_alpha is None else s_alpha + sa
                gpre = gpre + ga @ w
                gy_carry = gpre[:, :Nh]
            if gw is not None:
                gw += GA.reshape(L * B, Nh).t() @ PRE.reshape(L * B, -1)
            Hs = None
        ga_out = galpha if alpha.dim() else s_alpha
        return (None, ginp, None, gw, ga_out if want_alpha else None, s_eta if want_eta else None,
                gy_carry if need[6] else None, gH if need[7] else None)


def hebb_rnn(
    inp: Tensor,
    w: Tensor,
    alpha: Tensor,
    eta: Tensor,
    y0: Tensor | None = None,
    H0: Tensor | None = None,
    *,
    bias_unit: bool = False,
    clamp: bool = False,
    backend: str = "auto",
    checkpoint_every: int | None = None,
    reconstruct: str = "auto",
) -> tuple[Tensor, Tensor]:
    r"""Memory-lean episode of the Hebbian plastic RNN (Miconi et al. 2018; ``PlasticRNN(rule="hebb")``).

    With ``u_{t-1} = [y_{t-1}, 1]`` (the 1 only with ``bias_unit``)::

        y_t = tanh((w + alpha*H_{t-1}) u_{t-1} + inp_t)       (clamp: y_t*(1-c_t) + inp_t*c_t, c_t = [inp_t != 0])
        H_t = (1 - eta) H_{t-1} + eta * outer(y_t, u_{t-1})

    Shapes: ``inp`` ``[T, B, n]`` (already through any input map), ``w`` ``[n, n_units]``, ``alpha``
    like ``w`` or 0-d, ``eta`` 0-d in (0, 1), ``y0`` ``[B, n]``, ``H0`` ``[B, n, n_units]``
    (``n_units = n + bias_unit``). Returns ``Y`` ``[T, B, n]`` and the final ``H``. Gradients reach
    ``inp``, ``w``, ``alpha``, ``eta``, ``y0`` and ``H0``; ``H[t-1] = (H[t] - eta*outer)/(1-eta)``
    is reconstructed backwards (exact copies every ``K`` steps with ``(1-eta)^-K <= MAX_AMPLIFICATION``).
    """
    if not isinstance(inp, Tensor) or inp.dim() != 3 or not inp.is_floating_point():
        raise ValueError(f"inp must be a floating tensor [T, B, n], got {getattr(inp, 'shape', type(inp).__name__)}")
    T, B, Nh = inp.shape
    if T < 1:
        raise ValueError("inp must have at least one time step")
    Nu = Nh + int(bias_unit)
    if w.shape != (Nh, Nu):
        raise ValueError(f"w must be [{Nh}, {Nu}], got {tuple(w.shape)}")
    if alpha.dim() not in (0, 2) or (alpha.dim() == 2 and alpha.shape != w.shape):
        raise ValueError(f"alpha must be 0-d or shaped like w {tuple(w.shape)}, got {tuple(alpha.shape)}")
    _check_reconstruct(reconstruct)
    if checkpoint_every is not None:
        _chunk(T, checkpoint_every, False)
    y0 = inp.new_zeros(B, Nh) if y0 is None else y0
    H0 = inp.new_zeros(B, Nh, Nu) if H0 is None else H0
    c = (inp != 0).to(inp.dtype) if clamp else None
    be = _resolve_backend(backend, inp, B * Nh * Nu)
    spec = _HebbSpec(bool(bias_unit), bool(clamp), be, checkpoint_every, reconstruct)
    Y, H = _HebbRNNFn.apply(spec, inp, c, w, alpha, eta, y0, H0)
    return Y, H


# =================================================================================================
# wrappers around the core models
# =================================================================================================
_LEAN_RECORD = ("spikes", "voltages", "currents")


class _LayerPlan(NamedTuple):
    pop: str
    pre: str            # "in" or a population computed earlier
    ff: str             # projection names in net.projs
    rec: str | None
    rec_first: bool


def check_network(net: Any) -> list[_LayerPlan]:
    """The lean plan of a core :class:`~spikeplastic.network.Network`: its populations in the order
    the lean path runs them. Raises ``ValueError`` naming the first unsupported feature.

    Supported: a chain of LIF populations, each fed by exactly one projection from ``"in"`` or an
    earlier population, plus at most one recurrent projection onto itself; every projection static
    or plastic with pair STDP (alpha per synapse / shared / none, decay fixed or learned, clip,
    ``rule_input_grad`` either way), no neuromodulation, and no Loihi integer-state emulation
    (``LIF.quantum``).
    """
    from .network import Network
    from .rules import STDP

    if not isinstance(net, Network):
        raise TypeError(f"net must be a spikeplastic.Network, got {type(net).__name__}")
    for name, pop in net.pops.items():
        if getattr(pop, "quantum", None) is not None:
            raise ValueError(f"lean path: population {name!r} emulates Loihi's integer state (quantum set by "
                             "spikeplastic.quant.loihi_legal), which the lean path does not support")
    ff_of: dict[str, str] = {}
    rec_of: dict[str, str] = {}
    order_idx = {name: i for i, name in enumerate(net.projs)}
    for name, layer in net.projs.items():
        pre, post = net.topology[name]
        if layer.modulation is not None:
            raise ValueError(f"lean path: projection {pre}->{post} uses neuromodulation ({layer.modulation.mode}), "
                             "which the lean path does not support")
        if layer.rule is not None and not isinstance(layer.rule, STDP):
            raise ValueError(f"lean path: projection {pre}->{post} uses the {type(layer.rule).__name__} rule; "
                             "only pair STDP (spikeplastic.STDP) is supported")
        if pre == post:
            rec_of[post] = name
        elif post in ff_of:
            raise ValueError(f"lean path: population {post!r} receives more than one feed-forward projection "
                             f"({net.topology[ff_of[post]][0]}->{post} and {pre}->{post}); only one plus one "
                             "recurrent projection is supported")
        else:
            ff_of[post] = name
    plan: list[_LayerPlan] = []
    done = {"in"}
    pending = list(net.pops)
    while pending:
        ready = [p for p in pending if p in ff_of and net.topology[ff_of[p]][0] in done]
        if not ready:
            p = pending[0]
            if p not in ff_of:
                raise ValueError(f"lean path: population {p!r} has no feed-forward input projection")
            raise ValueError(f"lean path: projection {net.topology[ff_of[p]][0]}->{p} closes a loop between "
                             "populations (feedback); only chains with self-recurrence are supported")
        for p in ready:
            r = rec_of.get(p)
            plan.append(_LayerPlan(p, net.topology[ff_of[p]][0], ff_of[p], r,
                                   r is not None and order_idx[r] < order_idx[ff_of[p]]))
            done.add(p)
            pending.remove(p)
    return plan


def _lean_projection(layer: Any) -> LeanProjection:
    w = layer.weight()
    if layer.rule is None:
        return LeanProjection(w)
    r = layer.rule
    decay = layer.decay()
    # PlasticLinear.update skips the decay term exactly when it is fixed at 0
    dec = None if (not layer.decay.learn and float(decay) == 0.0) else decay
    return LeanProjection(
        w, STDPParams(r.a_plus(), r.a_minus(), r.tau_plus(), r.tau_minus()),
        alpha=None if layer.alpha is None else layer.alpha(), decay=dec, clip=layer.clip,
        rule_input_grad=layer.rule_input_grad,
    )


def network_forward(
    net: Any,
    x: Tensor,
    state: Any = None,
    *,
    record: Sequence[str] = ("spikes",),
    third_factor: Tensor | None = None,
    backend: str = "auto",
    checkpoint_every: int | None = None,
    reconstruct: str = "auto",
    store_currents: bool | None = None,
) -> tuple[Any, Any]:
    """``net(x, state, record=..., third_factor=...)`` for a core ``Network``, the lean way.

    Same parameters, same results (:class:`~spikeplastic.network.Record`, final
    :class:`~spikeplastic.network.NetworkState`) and same gradients as ``Network.forward``, with
    memory ``O(B*N^2 + T*B*N)`` instead of ``O(T*B*N^2)``. ``record`` may contain ``"spikes"``,
    ``"voltages"``, ``"currents"``; ``"weights"``/``"traces"``/``"modulation"`` raise ``ValueError``
    (use ``Network.forward``). Unsupported topologies raise ``ValueError`` (:func:`check_network`).
    """
    from .functional.lif import LIFState
    from .functional.plasticity import STDPTraces
    from .network import NetworkState, Record
    from .plastic import PlasticState

    plan = check_network(net)
    for r in record:
        if r not in _LEAN_RECORD:
            raise ValueError(f"lean path: record entry {r!r} is not supported (only {list(_LEAN_RECORD)}); "
                             "use Network.forward to record weights, traces or modulation")
    net._check_input(x, "x", 3)
    T, B = x.shape[0], x.shape[1]
    if third_factor is not None and tuple(third_factor.shape[:2]) != (T, B):
        raise ValueError(f"third_factor must have shape [T={T}, B={B}] or [T, B, n_post], got {tuple(third_factor.shape)}")
    if state is None:
        state = net.initial_state(B)
    want = set(record)
    spikes: dict[str, Tensor] = {}
    volts: dict[str, Tensor] = {}
    curs: dict[str, Tensor] = {}
    neurons: dict[str, Any] = {}
    synapses: dict[str, Any] = dict(state.synapses)
    for lp in plan:
        pop = net.pops[lp.pop]
        prm = pop.params()
        lif = LeanLIF(prm.du, prm.dv, prm.vth, prm.bias, pop.spike_fn, pop.reset, pop.detach_reset)
        if lp.pre == "in":
            xin, xp0, binary = x, state.x_prev, False
        else:
            xin, xp0, binary = spikes[lp.pre], state.neurons[lp.pre].s, True
        ffl = net.projs[lp.ff]
        recl = None if lp.rec is None else net.projs[lp.rec]
        st_ff = state.synapses[lp.ff]
        st_rec = None if lp.rec is None else state.synapses[lp.rec]
        nst = state.neurons[lp.pop]

        def tr(s: Any, i: int) -> Tensor | None:
            return None if (s is None or s.H is None) else s.rule[i]

        lstate = LayerState(
            nst.u, nst.v, nst.s, xp0,
            None if st_ff.H is None else st_ff.H, tr(st_ff, 0), tr(st_ff, 1),
            None if st_rec is None else st_rec.H, tr(st_rec, 0), tr(st_rec, 1),
        )
        out, fin = plastic_lif_layer(
            xin, _lean_projection(ffl), lif, None if recl is None else _lean_projection(recl), lstate,
            record_voltages="voltages" in want, record_currents="currents" in want,
            backend=backend, checkpoint_every=checkpoint_every, reconstruct=reconstruct,
            rec_first=lp.rec_first, x_is_spikes=binary, store_currents=store_currents,
        )
        spikes[lp.pop] = out.spikes
        if out.voltages is not None:
            volts[lp.pop] = out.voltages
        if out.currents is not None:
            curs[lp.pop] = out.currents
        neurons[lp.pop] = LIFState(fin.u, fin.v, fin.s)
        if ffl.plastic:
            synapses[lp.ff] = PlasticState(fin.H_ff, None, STDPTraces(fin.x_ff, fin.y_ff))
        if recl is not None and recl.plastic:
            synapses[lp.rec] = PlasticState(fin.H_rec, None, STDPTraces(fin.x_rec, fin.y_rec))
    order = list(net.pops)
    rec_out = Record(
        spikes={k: spikes[k] for k in order},
        voltages={k: volts[k] for k in order} if "voltages" in want else None,
        currents={k: curs[k] for k in order} if "currents" in want else None,
    )
    new = NetworkState({k: neurons[k] for k in order}, {k: synapses[k] for k in net.projs}, x[-1],
                       None if third_factor is None else third_factor[-1])
    return rec_out, new


class LeanNetwork(nn.Module):
    """A core ``Network`` run the lean way: ``LeanNetwork(net)(x, state, record=...)`` equals
    ``net(x, state, record=...)`` (same parameters: ``net`` is a submodule) with lean memory.

    The topology is checked at construction (:func:`check_network`, ``ValueError`` otherwise).
    """

    def __init__(self, net: Any, *, backend: str = "auto", checkpoint_every: int | None = None,
                 reconstruct: str = "auto", store_currents: bool | None = None) -> None:
        super().__init__()
        check_network(net)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
        _check_reconstruct(reconstruct)
        self.net = net
        self.backend = backend
        self.checkpoint_every = checkpoint_every
        self.reconstruct = reconstruct
        self.store_currents = store_currents

    def forward(self, x: Tensor, state: Any = None, *, record: Sequence[str] = ("spikes",),
                third_factor: Tensor | None = None) -> tuple[Any, Any]:
        return network_forward(self.net, x, state, record=record, third_factor=third_factor, backend=self.backend,
                               checkpoint_every=self.checkpoint_every, reconstruct=self.reconstruct,
                               store_currents=self.store_currents)


def check_plastic_rnn(model: Any) -> None:
    """Raise ``ValueError`` unless ``model`` is a ``PlasticRNN`` the lean path runs (``rule="hebb"``)."""
    from .baselines.rate_plastic import PlasticRNN

    if not isinstance(model, PlasticRNN):
        raise TypeError(f"model must be a spikeplastic.baselines.PlasticRNN, got {type(model).__name__}")
    if model.rule != "hebb":
        raise ValueError(f"lean path: PlasticRNN rule={model.rule!r} is not supported (only 'hebb')")


def plastic_rnn_forward(
    model: Any,
    inputs: Tensor,
    state: Any = None,
    *,
    backend: str = "auto",
    checkpoint_every: int | None = None,
    reconstruct: str = "auto",
) -> tuple[Tensor, Any]:
    """``model(inputs, state)`` for a core ``PlasticRNN(rule="hebb")``, the lean way.

    ``inputs`` ``[T, B, n_in]`` -> outputs ``[T, B, n_out]`` and the final ``PlasticRNNState``, with
    the model's own parameters (input map, ``W``, ``alpha``, ``eta``, readout) and its gradients.
    """
    from .baselines._common import check_step_input
    from .baselines.rate_plastic import PlasticRNNState

    check_plastic_rnn(model)
    if not isinstance(inputs, Tensor) or inputs.dim() != 3:
        raise ValueError(f"inputs must be a tensor [T, B, n_in], got {getattr(inputs, 'shape', type(inputs).__name__)}")
    check_step_input(inputs[0], model.n_in)
    T, B = inputs.shape[0], inputs.shape[1]
    if state is None:
        state = model.initial_state(B)
    exact = backend == "reference"

    def per_step(f: Callable[[Tensor], Tensor], z: Tensor) -> Tensor:
        # the reference backend maps step by step, like PlasticRNN.step (bit-identical GEMMs)
        return torch.stack([f(z[t]) for t in range(z.shape[0])]) if exact else f(z)

    inp = inputs if model.in_proj is None else per_step(model.in_proj, inputs)
    Y, H = hebb_rnn(inp, model.w, model.alpha, model.eta(), state.y, state.hebb, bias_unit=model.bias_unit,
                    clamp=model.clamp, backend=backend, checkpoint_every=checkpoint_every, reconstruct=reconstruct)
    out = Y[:, :, : model.n_out] if model.readout is None else per_step(model.readout, Y)
    return out, PlasticRNNState(y=Y[-1], hebb=H)


class LeanPlasticRNN(nn.Module):
    """A core ``PlasticRNN(rule="hebb")`` run the lean way: ``LeanPlasticRNN(model)(inputs, state)``
    equals ``model(inputs, state)`` (same parameters: ``model`` is a submodule) with lean memory."""

    def __init__(self, model: Any, *, backend: str = "auto", checkpoint_every: int | None = None,
                 reconstruct: str = "auto") -> None:
        super().__init__()
        check_plastic_rnn(model)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
        _check_reconstruct(reconstruct)
        self.model = model
        self.backend = backend
        self.checkpoint_every = checkpoint_every
        self.reconstruct = reconstruct

    @property
    def n_in(self) -> int:
        return self.model.n_in

    @property
    def n_out(self) -> int:
        return self.model.n_out

    def initial_state(self, batch: int) -> Any:
        return self.model.initial_state(batch)

    def forward(self, inputs: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        return plastic_rnn_forward(self.model, inputs, state, backend=self.backend,
                                   checkpoint_every=self.checkpoint_every, reconstruct=self.reconstruct)
