"""Spike encoders: statistics, latency code, sign handling, episode conversion, errors."""
from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from spikeplastic.tasks import PATTERN50, DirectCurrent, LatencyEncoder, PatternTask, RateEncoder


def test_bernoulli_rates_match_expectation(gen) -> None:
    enc = RateEncoder(max_rate=0.6, scale=2.0)
    values = torch.tensor([0.0, 0.5, 1.0, 2.0, 3.0, -1.0])  # rates 0, .15, .3, .6, .6 (clipped); -1 -> OFF .3
    x = values.expand(4000, 1, 6).contiguous()
    s = enc(x, gen(0))
    assert s.shape == (4000, 1, 12) and set(s.unique().tolist()) <= {0.0, 1.0}
    p = torch.tensor([0.0, 0.15, 0.3, 0.6, 0.6, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.3])
    n = x.shape[0]
    mean = s.mean(dim=(0, 1))
    tol = 5 * torch.sqrt(p * (1 - p) / n)  # 5 binomial standard deviations
    assert ((mean - p).abs() <= tol).all(), (mean, p)
    assert (s[:, :, p == 0] == 0).all()  # zero rate -> exactly no spikes


def test_poisson_counts(gen) -> None:
    enc = RateEncoder(max_rate=2.0, mode="poisson", signed="abs")
    x = torch.full((20000, 1, 1), 0.75)  # lambda = 1.5
    s = enc(x, gen(1))
    n, lam = s.numel(), 1.5
    assert abs(s.mean().item() - lam) < 5 * math.sqrt(lam / n)
    assert abs(s.var().item() - lam) < 0.1  # Poisson: variance = mean
    assert s.max() > 1  # counts, not just 0/1


def test_steps_per_frame_and_determinism(gen) -> None:
    enc = RateEncoder(max_rate=0.5, steps_per_frame=3)
    x = torch.rand(5, 2, 4, generator=gen(2))
    a, b, c = enc(x, gen(3)), enc(x, gen(3)), enc(x, gen(4))
    assert a.shape == (15, 2, 8) and enc.n_out(4) == 8
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert_close(enc.rates(x).repeat_interleave(3, 0)[::3], enc.rates(x))


def test_latency_code_closed_form() -> None:
    enc = LatencyEncoder(steps_per_frame=5, signed="error")
    x = torch.tensor([1.0, 0.5, 0.25, 0.0, 2.0]).view(1, 1, 5)
    s = enc(x)
    assert s.shape == (5, 1, 5)
    # k = round((1 - clip(v)) * 4): 1.0 -> 0, 0.5 -> 2, 0.25 -> 3, 0 -> none, 2.0 (clipped) -> 0
    expect = torch.zeros(5, 5)
    expect[0, 0] = expect[2, 1] = expect[3, 2] = expect[0, 4] = 1.0
    assert_close(s[:, 0], expect)
    assert enc.latency(x).view(-1).tolist() == [0, 2, 3, -1, 0]


def test_latency_ordering_and_one_spike_per_frame(gen) -> None:
    enc = LatencyEncoder(steps_per_frame=16)
    x = torch.rand(3, 2, 50, generator=gen(5)) * 2 - 1
    s = enc(x).view(3, 16, 2, 100)
    v = torch.cat([x.clamp_min(0), (-x).clamp_min(0)], -1)
    assert torch.equal(s.sum(1), (v > 0).float())  # exactly one spike per active channel per frame
    k = enc.latency(x).float()
    active = v > 0
    order = torch.argsort(v[active], descending=True)
    assert (k[active][order].diff() >= 0).all()  # stronger input -> no later spike


def test_sign_handling(gen) -> None:
    x = torch.tensor([[[0.5, -0.25]]])
    assert_close(DirectCurrent(signed="split", gain=2.0)(x), torch.tensor([[[1.0, 0.0, 0.0, 0.5]]]))
    assert_close(DirectCurrent(signed="abs")(x), torch.tensor([[[0.5, 0.25]]]))
    assert_close(DirectCurrent()(x), x)
    assert DirectCurrent().n_out(7) == 7 and RateEncoder().n_out(7) == 14 and RateEncoder(signed="abs").n_out(7) == 7
    with pytest.raises(ValueError, match="negative"):
        RateEncoder(signed="error")(x, gen(0))
    assert RateEncoder(signed="error")(x.abs(), gen(0)).shape == (1, 1, 2)
    with pytest.raises(ValueError, match="signed"):
        RateEncoder(signed="pass")  # spikes cannot carry a sign


def test_direct_current_repeat_and_grad() -> None:
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    enc = DirectCurrent(gain=3.0, steps_per_frame=2)
    y = enc(x)
    assert_close(y[0::2], 3 * x)
    assert_close(y[1::2], 3 * x)
    assert torch.autograd.gradcheck(lambda v: enc(v), (x,))


def test_encode_episode_uses_unscaled_inputs(gen) -> None:
    task = PatternTask(PATTERN50)
    ep = task.sample(2, gen(0))
    enc = DirectCurrent(signed="split", steps_per_frame=2)
    sp = enc.encode_episode(ep)
    assert sp.inputs.shape == (2 * task.T, 2, 100)
    assert sp.inputs.max() == 1.0  # +-1 inputs, not +-20
    assert sp.mask is not None and sp.mask.shape == (2 * task.T, 2)
    assert sp.mask[-1].all() and int(sp.mask.sum()) == 2
    assert sp.info is not None and sp.info["steps_per_frame"] == 2
    assert torch.equal(sp.targets, ep.targets)


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="max_rate"):
        RateEncoder(max_rate=1.5)
    RateEncoder(max_rate=1.5, mode="poisson")
    with pytest.raises(ValueError, match="steps_per_frame"):
        LatencyEncoder(steps_per_frame=0)
    with pytest.raises(TypeError):
        RateEncoder(rate=0.5)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        RateEncoder(0.5)  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"\[T, B, n\]"):
        RateEncoder()(torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"\[T, B, n\]"):
        DirectCurrent()(torch.zeros(3, 4, 5, dtype=torch.long))
    with pytest.raises(TypeError, match="generator"):
        RateEncoder()(torch.zeros(1, 1, 1), 3)  # type: ignore[arg-type]
    enc = RateEncoder()
    with pytest.raises(Exception):
        enc.max_rate = 0.2  # type: ignore[misc]  # frozen
