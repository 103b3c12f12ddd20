"""Float export: Lava runs the torch float64 reference spike for spike, weights to rounding."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import spikeplastic as sp
from export_cases import needs_lava
from export_cases import FLOAT_CASES, N_IN, Case, spikes, stdp_recurrent, third

pytestmark = [pytest.mark.lava, needs_lava]

T = 150
REL_TOL = 1e-9


def _ref(ir, x, tf):
    return sp.simulate(ir, x, third_factor=tf)


@pytest.mark.parametrize("case", FLOAT_CASES, ids=lambda c: c.name)
def test_float_export_matches_torch_reference(case: Case, no_stray_processes: None) -> None:
    from spikeplastic.export import to_lava

    ir = case.make()
    rng = np.random.default_rng(11)
    x = rng.normal(0, 1.0, size=(T, N_IN)) if ir.input.input_kind == "current" else spikes(T)
    tf = third(T) if case.third_factor else None
    ref = _ref(ir, x, tf)
    rec = to_lava(ir, timeout=120).run(x, third_factor=tf)
    assert set(rec.spikes) == set(ref.spikes)
    total = 0
    for k, s in rec.spikes.items():
        np.testing.assert_array_equal(s, ref.spikes[k][:, 0].numpy(), err_msg=f"spikes of {k}")
        total += int(s.sum())
        torch.testing.assert_close(torch.from_numpy(rec.voltages[k]), ref.voltages[k][:, 0], rtol=0, atol=1e-10)
    assert total > 20, "the test net must actually spike"
    plastic = [p.name for p in ir.projections if p.plastic]
    assert sorted(rec.weights or {}) == sorted(plastic)
    for k, w in (rec.weights or {}).items():
        w_ref = ref.weights[k][:, 0].numpy()
        assert w.shape == w_ref.shape
        scale = np.abs(w_ref).max()
        assert np.abs(w_ref - w_ref[0]).max() > 1e-3 * scale, f"{k}: the rule must change the weights"
        np.testing.assert_allclose(w, w_ref, rtol=0, atol=REL_TOL * scale, err_msg=f"weights of {k}")


def test_verify_report_float(no_stray_processes: None) -> None:
    from spikeplastic.export import verify

    rep = verify(stdp_recurrent(), steps=120, seed=3)
    assert rep.ok and rep.mode == "float" and rep.steps == 120
    assert rep.spike_agreement_pct == 100.0 and rep.first_divergent_step is None
    assert 0 <= rep.max_rel_dw < REL_TOL and rep.weight_scale > 0
    assert rep.lava_steps_per_s > 0 and rep.torch_steps_per_s > 0
    assert all(p.mismatches == 0 for p in rep.populations.values())
    assert all(q.max_weight_change > 0 for q in rep.projections.values())
    d = json.loads(rep.to_json())
    assert d["ok"] is True and set(d["populations"]) == {"l1", "l2"}


def test_verify_detects_divergence(no_stray_processes: None) -> None:
    """verify compares what it is given: different inputs for torch and Lava must show up as divergence."""
    from spikeplastic.export import _lava, verify

    orig = _lava.LavaNetwork.run

    def shifted(self, inputs, *a, **kw):  # feed Lava different spikes than the reference
        return orig(self, np.roll(np.asarray(inputs), 3, axis=0), *a, **kw)

    _lava.LavaNetwork.run = shifted
    try:
        rep = verify(stdp_recurrent(), steps=80, seed=3)
    finally:
        _lava.LavaNetwork.run = orig
    assert not rep.ok and rep.spike_agreement_pct < 100.0 and rep.first_divergent_step is not None


def test_run_checks_inputs_before_starting_lava(no_stray_processes: None) -> None:
    from spikeplastic.export import to_lava

    lnet = to_lava(stdp_recurrent())
    x = spikes(20)
    with pytest.raises(ValueError, match="steps=30 exceeds"):
        lnet.run(x, steps=30)
    with pytest.raises(ValueError, match="shape"):
        lnet.run(x[:, :3])
    with pytest.raises(ValueError, match="B == 1"):
        lnet.run(np.stack([x, x], axis=1))
    with pytest.raises(ValueError, match="0 and 1"):
        lnet.run(x * 0.5)
    with pytest.raises(ValueError, match="record"):
        lnet.run(x, record=("traces",))


def test_missing_third_factor_is_an_error(no_stray_processes: None) -> None:
    from export_cases import stdp_modulated

    from spikeplastic.export import to_lava

    with pytest.raises(ValueError, match="third_factor"):
        to_lava(stdp_modulated()).run(spikes(10))


def test_steps_and_partial_record(no_stray_processes: None) -> None:
    from spikeplastic.export import to_lava

    ir = stdp_recurrent()
    x = spikes(60)
    rec = to_lava(ir).run(x, steps=40, record=("spikes",))
    ref = sp.simulate(ir, x[:40])
    assert rec.voltages is None and rec.weights is None and rec.steps == 40
    for k, s in rec.spikes.items():
        np.testing.assert_array_equal(s, ref.spikes[k][:, 0].numpy())


def test_timeout_kills_lava_and_raises(no_stray_processes: None) -> None:
    from spikeplastic.export import LavaTimeoutError, to_lava

    lnet = to_lava(stdp_recurrent())
    with pytest.raises(LavaTimeoutError, match="did not finish"):
        lnet.run(spikes(2000), timeout=0.05)


def test_network_input_is_accepted(no_stray_processes: None) -> None:
    """to_lava takes a Network as well as its IR."""
    from spikeplastic.export import to_lava

    torch.manual_seed(0)
    net = sp.Network.feedforward([N_IN, 6], rule="stdp", linear={"weight_scale": 3.0})
    x = spikes(50, rate=0.5)
    rec = to_lava(net).run(x)
    ref = sp.simulate(net.to_ir(), x)
    np.testing.assert_array_equal(rec.spikes["l1"], ref.spikes["l1"][:, 0].numpy())
