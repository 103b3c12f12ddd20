"""Hebb / Oja / eligibility steps and one PlasticLinear update, element by element, with real-valued
(rate-like) activity, where p**2 != p exposes terms that binary spikes hide."""
from __future__ import annotations

import math

import pytest
import torch

from spikeplastic import Hebb, Neuromodulation, Oja, PlasticLinear
from spikeplastic.functional import eligibility_step, hebb_step, oja_step

F64 = torch.float64


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    H = torch.rand(2, 3, 4, generator=g, dtype=F64) - 0.5
    pre = torch.rand(2, 4, generator=g, dtype=F64) * 1.5
    post = torch.rand(2, 3, generator=g, dtype=F64) * 1.5 - 0.2
    return H, pre, post


def test_hebb_oja_eligibility_elementwise() -> None:
    H, pre, post = _data()
    eta = 0.137
    hebb, oja = hebb_step(H, pre, post, eta), oja_step(H, pre, post, eta)
    E, e = H.flip(-1), H * 0.3 + 0.1
    elig = eligibility_step(E, e, 0.291)
    for b in range(2):
        for j in range(3):
            for i in range(4):
                h, x, y = H[b, j, i].item(), pre[b, i].item(), post[b, j].item()
                assert hebb[b, j, i].item() == pytest.approx((1 - eta) * h + eta * y * x, rel=1e-14, abs=1e-16)
                assert oja[b, j, i].item() == pytest.approx(h + eta * y * (x - h * y), rel=1e-14, abs=1e-16)
                want = (1 - 0.291) * E[b, j, i].item() + 0.291 * e[b, j, i].item()
                assert elig[b, j, i].item() == pytest.approx(want, rel=1e-14, abs=1e-16)


@pytest.mark.parametrize("kind", ["hebb", "oja"])
def test_rule_modules_equal_functional_steps(kind: str, default_f64: None) -> None:
    H, pre, post = _data(1)
    rule = (Hebb if kind == "hebb" else Oja)(0.213)
    e, _ = rule.step(rule.initial_state(2, 4, 3, H), pre, post, H)
    step = hebb_step if kind == "hebb" else oja_step
    torch.testing.assert_close(H + e, step(H, pre, post, 0.213), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("mode", [None, "simple", "retroactive"])
def test_plastic_linear_update_one_step(mode: str | None, default_f64: None) -> None:
    """H' = clip((1-decay) H + m e)  /  H' = clip((1-decay) H + m E), E' = (1-eta_e) E + eta_e e."""
    H, pre, post = _data(2)
    decay, clip, eta, eta_e = 0.0731, 0.3, 0.213, 0.291
    mod = None if mode is None else Neuromodulation(mode, None, eta_e=eta_e, learn_eta=False)
    layer = PlasticLinear(4, 3, rule=Oja(eta, learn=False), decay=decay, clip=clip, modulation=mod)
    E = torch.full_like(H, 0.05) if mode == "retroactive" else None
    m = torch.tensor([0.7, -0.4], dtype=F64)
    new = layer.update(layer.initial_state(2)._replace(H=H, E=E), pre, post, None if mode is None else m[:, None, None])
    for b in range(2):
        for j in range(3):
            for i in range(4):
                h, x, y = H[b, j, i].item(), pre[b, i].item(), post[b, j].item()
                e = eta * y * (x - h * y)
                if mode is None:
                    want = (1 - decay) * h + e
                elif mode == "simple":
                    want = (1 - decay) * h + m[b].item() * e
                else:
                    want = (1 - decay) * h + m[b].item() * 0.05
                    assert new.E[b, j, i].item() == pytest.approx((1 - eta_e) * 0.05 + eta_e * e, rel=1e-14)
                want = min(max(want, -clip), clip)
                assert new.H[b, j, i].item() == pytest.approx(want, rel=1e-14, abs=1e-16)
    # the effective weight and the current use the plastic part with its coefficient
    a = layer.current(new, pre)
    W = layer.weight() + layer.alpha() * new.H
    torch.testing.assert_close(a, torch.einsum("boi,bi->bo", W, pre), rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(layer.effective_weight(new), W, rtol=0, atol=0)
    assert math.isfinite(float(a.detach().sum()))
