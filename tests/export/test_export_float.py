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
# max |W_torch - W_lava| / max |W| (verify's float criterion, FLOAT_REL_TOL); measured on these cases,
# 150 steps: 0 (static), 3.8e-16 (hebb_oja) .. 2.7e-15 (stdp_alpha_decay)
REL_TOL = 1e-12
# max |v_torch - v_lava| (threshold scale ~1); measured: 0 (static) .. 1.2e-13 (stdp_recurrent)
V_TOL = 1e-12


def _ref(ir, x, tf):
    return sp.simulate(ir, x, third_factor=tf)


# node perturbation has its own test below (noise seeds, counts in the messages)
@pytest.mark.parametrize("case", [c for c in FLOAT_CASES if c.name != "node_perturbation"], ids=lambda c: c.name)
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
        torch.testing.assert_close(torch.from_numpy(rec.voltages[k]), ref.voltages[k][:, 0], rtol=0, atol=V_TOL)
    assert total > 20, "the test net must actually spike"
    plastic = [p.name for p in ir.projections if p.plastic]
    assert sorted(rec.weights or {}) == sorted(plastic)
    for k, w in (rec.weights or {}).items():
        w_ref = ref.weights[k][:, 0].numpy()
        assert w.shape == w_ref.shape
        scale = np.abs(w_ref).max()
        assert np.abs(w_ref - w_ref[0]).max() > 1e-3 * scale, f"{k}: the rule must change the weights"
        np.testing.assert_allclose(w, w_ref, rtol=0, atol=REL_TOL * scale, err_msg=f"weights of {k}")


def test_float_export_records_currents(no_stray_processes: None) -> None:
    """``record=("currents",)``: each LIF's current state u after step t, as ``Record.currents`` of
    ``Network.forward`` (and ``simulate``), on a net that spikes and learns (alpha, decay, recurrence)."""
    from export_cases import stdp_alpha_decay

    from spikeplastic.export import to_lava

    ir = stdp_alpha_decay()
    x = spikes(100, seed=3)
    rec = to_lava(ir, timeout=120).run(x, record=("spikes", "currents", "weights"))
    assert rec.voltages is None and rec.raw_currents is None
    net = sp.Network.from_ir(ir)
    with torch.no_grad():
        fwd, _ = net(torch.from_numpy(x)[:, None], record=("spikes", "currents"))
    sim = sp.simulate(ir, x, record=("spikes", "currents", "weights"))
    counts = rec.spike_counts()
    change = rec.weight_change()
    for k, u in rec.currents.items():
        np.testing.assert_array_equal(rec.spikes[k], fwd.spikes[k][:, 0].numpy(), err_msg=f"spikes of {k}")
        assert u.shape == (100, ir.population(k).n)
        for ref in (fwd.currents[k][:, 0].numpy(), sim.currents[k][:, 0].numpy()):
            err = np.abs(u - ref).max()
            assert err <= V_TOL, f"{k}: max |u_lava - u_torch| = {err:.3g} ({counts[k]} spikes)"
        assert np.abs(u).max() > 0.1, f"{k}: the currents must be driven ({counts[k]} spikes)"
    assert min(counts.values()) > 10 and min(change.values()) > 1e-3, (counts, change)


def test_verify_report_float(no_stray_processes: None) -> None:
    from spikeplastic.export import verify

    rep = verify(stdp_recurrent(), steps=120, seed=3, random_inputs=0.3)
    assert rep.ok and rep.mode == "float" and rep.steps == 120 and rep.episodes == 1, rep.summary()
    assert rep.spike_agreement_pct == 100.0 and rep.first_divergent_step is None
    assert 0 <= rep.max_rel_dw <= REL_TOL and rep.weight_scale > 0
    assert rep.lava_steps_per_s > 0 and rep.torch_steps_per_s > 0
    for p in rep.populations.values():  # counts next to the ok: both sides spike, spike for spike
        assert p.mismatches == 0 and p.spikes_reference == p.spikes_lava == p.matched > 0
    assert all(q.max_weight_change > 0 and q.max_weight_change_lava > 0 for q in rep.projections.values())
    assert rep.reasons == [] and rep.silent == [] and "random (requested)" in rep.inputs
    d = json.loads(rep.to_json())
    assert d["ok"] is True and set(d["populations"]) == {"l1", "l2"}
    text = rep.summary()
    assert "l1 (8 neurons)" in text and "in_to_l1:" in text and "verify: ok" in text


def test_verify_detects_divergence(no_stray_processes: None) -> None:
    """verify compares what it is given: different inputs for torch and Lava must show up as divergence."""
    from spikeplastic.export import lava_network, verify

    orig = lava_network.LavaNetwork.run

    def shifted(self, inputs, *a, **kw):  # feed Lava different spikes than the reference
        return orig(self, np.roll(np.asarray(inputs), 3, axis=0), *a, **kw)

    lava_network.LavaNetwork.run = shifted
    try:
        rep = verify(stdp_recurrent(), steps=80, seed=3, random_inputs=0.3)
    finally:
        lava_network.LavaNetwork.run = orig
    assert not rep.ok and rep.spike_agreement_pct < 100.0 and rep.first_divergent_step is not None
    assert any("spike mismatches" in r for r in rep.reasons)


def test_agreement_counts_spike_events_not_silent_cells(no_stray_processes: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A silent Lava side scores 0 % (not the share of (neuron, step) cells that happen to agree)."""
    import dataclasses

    from spikeplastic.export import lava_network, verify

    orig = lava_network.LavaNetwork.run

    def silent(self, *a, **kw):
        rec = orig(self, *a, **kw)
        return dataclasses.replace(rec, spikes={k: np.zeros_like(v) for k, v in rec.spikes.items()})

    monkeypatch.setattr(lava_network.LavaNetwork, "run", silent)
    rep = verify(stdp_recurrent(), steps=60, seed=3, random_inputs=0.3, allow_silent=True)
    assert rep.spike_agreement_pct == 0.0 and not rep.ok  # mismatches fail float mode even with allow_silent
    for k, p in rep.populations.items():
        assert p.spikes_lava == 0 and p.spikes_reference > 0 and p.agreement_pct == 0.0 and p.matched == 0
    assert sum(f"population {k!r} is silent" in r for k in rep.populations for r in rep.silent) == 2


def test_both_sides_silent_is_flagged_not_100_percent(no_stray_processes: None) -> None:
    """A network that never spikes agrees with itself trivially: no agreement to report, and not ok."""
    from spikeplastic.export import verify

    torch.manual_seed(0)
    net = sp.Network.feedforward([N_IN, 6], rule="stdp", lif={"bias": -50.0})
    rep = verify(net, steps=40, random_inputs=0.5)
    assert not rep.ok and rep.spike_agreement_pct is None
    p = rep.populations["l1"]
    assert p.spikes_reference == p.spikes_lava == 0 and p.agreement_pct is None
    assert any("'l1' is silent" in r for r in rep.reasons)
    assert any("'in_to_l1' did not change" in r for r in rep.reasons)
    assert "NOT OK" in rep.summary() and "n/a (no spike on either side)" in rep.summary()
    accepted = verify(net, steps=40, random_inputs=0.5, allow_silent=True)
    assert accepted.ok and accepted.silent == rep.silent and "accepted (allow_silent)" in accepted.summary()


def test_verify_needs_an_input_source_and_checks_inputs() -> None:
    """Random inputs only on request; bad inputs name the argument and the expected form (no Lava started)."""
    from spikeplastic.export import verify

    ir = stdp_recurrent()
    with pytest.raises(ValueError, match="random_inputs=RATE"):
        verify(ir)
    with pytest.raises(ValueError, match=r"inputs must have shape \[T, 10\] .*got \(20, 3\)"):
        verify(ir, inputs=np.zeros((20, 3)))
    with pytest.raises(ValueError, match=r"\[T, 1, n_in\] is not a batch here"):
        verify(ir, inputs=np.zeros((20, 1, N_IN)))
    with pytest.raises(ValueError, match="only 0 and 1"):
        verify(ir, inputs=np.full((20, N_IN), 0.5))
    with pytest.raises(ValueError, match=r"random_inputs must be a rate in \(0, 1\]"):
        verify(ir, random_inputs=1.5)
    with pytest.raises(ValueError, match="not both"):
        verify(ir, inputs=spikes(20), random_inputs=0.2)
    with pytest.raises(ValueError, match="episodes= applies to task inputs only"):
        verify(ir, random_inputs=0.2, episodes=2)
    with pytest.raises(ValueError, match="steps=30 exceeds"):
        verify(ir, inputs=spikes(20), steps=30)


def test_verify_runs_each_episode_from_a_fresh_state(no_stray_processes: None) -> None:
    """[episodes, T, n_in] inputs: one run per episode on both sides; counts add up over the episodes."""
    from spikeplastic.export import verify

    ir = stdp_recurrent()
    x = np.stack([spikes(30, seed=1), spikes(30, seed=2)])
    rep = verify(ir, inputs=x)
    assert rep.ok and rep.episodes == 2 and rep.steps == 60, rep.summary()
    want = sum(int(sp.simulate(ir, xe).spikes["l1"].sum()) for xe in x)  # each from initial_state
    assert rep.populations["l1"].spikes_reference == rep.populations["l1"].spikes_lava == want


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


def test_node_perturbation_noise_seed_is_reproduced_in_lava(no_stray_processes: None) -> None:
    """Node perturbation in float: Lava injects the torch noise stream of the run's seed (the spikes
    depend on the seed, and Lava follows the reference of *its* seed spike for spike), and the
    three-factor rule moves the weights the same way. Counts in the messages: the check can fail."""
    from export_cases import node_perturbation

    from spikeplastic.export import to_lava

    ir = node_perturbation()
    T = 100
    x, tf = spikes(T, seed=4), third(T, seed=5)
    rec = to_lava(ir, timeout=120).run(x, third_factor=tf, noise_seed=7)
    ref = sp.simulate(ir, x, third_factor=tf, noise_seed=7)
    other = sp.simulate(ir, x, third_factor=tf, noise_seed=8)
    for k, s in rec.spikes.items():
        r, o = ref.spikes[k][:, 0].numpy(), other.spikes[k][:, 0].numpy()
        n_l, n_r, bad, by_seed = int(s.sum()), int(r.sum()), int((s != r).sum()), int((o != r).sum())
        assert bad == 0 and n_r > 20, f"{k}: {n_l} Lava spikes, {n_r} reference spikes, {bad} mismatches"
        assert by_seed > 0, f"{k}: another noise seed changes no spike ({n_r} spikes): the noise is not reaching them"
    for k, w in rec.weights.items():
        w_ref = ref.weights[k][:, 0].numpy()
        scale, moved, err = np.abs(w_ref).max(), np.abs(w_ref - w_ref[0]).max(), np.abs(w - w_ref).max()
        assert moved > 1e-2 * scale and err <= REL_TOL * scale, \
            f"{k}: max |W[t] - W[0]| = {moved:.3g}, max |W_lava - W_torch| = {err:.3g}, weight scale {scale:.3g}"


def test_node_perturbation_verify_and_bad_noise_seed(no_stray_processes: None) -> None:
    from export_cases import node_perturbation

    from spikeplastic.export import to_lava, verify

    ir = node_perturbation()
    rep = verify(ir, steps=60, seed=2, random_inputs=0.3)
    assert rep.ok and rep.spike_agreement_pct == 100.0, rep.summary()
    changes = {k: q.max_weight_change for k, q in rep.projections.items()}
    assert all(v > 0 for v in changes.values()), changes
    with pytest.raises(ValueError, match="noise_seed"):
        to_lava(ir).run(spikes(10), third_factor=third(10), noise_seed=-1)
