"""The no-grad population forward (``spikeplastic.lean.population``) against the core ``Network`` (float64).

Two methods that must agree: ``nograd_forward(net, x)`` and ``net(x)`` under ``no_grad`` give identical
spikes (counted, so that a silent or saturated run cannot pass) and voltages, currents, weights and
traces equal to rounding, for every supported feature; member ``p`` of a population run equals
``Network.forward`` with member ``p``'s parameters; and at the model level ``SpikingModel``'s no-grad
forward, ``population_forward`` and ``population_step`` equal its step loop (``lean="off"``).
"""
from __future__ import annotations

from typing import Any

import pytest
import torch

from spikeplastic import LIF, STDP, Hebb, Network, Neuromodulation, PlasticLinear
from spikeplastic.lean.population import (
    PopulationRun,
    network_spec,
    network_values,
    nograd_forward,
    population_forward,
    stack_values,
)

DT = torch.float64
T, B, N_IN = 40, 3, 12
RECORD = ("spikes", "voltages", "currents", "weights", "traces")


def make_net(*, mod: str | None = None, source: str | None = "l1", per_neuron: bool = False, reset: str = "zero",
             alpha: str = "per_synapse", clip: float | None = None, decay: float = 0.1, quantum: bool = False,
             seed: int = 0) -> Network:
    """Two populations, a plastic feed-forward and recurrent projection, a static one and a plastic
    feedback one: every path of the generic step."""
    torch.manual_seed(seed)
    lif = dict(du=0.3, dv=0.2, vth=1.0, reset=reset, learn_bias=True)
    lin = dict(alpha=alpha, alpha_init=0.5, decay=decay, learn_decay=decay > 0, clip=clip, weight_scale=3.0)
    m = None if mod is None else Neuromodulation(mod, source=source, per_neuron=per_neuron)
    net = Network(N_IN, {"l1": LIF(10, **lif), "l2": LIF(7, **lif)}, [
        ("in", "l1", PlasticLinear(N_IN, 10, rule=STDP(0.3, 0.35, 5.0, 6.0), **lin)),
        ("l1", "l1", PlasticLinear(10, 10, rule=STDP(0.2, 0.25, 4.0, 3.0), modulation=m, **lin)),
        ("l1", "l2", PlasticLinear(10, 7, rule=None, weight_scale=3.0)),
        ("l2", "l1", PlasticLinear(7, 10, rule=STDP(0.1, 0.1, 2.0, 2.0), **lin)),
    ]).to(DT)
    with torch.no_grad():  # random, sign-mixed plasticity coefficients
        for p in net.projs.values():
            if p.alpha is not None and p.alpha.learn:
                p.alpha.raw.normal_(0.0, 1.0)
    if quantum:
        from spikeplastic.quant import loihi_legal

        loihi_legal(net)
    return net


CASES: dict[str, dict[str, Any]] = {
    "stdp": {},
    "simple-mod": {"mod": "simple"},
    "retroactive-mod": {"mod": "retroactive"},
    "retroactive-per-neuron": {"mod": "retroactive", "per_neuron": True},
    "external-third-factor": {"mod": "simple", "source": None},
    "subtract-reset": {"reset": "subtract"},
    "shared-alpha": {"alpha": "shared"},
    "no-alpha-clip": {"alpha": "none", "clip": 0.5},
    "no-decay": {"decay": 0.0},
    "loihi-integer": {"quantum": True, "decay": 0.0},
}


def _inputs(seed: int = 1, batch: int = B) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((T, batch, N_IN), 0.3, dtype=DT), generator=g)


def _check_spikes(ref: dict[str, torch.Tensor], got: dict[str, torch.Tensor], where: str) -> None:
    for k, s in ref.items():
        n = int(s.sum())
        assert 0 < n < s.numel(), f"{where}: population {k} has {n} spikes of {s.numel()} (vacuous comparison)"
        mism = int((s != got[k]).sum())
        assert mism == 0, f"{where}: population {k}: {mism} of {n} spikes differ"


@pytest.mark.parametrize("case", list(CASES))
def test_nograd_forward_equals_network(case: str) -> None:
    net = make_net(**CASES[case])
    x = _inputs()
    tf = torch.rand(T, B, dtype=DT, generator=torch.Generator().manual_seed(2)) if CASES[case].get("source", 1) is None \
        else None
    with torch.no_grad():
        ref, ref_state = net(x, record=RECORD, third_factor=tf)
    got, state = nograd_forward(net, x, record=RECORD, third_factor=tf, backend="inplace")
    _check_spikes(ref.spikes, got.spikes, case)
    for field in ("voltages", "currents", "weights"):
        for k, v in getattr(ref, field).items():
            torch.testing.assert_close(getattr(got, field)[k], v, rtol=1e-12, atol=1e-12, msg=f"{case} {field} {k}")
    for k, (xr, yr) in ref.traces.items():
        torch.testing.assert_close(got.traces[k][0], xr, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got.traces[k][1], yr, rtol=1e-12, atol=1e-12)
    for k, syn in ref_state.synapses.items():
        if syn.H is not None:
            torch.testing.assert_close(state.synapses[k].H, syn.H, rtol=1e-12, atol=1e-12)
        if syn.E is not None:
            torch.testing.assert_close(state.synapses[k].E, syn.E, rtol=1e-12, atol=1e-12)
    for k, n in ref_state.neurons.items():
        assert torch.equal(state.neurons[k].s, n.s)


def test_continues_from_a_state_and_in_blocks() -> None:
    """A run split in two (the first's final state handed on) equals one run; blocks of a PopulationRun too."""
    net = make_net(mod="retroactive")
    x = _inputs()
    with torch.no_grad():
        ref, _ = net(x)
    a, st = nograd_forward(net, x[:17], backend="inplace")
    b, _ = nograd_forward(net, x[17:], st, backend="inplace")
    _check_spikes(ref.spikes, {k: torch.cat([a.spikes[k], b.spikes[k]]) for k in ref.spikes}, "two calls")
    run = PopulationRun(network_spec(net), network_values(net), B, backend="inplace")
    parts = [run.run(x[k:k + 7]).spikes for k in range(0, T, 7)]
    _check_spikes(ref.spikes, {k: torch.cat([p[k][:, 0] for p in parts]) for k in ref.spikes}, "blocks of 7")


@pytest.mark.parametrize("per_member_inputs", [False, True])
def test_population_member_equals_single_network(per_member_inputs: bool) -> None:
    """Member p of one batched run == Network.forward of the network holding member p's parameters."""
    nets = []
    for p in range(3):
        net = make_net(mod="retroactive")
        g = torch.Generator().manual_seed(100 + p)
        with torch.no_grad():
            for q in net.parameters():
                q.add_(0.2 * torch.randn(q.shape, generator=g, dtype=q.dtype))
        nets.append(net)
    spec = network_spec(nets[0])
    vals = stack_values([network_values(n, spec) for n in nets])
    xs = [_inputs(seed=p + 1) for p in range(3)] if per_member_inputs else [_inputs()] * 3
    x = torch.stack(xs, dim=1) if per_member_inputs else xs[0]
    rec, _ = population_forward(spec, vals, x, backend="inplace")
    counts = []
    for p, net in enumerate(nets):
        with torch.no_grad():
            ref, _ = net(xs[p])
        _check_spikes(ref.spikes, {k: v[:, p] for k, v in rec.spikes.items()}, f"member {p}")
        counts.append(int(ref.spikes["l1"].sum()))
    assert len(set(counts)) > 1, f"the members should differ, got spike counts {counts}"


def test_unsupported_and_bad_inputs() -> None:
    net = Network(4, {"a": LIF(3)}, [("in", "a", PlasticLinear(4, 3, rule=Hebb()))])
    with pytest.raises(ValueError, match="Hebb rule"):
        nograd_forward(net, torch.zeros(5, 2, 4))
    net = make_net()
    with pytest.raises(ValueError, match="record entry 'modulation'"):
        nograd_forward(net, _inputs(), record=("modulation",))
    run = PopulationRun(network_spec(net), network_values(net), B)
    with pytest.raises(ValueError, match=r"x: expected \[T, B=3, n_in=12\]"):
        run.run(torch.zeros(5, 2, N_IN, dtype=DT))
    with pytest.raises(ValueError, match="backend"):
        PopulationRun(network_spec(net), network_values(net), B, backend="fast")


@pytest.mark.slow
@pytest.mark.parametrize("case", ["retroactive-mod", "loihi-integer"])
def test_compiled_chunks_equal_network(case: str) -> None:
    """backend="compile" (torch.compile of 8-step chunks; tens of seconds to compile on 2 cores)."""
    net = make_net(**CASES[case])
    x = _inputs()[:20]
    with torch.no_grad():
        ref, _ = net(x, record=("spikes", "voltages"))
    got, _ = nograd_forward(net, x, record=("spikes", "voltages"), backend="compile")
    _check_spikes(ref.spikes, got.spikes, case)
    for k, v in ref.voltages.items():
        torch.testing.assert_close(got.voltages[k], v, rtol=1e-12, atol=1e-12)


# ---- SpikingModel: the fused no-grad forward and populations vs its step loop ---------------------------
MODEL_CASES = [("pattern50", "snn-stdp", {}), ("cue-small", "snn-stdp-mod", {}),
               ("pattern50", "snn-stdp", {"lava": "fixed", "encoder": "rate"})]


def _model(task_id: str, model_id: str, kw: dict[str, Any]) -> Any:
    from spikeplastic.models import make_model
    from spikeplastic.tasks import make_task

    task = make_task(task_id)
    torch.manual_seed(0)
    return task, make_model(model_id, task, **kw).to(DT)


@pytest.mark.parametrize("task_id,model_id,kw", MODEL_CASES)
def test_model_nograd_and_population_equal_step_loop(task_id: str, model_id: str, kw: dict[str, Any]) -> None:
    task, m = _model(task_id, model_id, kw)
    x = torch.randn(8, 4, task.n_in, dtype=DT, generator=torch.Generator().manual_seed(3)).sign()

    def loop(params: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, Any]:
        m.lean = "off"
        torch.manual_seed(7)  # the rate encoder's draws
        with torch.no_grad():
            out = m(x) if params is None else torch.func.functional_call(m, params, (x,))
        m.lean = "auto"
        return out

    ref, ref_state = loop()
    torch.manual_seed(7)
    with torch.no_grad():
        got, state = m(x)  # lean="auto" without gradients: the fused no-grad forward
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)
    assert torch.equal(state.net.neurons["hidden"].s, ref_state.net.neurons["hidden"].s)
    torch.testing.assert_close(state.trace, ref_state.trace, rtol=1e-12, atol=1e-12)
    # a population of perturbed parameter sets
    g = torch.Generator().manual_seed(5)
    params = {k: p.detach().unsqueeze(0) + 0.05 * torch.randn((3, *p.shape), generator=g, dtype=DT)
              for k, p in m.named_parameters() if p.requires_grad}
    torch.manual_seed(7)
    pop = m.population_forward(params, x)
    assert pop.shape == (8, 3, 4, task.n_out if not hasattr(task, "n_actions") else task.n_actions + 1)
    for i in range(3):
        torch.testing.assert_close(pop[:, i], loop({k: v[i] for k, v in params.items()})[0], rtol=1e-12, atol=1e-12)
    assert float((pop[:, 0] - pop[:, 1]).abs().max()) > 1e-3  # the members differ
    if kw.get("encoder") == "rate":
        return  # stepping draws the rate code per member: equal in distribution only
    st = m.population_initial_state(params, 4)
    steps = []
    for t in range(x.shape[0]):
        o, st = m.population_step(params, x[t].expand(3, -1, -1), st)
        steps.append(o)
    torch.testing.assert_close(torch.stack(steps), pop, rtol=1e-12, atol=1e-12)
