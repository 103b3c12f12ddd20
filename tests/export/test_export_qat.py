"""Loihi-legal training (spikeplastic.quant) against the exporter's fixed-point projection and emulator.

``quantize_ir`` and ``simulate_fixed`` are written independently of ``spikeplastic.quant`` (they
follow Lava's integer models), so agreement here means the torch forward of a QAT network *is* the
fixed-point network the exporter produces. No Lava needed.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import spikeplastic as sp
from spikeplastic.export import quantize_ir, simulate_fixed
from spikeplastic.quant import LoihiSpec, loihi_legal, remove_loihi_legal


def _net(seed: int, *, recurrent: bool, rule=None, dv=0.13, du=0.37, bias=0.02) -> sp.Network:
    torch.manual_seed(seed)
    with torch.device("cpu"):
        net = sp.Network.feedforward(
            [12, 10, 6], recurrent=recurrent, rule=rule,
            lif=dict(du=du, dv=dv, vth=1.0, bias=bias), linear=dict(weight_scale=1.6),
        )
    return net.double()


def _inputs(T: int, n: int, seed: int, rate: float = 0.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((T, 1, n), rate, dtype=torch.float64), generator=g)


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_qat_forward_is_fixed_point_bit_exact(seed: int, recurrent: bool) -> None:
    net = loihi_legal(_net(seed, recurrent=recurrent))
    x = _inputs(200, 12, seed)
    with torch.no_grad():
        rec, _ = net(x, record=("spikes", "voltages"))
    fixed, report = quantize_ir(net.to_ir())
    # the QAT values already lie on the exporter's grid: no rounding left
    for name, info in report.projections.items():
        assert info["weight_abs_error"] < 1e-12, (name, info)
    for name, info in report.populations.items():
        assert info["vth_rel_error"] < 1e-12 and info["dv_abs_error"] < 1e-15 and info["du_abs_error"] < 1e-15, info
        assert info["bias_abs_error"] < 1e-12, info
    ref = simulate_fixed(fixed, x[:, 0])
    total = 0
    for name in net.pops:
        got = rec.spikes[name][:, 0].numpy()
        np.testing.assert_array_equal(got, ref.spikes[name])
        total += int(got.sum())
        k = report.populations[name]["scale"]
        np.testing.assert_array_equal(np.rint(rec.voltages[name][:, 0].numpy() * 64 * k), ref.voltages[name])
    assert total > 20  # the comparison saw real activity


def test_without_qat_the_float_net_differs_from_fixed_point() -> None:
    """The check above can fail: the unprojected float net is not the integer net."""
    net = _net(0, recurrent=True)
    x = _inputs(200, 12, 0)
    with torch.no_grad():
        rec, _ = net(x, record=("voltages",))
    fixed, report = quantize_ir(net.to_ir())
    ref = simulate_fixed(fixed, x[:, 0])
    k = report.populations["l1"]["scale"]
    assert not np.array_equal(np.rint(rec.voltages["l1"][:, 0].numpy() * 64 * k), ref.voltages["l1"])


def test_qat_gradients_pass_straight_through() -> None:
    net = loihi_legal(_net(3, recurrent=True, rule=lambda: sp.STDP(0.05, 0.04, 7.3, 9.6)))
    rec, _ = net(_inputs(60, 12, 3, rate=0.4))
    loss = sum(s.sum() for s in rec.spikes.values())
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert any(float(p.grad.abs().sum()) > 0 for n, p in net.named_parameters() if "weight" in n)


def test_qat_rounds_taus_and_literals_and_can_be_removed() -> None:
    net = _net(4, recurrent=False, rule=lambda: sp.STDP(0.05, 0.04, 7.3, 9.6))
    net.projs["in_to_l1"].decay.value.fill_(0.1)
    loihi_legal(net)
    r = net.projs["in_to_l1"].rule
    assert float(r.tau_plus().detach()) == 7.0 and float(r.tau_minus().detach()) == 10.0
    assert float(net.projs["in_to_l1"].decay()) == 0.09375  # 3*2^-5, the literal nearest 0.1
    remove_loihi_legal(net)
    assert float(r.tau_plus().detach()) == pytest.approx(7.3)
    assert net.pops["l1"].quantum is None


def test_qat_rejects_constructs_without_fixed_point_model() -> None:
    net = sp.Network.feedforward([4, 3], lif=dict(reset="subtract"))
    with pytest.raises(ValueError, match="reset"):
        loihi_legal(net)
    net = sp.Network.feedforward([4, 3], rule="stdp", linear=dict(clip=1.0))
    with pytest.raises(ValueError, match="clip"):
        loihi_legal(net)
    with pytest.raises(ValueError, match="vth_int"):
        LoihiSpec(vth_int=0)


def test_lava_literals_puts_learned_coefficients_on_the_rule_grid() -> None:
    from spikeplastic.loihi_format import is_literal
    from spikeplastic.quant import lava_literals

    torch.manual_seed(0)
    net = sp.Network.feedforward(
        [6, 5], recurrent=False, rule=lambda: sp.Oja(0.0937500074),
        linear=dict(decay=0.0123, learn_decay=True),
    ).double()
    before = net.to_ir().projections[0]
    assert not is_literal(before.decay) and not is_literal(before.rule.eta)
    lava_literals(net)
    after = net.to_ir().projections[0]
    assert is_literal(after.decay) and is_literal(after.rule.eta)
    # nearest literals: 2*2^-7 (3*2^-8 is outside e in [-7, 8]) and 3*2^-5
    assert after.decay == 0.015625 and after.rule.eta == 0.09375
    x = _inputs(30, 6, 0, rate=0.5)
    rec, _ = net(x)
    rec.spikes["l1"].sum().backward()
    assert net.projs["in_to_l1"].decay.raw.grad is not None  # straight-through
