"""The memory-lean episode of the Hebbian rate RNN (``PlasticRNN(rule="hebb")``): autograd op."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .backend import _resolve_backend
from .hebb import HebbArgs, HebbBwdFlags, _hebb_bwd, _hebb_fwd
from .plan import _backward_mode, _check_reconstruct, _chunk


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
        k_rev = _backward_mode(T, float(1.0 - eta), spec.reconstruct == "never")
        recompute = k_rev is None
        Kv = _chunk(T, spec.checkpoint_every, recompute)
        k_h = Kv if recompute else k_rev
        H = H0.clone()
        buf = torch.empty_like(H) if (alpha.dim() and be != "reference") else None
        k = HebbArgs(w, alpha, eta)
        Y = inp.new_empty(T, B, Nh)
        y = y0
        ckpt: dict[int, Tensor] = {}
        for t in range(T):
            if save and ((recompute and t % k_h == 0) or (not recompute and t > 0 and t % k_h == 0)):
                ckpt[t] = H.clone()
            pre = _with_bias(y, spec.bias_unit)
            y, H = _hebb_fwd(be, H, pre, inp[t], None if c is None else c[t], k, buf)
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
        k = HebbArgs(w, alpha, eta)
        flags = {recon: HebbBwdFlags(recon, want_eta, want_alpha) for recon in (False, True)}
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
                                      k, buf)
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
                ga, gyt, gpre, se, sa = _hebb_bwd(be, H, gH, PRE[i], Y[t], gy, ct, k, galpha, flags[recon], buf)
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
