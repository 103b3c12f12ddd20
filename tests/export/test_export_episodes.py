"""Many episodes per Lava run: ``replicate`` (block-diagonal copies) and ``LavaNetwork.run_episodes``.

The torch-only tests check the replica itself (structure, and that ``simulate`` of the replica is the
batched torch run); the Lava tests (3 Lava runs in all) check ``run_episodes`` against
``Network.forward`` with a batch (float) and ``simulate_fixed`` per episode (fixed, bit-exact).
Counts of spikes and weight changes are asserted next to every equality: a silent or frozen net
would agree vacuously.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import spikeplastic as sp
from export_cases import (N_IN, hebb_oja, needs_lava, node_perturbation, spikes, stdp_alpha_decay, stdp_feedforward,
                          stdp_modulated, subtract_reset)
from spikeplastic import ir as _ir

from spikeplastic.export import ExportError, replicate, simulate_fixed

T = 66
REL_TOL = 1e-12  # float: max |W_lava - W_torch| / max |W|, and |u|, |v| differences (measured <= 3e-14)


def _episode_net(n_in: int = 20, n: int = 4) -> _ir.NetworkIR:
    """The deployment structure, small: inputs -> LIF, STDP with per-synapse alpha, decay to the anchor."""
    torch.manual_seed(21)
    alpha = torch.empty(n, n_in).uniform_(-1.0, 1.0)
    lif = sp.LIF(n, du=0.6, dv=torch.linspace(0.1, 0.3, n), vth=0.5)
    proj = sp.PlasticLinear(n_in, n, weight_scale=2.0, rule=sp.STDP(0.04, 0.045, 7.3, 11.1, learn=False),
                            alpha_init=alpha, decay=2**-5)
    return sp.Network(n_in, {"out": lif}, [("in", "out", proj)]).to_ir()


def _episodes(E: int, n_in: int = 20, rate: float = 0.25, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((T, E, n_in)) < rate).astype(np.float64)


def _batched(ir: _ir.NetworkIR, x: np.ndarray, tf: np.ndarray | None = None) -> sp.Record:
    """The torch reference: ``Network.forward`` with batch E, float64, every episode from a fresh state."""
    net = sp.Network.from_ir(ir)
    with torch.no_grad():
        rec, _ = net(torch.from_numpy(x), record=("spikes", "voltages", "currents", "weights"),
                     third_factor=None if tf is None else torch.from_numpy(tf))
    return rec


# ---- replicate (torch only) ---------------------------------------------------------------------------
def test_replicate_is_block_diagonal_with_exact_zeros() -> None:
    ir = stdp_modulated()  # per-synapse/absent alpha, shared and per-neuron modulation weights, recurrence
    c = 3
    rep = replicate(ir, c)
    assert rep.meta["copies"] == 3 and replicate(rep, 2).meta["copies"] == 6
    assert replicate(ir, 1) is ir
    for p, q in zip(ir.populations, rep.populations):
        assert (q.name, q.n, q.kind) == (p.name, c * p.n, p.kind)
        if p.kind == "lif":
            for k in ("du", "dv", "vth", "bias"):
                np.testing.assert_array_equal(getattr(q, k), np.tile(getattr(p, k), c))
    for p, q in zip(ir.projections, rep.projections):
        n_post, n_pre = p.weight.shape
        alpha = np.broadcast_to(1.0 if p.alpha is None else p.alpha, p.weight.shape)
        for big, small in ((q.weight, p.weight), (q.alpha, alpha)):
            assert big.shape == (c * n_post, c * n_pre)
            for a in range(c):
                for b in range(c):
                    blk = big[a * n_post:(a + 1) * n_post, b * n_pre:(b + 1) * n_pre]
                    if a == b:
                        np.testing.assert_array_equal(blk, small)
                    else:  # exact +0.0 (no -0.0 from multiplying a negative weight by 0)
                        assert not np.any(blk) and not np.any(np.signbit(blk)), (p.name, a, b)
        assert (q.rule, q.decay, q.clip) == (p.rule, p.decay, p.clip)
        m, mq = p.modulation, q.modulation
        if m.source is None:
            assert mq == m
        else:  # per-neuron form: each copy's rows read only that copy's source block
            n_src = ir.population(m.source).n
            w = np.broadcast_to(m.weight, (n_post, n_src))
            assert mq.weight.shape == (c * n_post, c * n_src) and mq.bias.shape == (c * n_post,)
            np.testing.assert_array_equal(mq.weight[n_post:2 * n_post, n_src:2 * n_src], w)
            assert not np.any(mq.weight[n_post:2 * n_post, :n_src])
            np.testing.assert_array_equal(mq.bias, np.tile(np.broadcast_to(m.bias, (n_post,)), c))


@pytest.mark.parametrize("make", [_episode_net, stdp_alpha_decay, stdp_modulated, hebb_oja, subtract_reset],
                         ids=["episode_net", "stdp_alpha_decay", "stdp_modulated", "hebb_oja", "subtract_reset"])
def test_replica_runs_like_a_batch_in_torch(make) -> None:
    """simulate(replicate(ir, E)) on the episodes side by side == Network.forward with batch E:
    identical spikes, weights to rounding, off-block weights exactly 0 throughout."""
    ir = make()
    E = 4
    n_in = ir.input.n
    x = _episodes(E, n_in, rate=0.3, seed=5)
    modulated = [p for p in ir.projections if p.modulation is not None and p.modulation.source is None]
    tf = np.tanh(np.random.default_rng(6).normal(size=(T, E))) if modulated else None
    ref = _batched(ir, x, tf)
    tf_rep = None
    if tf is not None:  # per postsynaptic neuron of the replica (these cases modulate one post size)
        (n_post,) = {ir.population(p.post).n for p in modulated}
        tf_rep = np.repeat(tf, n_post, axis=1)[:, None]
    got = sp.simulate(replicate(ir, E), x.reshape(T, 1, E * n_in), record=("spikes", "currents", "weights"),
                      third_factor=tf_rep)
    for k, s in ref.spikes.items():
        n = ir.population(k).n
        a, b = got.spikes[k][:, 0].reshape(T, E, n).numpy(), s.numpy()
        bad = int((a != b).sum())
        assert bad == 0 and b.sum() > 5, f"{k}: {int(b.sum())} spikes in the batch, {bad} mismatches in the replica"
        du = np.abs(got.currents[k][:, 0].reshape(T, E, n).numpy() - ref.currents[k].numpy()).max()
        assert du <= REL_TOL, f"{k}: currents differ by {du:.3g}"
    for k, w in ref.weights.items():
        w = w.numpy()
        W = got.weights[k][:, 0].numpy()
        blocks = np.stack([W[:, e * w.shape[2]:(e + 1) * w.shape[2], e * w.shape[3]:(e + 1) * w.shape[3]]
                           for e in range(E)], axis=1)
        off = W.copy()
        for e in range(E):
            off[:, e * w.shape[2]:(e + 1) * w.shape[2], e * w.shape[3]:(e + 1) * w.shape[3]] = 0
        scale, moved, err = np.abs(w).max(), np.abs(w - w[0]).max(), np.abs(blocks - w).max()
        assert moved > 1e-3 * scale and err <= REL_TOL * scale and not np.any(off), \
            f"{k}: change {moved:.3g}, |dW| {err:.3g} (scale {scale:.3g}), max off-block {np.abs(off).max():.3g}"


def test_replicate_rejects_what_would_not_stay_independent() -> None:
    with pytest.raises(ExportError, match=r"projection 'in_to_l1': node perturbation cannot be replicated"):
        replicate(node_perturbation(), 2)
    replicate(node_perturbation(), 1)  # one copy is the network itself
    ir = stdp_modulated()  # l1_to_l1: retroactive, alpha per synapse, decay 0 -> fine; without alpha and with decay: not
    projs = [dataclasses.replace(p, alpha=None, decay=2**-6) if p.name == "l1_to_l1" else p for p in ir.projections]
    bad = dataclasses.replace(ir, projections=tuple(projs))
    with pytest.raises(ExportError, match=r"projection 'l1_to_l1': retroactive modulation with alpha=None and decay"):
        replicate(bad, 3)
    for c in (0, -2, 1.5, True, "2", None):
        with pytest.raises(ValueError, match=r"copies: expected an int >= 1, got"):
            replicate(ir, c)


@pytest.mark.lava
@needs_lava
def test_run_episodes_splits_third_factor_and_inputs_per_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The plumbing without a Lava run: chunk sizes, each copy's input block and third-factor rows, the batch axis."""
    from spikeplastic.export import lava_network, to_lava

    ir = stdp_modulated()
    E = 5
    x = _episodes(E, N_IN, seed=2)
    tf = np.tanh(np.random.default_rng(3).normal(size=(T, E)))
    seen = []

    def fake_run(self, xr, ext, noise, record, timeout):
        seen.append((xr, ext))
        c = xr.shape[1] // N_IN
        sp_ = {p.name: np.full((xr.shape[0], p.n), float(c)) for p in self.plan.populations if p.kind != "input"}
        return lava_network.LavaRecord(sp_, None, None, self.mode, xr.shape[0], 1.0, 2.0)

    monkeypatch.setattr(lava_network.LavaNetwork, "_run", fake_run)
    res = to_lava(ir).run_episodes(x, third_factor=tf, copies=2)
    assert [r[0].shape[1] // N_IN for r in seen] == [2, 2, 1] and res.runs == 3 and res.copies == 2
    e0 = 0
    for xr, ext in seen:
        c = xr.shape[1] // N_IN
        np.testing.assert_array_equal(xr, x[:, e0:e0 + c].reshape(T, c * N_IN))
        assert sorted(ext) == ["in_to_l1"]  # the only projection with an external third factor
        np.testing.assert_array_equal(ext["in_to_l1"], np.repeat(tf[:, e0:e0 + c], 8, axis=1).T)  # n_post = 8
        e0 += c
    assert res.spikes["l1"].shape == (T, E, 8) and res.weights is None and res.voltages is None
    np.testing.assert_array_equal(res.spikes["l1"][0, :, 0], [2, 2, 2, 2, 1])
    assert (res.wall_s, res.compile_s) == (3.0, 6.0)


@pytest.mark.lava
@needs_lava
def test_run_episodes_checks_before_starting_lava(no_stray_processes: None) -> None:
    from spikeplastic.export import to_lava

    from spikeplastic.export.batching import default_copies

    lnet = to_lava(_episode_net())
    x = _episodes(3)
    # copies * n_pre <= 1024 for the plastic 20 -> 4 projection, and never more than the episodes
    assert (default_copies(lnet.plan, 1000), default_copies(lnet.plan, 3)) == (51, 3)
    with pytest.raises(ValueError, match=r"inputs: expected \[T, E, 20\] .*got shape \(66, 20\)"):
        lnet.run_episodes(x[:, 0])
    with pytest.raises(ValueError, match="only 0 and 1"):
        lnet.run_episodes(x * 0.5)
    with pytest.raises(ValueError, match=r"copies: expected an int >= 1, got 0"):
        lnet.run_episodes(x, copies=0)
    with pytest.raises(ValueError, match="record entries"):
        lnet.run_episodes(x, record=("traces",))
    with pytest.raises(ValueError, match="no projection takes an external third factor"):
        lnet.run_episodes(x, third_factor=np.zeros((T, 3)))
    with pytest.raises(ValueError, match=r"third_factor: expected \[T\], \[T, E\] or \[T, E, n_post\]"):
        to_lava(stdp_modulated()).run_episodes(_episodes(3, N_IN), third_factor=np.zeros((T, 2)))
    with pytest.raises(ExportError, match="node perturbation cannot be replicated"):
        to_lava(node_perturbation()).run_episodes(_episodes(2, N_IN), third_factor=np.zeros(T), copies=2)
    # fixed mode: without alpha the integer rule of a replica would differ (tag factor, MAC shift)
    with pytest.raises(ExportError, match=r"projection 'in_to_l1': fixed mode replicates plastic projections with an alpha"):
        to_lava(stdp_feedforward(), mode="fixed").run_episodes(_episodes(2, N_IN), copies=2)


# ---- Lava (3 runs) ------------------------------------------------------------------------------------
@pytest.mark.lava
@needs_lava
def test_run_episodes_float_equals_batched_torch(no_stray_processes: None) -> None:
    """5 episodes in one Lava run == Network.forward with batch 5 (float64): spikes identical,
    voltages, currents and weights to rounding; the net spikes and learns in every episode."""
    from spikeplastic.export import to_lava

    ir = _episode_net()
    E = 5
    x = _episodes(E)
    res = to_lava(ir, timeout=120).run_episodes(x, copies=E, record=("spikes", "voltages", "currents", "weights"))
    ref = _batched(ir, x)
    assert (res.runs, res.copies, res.episodes, res.steps) == (1, E, E, T)
    s, s_ref = res.spikes["out"], ref.spikes["out"].numpy()
    per_episode = s_ref.sum(axis=(0, 2))
    bad = int((s != s_ref).sum())
    assert s.shape == (T, E, 4) and bad == 0 and per_episode.min() > 3, \
        f"spikes per episode (torch) {per_episode.tolist()}, Lava {s.sum(axis=(0, 2)).tolist()}, {bad} mismatches"
    for name, got, want in (("voltages", res.voltages["out"], ref.voltages["out"]),
                            ("currents", res.currents["out"], ref.currents["out"])):
        err = np.abs(got - want.numpy()).max()
        assert err <= REL_TOL, f"{name}: max difference {err:.3g}"
    w, w_ref = res.weights["in_to_out"], ref.weights["in_to_out"].numpy()
    assert w.shape == (T, E, 4, 20)
    moved = np.abs(w_ref - w_ref[0]).max(axis=(0, 2, 3))  # per episode
    scale, err = np.abs(w_ref).max(), np.abs(w - w_ref).max()
    assert moved.min() > 1e-2 * scale and err <= REL_TOL * scale, \
        f"weight change per episode {moved.tolist()}, max |W_lava - W_torch| {err:.3g} (scale {scale:.3g})"
    np.testing.assert_array_equal(res.initial_weights["in_to_out"], ir.projections[0].weight)
    assert res.weight_change()["in_to_out"] == pytest.approx(moved.max(), rel=1e-9)
    one = res.episode(2)
    np.testing.assert_array_equal(one.spikes["out"], s_ref[:, 2])
    assert one.weights["in_to_out"].shape == (T, 4, 20)


@pytest.mark.lava
@needs_lava
def test_run_episodes_fixed_is_bit_exact_with_emulation(no_stray_processes: None) -> None:
    """3 episodes in 2 Lava runs (2 copies, then 1): each equals simulate_fixed on its own, integer for integer."""
    from spikeplastic.export import to_lava

    ir = _episode_net()
    E = 3
    x = _episodes(E, seed=7)
    lnet = to_lava(ir, mode="fixed", rng_seed=5, timeout=120)
    res = lnet.run_episodes(x, copies=2, record=("spikes", "voltages", "currents", "weights"))
    assert (res.runs, res.copies, res.mode) == (2, 2, "fixed")
    for e in range(E):
        emu = simulate_fixed(lnet.fixed, x[:, e], rng_seed=5, record=("spikes", "voltages", "currents", "weights"))
        n_spk = int(emu.spikes["out"].sum())
        w = emu.weights["in_to_out"]
        moved = int(np.abs(w - lnet.fixed.projection("in_to_out").weights).max())
        for name, got, want in (("spikes", res.spikes["out"][:, e], emu.spikes["out"]),
                                ("voltages", res.raw_voltages["out"][:, e], emu.voltages["out"]),
                                ("currents", res.raw_currents["out"][:, e], emu.currents["out"]),
                                ("weights", res.raw_weights["in_to_out"][:, e], w)):
            bad = int((got != want).sum())
            assert bad == 0, f"episode {e}: {bad} {name} differ ({n_spk} spikes, weights moved {moved} LSB)"
        assert n_spk > 3 and moved >= 5, f"episode {e}: {n_spk} spikes, weights moved {moved} LSB"
    np.testing.assert_array_equal(res.weights["in_to_out"], res.raw_weights["in_to_out"] / lnet.fixed.weight_scale("in_to_out"))
