"""Hand-written references: the first 3 steps written out element by element in numpy loops."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spikeplastic.baselines import Backpropamine, OneShotPlastic, PlasticRNN

B, T = 2, 3


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy().copy()


# ----------------------------------------------------------------------------- PlasticRNN
def _ref_plastic_rnn(W, A, eta, xs, rule, bias_unit, clamp):
    """Per batch element: u = [y, 1?]; y_j = tanh(sum_i (W_ji + A_ji H_ji) u_i + x_j); H update."""
    n_hidden, n_units = W.shape
    shared = np.ndim(A) == 0
    outs = np.zeros((T, B, n_hidden))
    Hs = np.zeros((B, n_hidden, n_units))
    for b in range(B):
        y = np.zeros(n_hidden)
        H = np.zeros((n_hidden, n_units))
        for t in range(T):
            u = list(y) + ([1.0] if bias_unit else [])
            ynew = np.zeros(n_hidden)
            for j in range(n_hidden):
                s = 0.0
                for i in range(n_units):
                    a = A if shared else A[j, i]
                    s += (W[j, i] + a * H[j, i]) * u[i]
                xj = xs[t, b, j]
                ynew[j] = math.tanh(s + xj)
                if clamp and xj != 0.0:
                    ynew[j] = xj
            Hn = np.zeros_like(H)
            for j in range(n_hidden):
                for i in range(n_units):
                    if rule == "hebb":
                        Hn[j, i] = (1 - eta) * H[j, i] + eta * ynew[j] * u[i]
                    else:
                        Hn[j, i] = H[j, i] + eta * ynew[j] * (u[i] - H[j, i] * ynew[j])
            y, H = ynew, Hn
            outs[t, b] = y
        Hs[b] = H
    return outs, Hs


@pytest.mark.parametrize("rule", ["hebb", "oja"])
@pytest.mark.parametrize(
    ("alpha", "bias_unit", "clamp"),
    [("per_synapse", True, False), ("shared", False, False), ("per_synapse", True, True)],
)
def test_plastic_rnn_first_steps(rule: str, alpha: str, bias_unit: bool, clamp: bool) -> None:
    torch.manual_seed(10)
    n = 4
    net = PlasticRNN(
        n, rule=rule, alpha=alpha, bias_unit=bias_unit, clamp=clamp,
        eta_init=0.4, w_init_std=0.8, alpha_init_std=1.5,
    ).double()
    xs = torch.randn(T, B, n, dtype=torch.float64)
    if clamp:
        xs[:, :, :2] = 0.0
    ref_out, ref_H = _ref_plastic_rnn(
        _np(net.w), _np(net.alpha), net.eta().item(), _np(xs), rule, bias_unit, clamp
    )
    for lean in ("off", "auto"):  # the step loop and (hebb, with gradients) the lean op
        net.lean = lean
        out, state = net(xs)
        torch.testing.assert_close(out, torch.from_numpy(ref_out))
        torch.testing.assert_close(state.hebb, torch.from_numpy(ref_H))
        torch.testing.assert_close(state.y, torch.from_numpy(ref_out[-1]))
    assert np.abs(ref_H).max() > 0.05  # the plastic term is not negligible


# -------------------------------------------------------------------------- Backpropamine
def _ref_backpropamine(p, xs, mode, eta, clip):
    W, A, Win, bin_, WM, bM, R, bR = (p[k] for k in ("W", "A", "Win", "bin", "WM", "bM", "R", "bR"))
    n = W.shape[0]
    shared = np.ndim(A) == 0
    outs = np.zeros((T, B, R.shape[0]))
    hebbs, eligs = np.zeros((B, n, n)), np.zeros((B, n, n))
    clipped_any = False
    for b in range(B):
        h = np.zeros(n)
        hebb = np.zeros((n, n))
        E = np.zeros((n, n))
        for t in range(T):
            hn = np.zeros(n)
            for j in range(n):
                s = bin_[j] + sum(Win[j, k] * xs[t, b, k] for k in range(xs.shape[2]))
                for i in range(n):
                    a = A if shared else A[j, i]
                    s += (W[j, i] + a * hebb[j, i]) * h[i]
                hn[j] = math.tanh(s)
            M = math.tanh(sum(WM[0, j] * hn[j] for j in range(n)) + bM[0]) if WM is not None else None
            new_hebb, new_E = np.zeros_like(hebb), E.copy()
            for j in range(n):
                for i in range(n):
                    prod = hn[j] * h[i]
                    if mode == "simple":
                        v = hebb[j, i] + M * prod
                    elif mode == "retroactive":
                        v = hebb[j, i] + M * E[j, i]  # previous step's eligibility
                        new_E[j, i] = (1 - eta) * E[j, i] + eta * prod
                    else:
                        v = hebb[j, i] + eta * prod
                    if abs(v) > clip:
                        clipped_any = True
                    new_hebb[j, i] = min(max(v, -clip), clip)
            hebb, E, h = new_hebb, new_E, hn
            for k in range(R.shape[0]):
                outs[t, b, k] = bR[k] + sum(R[k, j] * h[j] for j in range(n))
        hebbs[b], eligs[b] = hebb, E
    return outs, hebbs, eligs, clipped_any


@pytest.mark.parametrize("mode", ["simple", "retroactive", "none"])
@pytest.mark.parametrize("clip", [1.0, 0.15])
def test_backpropamine_first_steps(mode: str, clip: float) -> None:
    torch.manual_seed(11)
    n_in, n_out, n = 3, 2, 4
    net = Backpropamine(
        n_in, n_out, n_hidden=n, mode=mode, clip=clip, eta_init=0.7,
        w_init_std=0.5, alpha_init_std=2.0,
    ).double()
    with torch.no_grad():  # saturate h and M so the clip engages
        net.w_in.weight.mul_(6.0)
        if net.modulation is not None:
            net.modulation.weight.mul_(8.0)
    xs = torch.randn(T, B, n_in, dtype=torch.float64)
    out, state = net(xs)
    p = {
        "W": _np(net.w), "A": _np(net.alpha), "Win": _np(net.w_in.weight), "bin": _np(net.w_in.bias),
        "WM": None if net.modulation is None else _np(net.modulation.weight),
        "bM": None if net.modulation is None else _np(net.modulation.bias),
        "R": _np(net.readout.weight), "bR": _np(net.readout.bias),
    }
    eta = None if net.eta is None else net.eta().item()
    ref_out, ref_hebb, ref_E, clipped = _ref_backpropamine(p, _np(xs), mode, eta, clip)
    torch.testing.assert_close(out, torch.from_numpy(ref_out))
    torch.testing.assert_close(state.hebb, torch.from_numpy(ref_hebb))
    if mode == "retroactive":
        torch.testing.assert_close(state.elig, torch.from_numpy(ref_E))
    if clip < 1.0:
        assert clipped, "the clip never engaged: the reference does not test it"
    assert np.abs(ref_hebb).max() > 0.05


# -------------------------------------------------------------------------- OneShotPlastic
def test_oneshot_readout_first_steps() -> None:
    """Plastic readout and Oja update, given the conv embedding (checked separately below)."""
    torch.manual_seed(12)
    n_way, side = 3, 7
    net = OneShotPlastic(side * side, n_way, channels=4, n_conv=2, eta_init=0.5,
                         w_init_std=0.5, alpha_init_std=1.0).double()
    xs = torch.zeros(T, B, side * side + n_way, dtype=torch.float64)
    xs[:, :, : side * side] = torch.randn(T, B, side * side, dtype=torch.float64)
    xs[0, 0, side * side + 1] = 1.0  # labelled steps 0, 1; query at step 2
    xs[0, 1, side * side + 0] = 1.0
    xs[1, :, side * side + 2] = 1.0
    out, state = net(xs)
    W, A, eta = _np(net.w), _np(net.alpha), net.eta().item()
    for b in range(B):
        H = np.zeros((n_way, 4))
        for t in range(T):
            # embedding by hand: two valid 3x3 stride-2 convs + tanh, 7 -> 3 -> 1
            img = _np(xs[t, b, : side * side]).reshape(1, side, side)
            for conv in (net.embed[0], net.embed[2]):
                k, bias = _np(conv.weight), _np(conv.bias)
                s_out = (img.shape[1] - 3) // 2 + 1
                nxt = np.zeros((k.shape[0], s_out, s_out))
                for c in range(k.shape[0]):
                    for r in range(s_out):
                        for q in range(s_out):
                            patch = img[:, 2 * r : 2 * r + 3, 2 * q : 2 * q + 3]
                            nxt[c, r, q] = math.tanh(bias[c] + float((k[c] * patch).sum()))
                img = nxt
            z = img.reshape(-1)
            logits = np.array([sum((W[j, i] + A[j, i] * H[j, i]) * z[i] for i in range(4)) for j in range(n_way)])
            torch.testing.assert_close(out[t, b], torch.from_numpy(logits))
            label = _np(xs[t, b, side * side :])
            o = label if label.any() else np.exp(logits) / np.exp(logits).sum()
            H = np.array([[H[j, i] + eta * o[j] * (z[i] - H[j, i] * o[j]) for i in range(4)] for j in range(n_way)])
        torch.testing.assert_close(state.hebb[b], torch.from_numpy(H))
