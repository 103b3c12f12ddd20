"""NIR: the static part round-trips exactly; the rule travels in the sidecar."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import spikeplastic as sp
from export_cases import FLOAT_CASES, spikes, third

nir = pytest.importorskip("nir")

from spikeplastic.export import from_nir, to_nir  # noqa: E402


def _assert_same_ir(a: sp.ir.NetworkIR, b: sp.ir.NetworkIR) -> None:
    assert [p.name for p in a.populations] == [p.name for p in b.populations]
    for p, q in zip(a.populations, b.populations):
        assert (p.kind, p.n, p.reset, p.input_kind) == (q.kind, q.n, q.reset, q.input_kind)
        for f in ("du", "dv", "vth", "bias"):
            if getattr(p, f) is not None:
                np.testing.assert_allclose(getattr(q, f), getattr(p, f), rtol=1e-12, atol=1e-15, err_msg=f"{p.name}.{f}")
    assert [p.name for p in a.projections] == [p.name for p in b.projections]
    for p, q in zip(a.projections, b.projections):
        assert (p.pre, p.post, p.rule, p.decay, p.clip) == (q.pre, q.post, q.rule, q.decay, q.clip)
        np.testing.assert_array_equal(q.weight, p.weight)
        if p.alpha is None:
            assert q.alpha is None
        else:
            np.testing.assert_array_equal(q.alpha, p.alpha)
        assert (p.modulation is None) == (q.modulation is None)
        if p.modulation is not None:
            assert (p.modulation.mode, p.modulation.source, p.modulation.eta_e) == (q.modulation.mode, q.modulation.source, q.modulation.eta_e)


@pytest.mark.parametrize("case", [c for c in FLOAT_CASES], ids=lambda c: c.name)
def test_nir_round_trip_through_a_file(case, tmp_path) -> None:
    ir = case.make()
    graph, sidecar = to_nir(ir)
    assert isinstance(graph, nir.NIRGraph)
    side = json.loads(json.dumps(sidecar))  # the sidecar is plain JSON
    path = tmp_path / "net.nir"
    nir.write(path, graph)
    back = from_nir(nir.read(path), side)
    _assert_same_ir(ir, back)
    x = np.random.default_rng(0).normal(size=(60, ir.input.n)) if ir.input.input_kind == "current" else spikes(60)
    tf = third(60) if case.third_factor else None
    a, b = sp.simulate(ir, x, third_factor=tf), sp.simulate(back, x, third_factor=tf)
    for k in a.spikes:
        torch.testing.assert_close(b.spikes[k], a.spikes[k], rtol=0, atol=0)
    for k in a.weights or {}:
        torch.testing.assert_close(b.weights[k], a.weights[k], rtol=0, atol=1e-12)


def test_nir_nodes_follow_the_snntorch_convention() -> None:
    from export_cases import stdp_recurrent

    ir = stdp_recurrent()
    graph, side = to_nir(ir, dt=1e-3)
    l1, l2 = graph.nodes["l1"], graph.nodes["l2"]
    assert isinstance(l1, nir.CubaLIF) and isinstance(l2, nir.LIF)  # du < 1 vs du == 1
    np.testing.assert_allclose(l2.tau, 1e-3 / ir.population("l2").dv)
    np.testing.assert_allclose(l2.r * ir.population("l2").dv, 1.0)
    assert isinstance(graph.nodes["l1_to_l1"], nir.Linear)
    assert ("l1", "l1_to_l1") in graph.edges and ("l1_to_l1", "l1") in graph.edges and ("l2", "output") in graph.edges
    assert side["projections"]["in_to_l1"]["rule"]["type"] == "stdp"
    assert side["delay_steps_per_projection"] == 1


def test_graph_without_sidecar_is_static() -> None:
    from export_cases import stdp_recurrent

    graph, _ = to_nir(stdp_recurrent())
    back = from_nir(graph)
    assert all(p.rule is None for p in back.projections)


def test_snntorch_style_graph_imports_as_the_same_network() -> None:
    """A graph in snnTorch's NIR convention (snntorch/export_nir.py: Affine + LIF with dt = 1e-4,
    tau = dt/(1-beta), r = tau/dt) imports as the network ``from_snntorch`` builds from the model."""
    snn = pytest.importorskip("snntorch")
    torch.manual_seed(0)
    l1, l2 = torch.nn.Linear(6, 5), torch.nn.Linear(5, 3)
    betas, thr, dt = (0.8, 0.7), 0.5, 1e-4

    def lif(beta: float, n: int):
        tau = np.full(n, dt / (1 - beta))
        return nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros(n), v_threshold=np.full(n, thr), v_reset=np.zeros(n))

    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([6])),
               "0": nir.Affine(weight=l1.weight.detach().numpy(), bias=l1.bias.detach().numpy()), "1": lif(betas[0], 5),
               "2": nir.Affine(weight=l2.weight.detach().numpy(), bias=l2.bias.detach().numpy()), "3": lif(betas[1], 3),
               "output": nir.Output(output_type=np.array([3]))},
        edges=[("input", "0"), ("0", "1"), ("1", "2"), ("2", "3"), ("3", "output")],
    )
    ir_nir = from_nir(graph)
    model = torch.nn.Sequential(l1, snn.Leaky(beta=betas[0], threshold=thr, reset_mechanism="zero"),
                                l2, snn.Leaky(beta=betas[1], threshold=thr, reset_mechanism="zero"))
    ir_direct = sp.from_snntorch(model, learn=False).to_ir()
    x = spikes(80, n=6, rate=0.5)
    a, b = sp.simulate(ir_nir, x), sp.simulate(ir_direct, x)
    assert sum(int(v.sum()) for v in a.spikes.values()) > 5
    for (ka, va), (kb, vb) in zip(sorted(a.spikes.items()), sorted(b.spikes.items())):
        torch.testing.assert_close(va, vb, rtol=0, atol=0)
