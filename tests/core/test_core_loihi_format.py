"""spikeplastic.loihi_format: the one place of Loihi's number formats, checked against brute force.

The references here are written independently (exact rationals, loops over every ``(m, e)``), and
the straight-through torch forms that training uses are checked against the numpy forms that the
exporter uses, forward and backward.
"""
from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from spikeplastic import loihi_format as lf

ROOT = Path(__file__).resolve().parents[2]


def _brute_nearest(v: float) -> float:
    """Nearest m*2^e over every (m, e) pair, exact arithmetic; ties to the smaller magnitude."""
    fv = Fraction(v)
    cands = {Fraction(m) * Fraction(2) ** e for m in range(-8, 8) for e in range(-7, 9)}
    return float(min(cands, key=lambda c: (abs(c - fv), abs(c))))


def _values(seed: int) -> np.ndarray:
    """Random values of every scale and sign, the grid itself and the midpoints between grid neighbours."""
    g = np.random.default_rng(seed)
    grid = np.array(sorted({m * 2.0**e for m in range(-8, 8) for e in range(-7, 9)}))
    mids = (grid[1:] + grid[:-1]) / 2
    return np.concatenate([
        g.uniform(-2500, 2500, 300), g.uniform(-1, 1, 300), g.uniform(-0.03, 0.03, 300),
        grid, mids, [-1e6, 1e6, 0.0],
    ])


def test_literal_grid_is_every_m_2e_once() -> None:
    exact = {Fraction(m) * Fraction(2) ** e for m in range(-8, 8) for e in range(-7, 9)}
    assert len(exact) == 136  # 16 x 16 pairs, 136 distinct values
    assert lf.LITERALS.shape == (136,) and np.all(np.diff(lf.LITERALS) > 0)
    assert [Fraction(float(c)) for c in lf.LITERALS] == sorted(exact)
    assert all(lf.is_literal(c) for c in lf.LITERALS)
    for c in lf.LITERALS:
        m, e = lf.literal_parts(float(c))
        assert m * 2.0**e == c and -8 <= m <= 7 and -7 <= e <= 8
    mids = (lf.LITERALS[1:] + lf.LITERALS[:-1]) / 2
    assert not any(lf.is_literal(v) for v in mids)


@pytest.mark.parametrize("seed", [0, 1])
def test_nearest_literal_matches_brute_force(seed: int) -> None:
    vals = _values(seed)
    got = lf.nearest_literal(vals)
    assert isinstance(got, np.ndarray) and got.shape == vals.shape
    np.testing.assert_array_equal(got, [_brute_nearest(float(v)) for v in vals])
    assert all(lf.nearest_literal(float(v)) == _brute_nearest(float(v)) for v in vals[::37])
    assert isinstance(lf.nearest_literal(0.1), float) and lf.nearest_literal(0.1) == 3 * 2**-5


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_nearest_literal_torch_form_is_the_numpy_form_straight_through(dtype: torch.dtype) -> None:
    vals = _values(2)
    x = torch.tensor(vals, dtype=dtype, requires_grad=True)
    y = lf.nearest_literal(x)
    (y * torch.arange(len(vals), dtype=dtype)).sum().backward()
    np.testing.assert_array_equal(y.detach().numpy(), lf.nearest_literal(x.detach().double().numpy()))
    np.testing.assert_array_equal(x.grad.numpy(), np.arange(len(vals)))  # identity gradient
    assert y.dtype == dtype


def _ste_check(fn_t, x: np.ndarray, expect: np.ndarray) -> None:
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = fn_t(xt)
    w = torch.linspace(-1, 2, xt.numel(), dtype=torch.float64).reshape(xt.shape)
    (y * w).sum().backward()
    np.testing.assert_array_equal(y.detach().numpy(), expect)
    np.testing.assert_array_equal(xt.grad.numpy(), w.numpy())


def test_lif_constant_ste_forms_equal_numpy_forms() -> None:
    g = np.random.default_rng(3)
    d = np.concatenate([g.uniform(0, 1, 500), [0.0, 1.0, 1 / 8192, 4095.5 / 4096, 0.5 / 4096]])
    _ste_check(lf.dv_ste, d, lf.dv_value(lf.quantize_dv(d)))
    _ste_check(lf.du_ste, d, lf.du_value(lf.quantize_du(d)))
    assert lf.quantize_dv(np.array([1.0]))[0] == 4095 and lf.quantize_du(np.array([1.0]))[0] == 4095
    assert lf.quantize_du(np.array([0.0]))[0] == 0  # Lava adds 1: 1/4096
    k = 2**14 / 1.7
    vth = g.uniform(0.05, 1.7, 300)
    _ste_check(lambda v: lf.vth_ste(v, torch.tensor(k, dtype=torch.float64)), vth, lf.quantize_vth(vth, k) / k)
    for scale in (1e-3, 0.3, 30.0):  # small biases (mantissa only) and large ones (exponent > 0)
        b = g.normal(size=300) * scale
        mant, bexp = lf.quantize_bias(b, k)
        assert np.all(np.abs(mant) <= 2**12 - 1) and np.all(bexp >= 0)
        _ste_check(lambda v: lf.bias_ste(v, torch.tensor(k, dtype=torch.float64)), b, mant * 2.0**bexp / (64 * k))
    tau = np.concatenate([g.uniform(0.2, 300, 300), [0.5, 1.5, 2.5, 254.5]])
    _ste_check(lf.tau_ste, tau, np.clip([lf.quantize_tau(t) for t in tau], 1, 255).astype(np.float64))


@pytest.mark.parametrize("sign", ["mixed", "excitatory", "inhibitory"])
@pytest.mark.parametrize("plastic", [False, True])
def test_weight_ste_form_equals_numpy_form(sign: str, plastic: bool) -> None:
    g = np.random.default_rng(4)
    halfway_seen, k_by = 0, {"threshold": 0, "weight": 0}
    for trial in range(30):
        w = g.normal(size=(7, 9)) * 10 ** g.uniform(-2, 2)
        w = {"mixed": w, "excitatory": np.abs(w), "inhibitory": -np.abs(w)}[sign]
        vth_max = g.uniform(0.2, 3)
        limit = lf.weight_limit(plastic, 2.0)
        k = lf.fixed_point_scale(vth_max, [(float(np.abs(w).max()), limit)])
        kt = torch.tensor(k, dtype=torch.float64)
        k_by["threshold" if k == 2**14 / vth_max else "weight"] += 1
        wexp = lf.weight_exponent(float(np.abs(w).max()), k, limit)
        assert 0 <= wexp <= 7
        w_int, mode = lf.quantize_weights(w, k, wexp, plastic)
        assert mode == ("mixed" if plastic else sign)
        assert np.all(np.abs(w_int) <= limit + 1) and (mode != "mixed" or np.all(w_int % 2 == 0))
        lsb = 2.0**wexp / k
        xt = torch.tensor(w, requires_grad=True)
        y = lf.weights_ste(xt, kt, limit, plastic)
        y.sum().backward()
        np.testing.assert_array_equal(xt.grad.numpy(), np.ones_like(w))
        got = y.detach().numpy()
        differ = got != w_int * lsb  # the torch form: the same integers times the LSB 2^wexp / k ...
        # ... except where w / LSB lies on a rounding half-way point (the even grid of a mixed matrix
        # at an odd integer), which w*k/2^wexp and w/(2^wexp/k) can round apart: the largest weight
        # of a plastic matrix that sets k lands on limit = 127 by construction (see loihi_format)
        q = np.abs(w) * k / 2.0**wexp / (2 if mode == "mixed" else 1)
        halfway = np.abs(q - np.floor(q) - 0.5) < 1e-9
        assert not np.any(differ & ~halfway), trial
        np.testing.assert_allclose(np.abs(got - w_int * lsb)[differ], (2 if mode == "mixed" else 1) * lsb, rtol=1e-12)
        halfway_seen += int(differ.sum())
    assert min(k_by.values()) >= 5, k_by  # both regimes were compared
    assert halfway_seen <= (3 if plastic else 0)


def test_fixed_point_scale() -> None:
    g = np.random.default_rng(5)
    for _ in range(200):
        vth_max, wmax, limit = g.uniform(0.1, 3), g.uniform(0.01, 300), g.choice([254.0, 127.0])
        k = lf.fixed_point_scale(vth_max, [(wmax, limit), (0.0, 254.0)])
        assert k == min(2**14 / vth_max, limit * 128 / wmax)
        kt = lf.fixed_point_scale(torch.tensor(vth_max, dtype=torch.float64), [(torch.tensor(wmax, dtype=torch.float64), limit)])
        if k == 2**14 / vth_max:  # the threshold sets k: the same float
            assert float(kt) == k
        else:  # a weight sets it: torch divides a number by a tensor as reciprocal times number (1 ulp)
            assert float(kt) == pytest.approx(k, rel=2.3e-16, abs=0)
    assert lf.fixed_point_scale(2.0, []) == 2**13


def test_trace_impulses() -> None:
    for tau in (1, 2, 8, 20, 255):
        cap = lf.impulse_cap(tau)
        f = math.exp(-1 / tau)
        assert cap == max(1, math.floor(127 * (1 - f)))
        if 127 * (1 - f) >= 1:  # the cap is the largest impulse whose worst-case trace stays <= 127
            assert cap / (1 - f) <= 127 < (cap + 1) / (1 - f) and lf.trace_peak(cap, tau) == cap / (1 - f)
        else:
            assert cap == 1 and lf.trace_peak(cap, tau) == 127
        assert lf.lava_trace_decay(tau) == pytest.approx(math.exp(-1 / tau), rel=1e-15)
    imp, m, e, err = lf.best_scaled_impulse(3.7, 0)
    assert 1 <= imp <= 127 and 1 <= m <= 7 and -7 <= e <= 8 and abs(imp * m * 2.0**e - 3.7) / 3.7 == err < 0.01
    assert lf.best_scaled_impulse(1e9, 0) is None and lf.best_scaled_impulse(1e-9, 0) is None


def test_the_grid_is_written_once() -> None:
    """No module of the package or the exporter spells the literal grid or its own nearest_literal
    again (the Lava numpy models in export/lava_models are independent references by design)."""
    grid = re.compile(r"range\(\s*-7\s*,\s*9\s*\)|range\(\s*-8\s*,\s*8\s*\)|def nearest_literal\b")
    hits = []
    for folder in ("spikeplastic", "export"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "loihi_format.py" or "lava_models" in path.parts:
                continue
            hits += [f"{path.relative_to(ROOT)}:{i}" for i, line in enumerate(path.read_text().splitlines(), 1)
                     if grid.search(line)]
    assert not hits, f"the literal grid or nearest_literal is defined outside spikeplastic.loihi_format: {hits}"
    from spikeplastic import quant
    from spikeplastic.export import _plan, quantize

    assert quant.nearest_literal is lf.nearest_literal
    assert quantize.nearest_literal is lf.nearest_literal and _plan.literal_parts is lf.literal_parts
