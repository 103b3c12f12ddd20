"""IR: to_ir -> save -> load round trip, simulate == module run, from_ir reproduces spikes, malformed IR."""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from reference import simulate_reference, spec_from_ir
from spikeplastic import LIF, STDP, Hebb, Network, Neuromodulation, Oja, PlasticLinear, ir, simulate

F64 = torch.float64


def assert_ir_equal(a: Any, b: Any, path: str = "ir") -> None:
    """Recursive exact equality of IR nodes (dataclasses of numpy arrays)."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_ir_equal(getattr(a, f.name), getattr(b, f.name), f"{path}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert a.shape == b.shape and a.dtype == b.dtype, f"{path}: {a.shape}/{a.dtype} != {b.shape}/{b.dtype}"
        torch.testing.assert_close(torch.from_numpy(a.copy()), torch.from_numpy(b.copy()), rtol=0, atol=0,
                                   equal_nan=False, msg=path)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_ir_equal(x, y, f"{path}[{i}]")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_ir_equal(a[k], b[k], f"{path}.{k}")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def _roundtrip(net_ir: ir.NetworkIR) -> ir.NetworkIR:
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "net.npz")
        ir.save(net_ir, path)
        return ir.load(path)


def _example_net() -> Network:
    """Learnable everything, all rule kinds, both modulation modes, shared/per-synapse/no alpha."""
    torch.manual_seed(0)
    pops = {"h": LIF(5, du=0.4, dv=0.15, vth=0.7, bias=0.01, per_neuron=True, learn_decay=True,
                     learn_threshold=True, learn_bias=True),
            "out": LIF(2, beta=0.8, vth=0.6, reset="subtract")}
    projs = [
        ("in", "h", PlasticLinear(3, 5, rule=STDP(0.0731, 0.0853, 13.7, 21.3), weight_scale=2.5,
                                  modulation=Neuromodulation("retroactive", "out", eta_e=0.21))),
        ("h", "h", PlasticLinear(5, 5, rule=Hebb(0.11), alpha="shared", decay=0.03, learn_decay=True, clip=0.8,
                                 weight_scale=0.6)),
        ("h", "out", PlasticLinear(5, 2, rule=Oja(0.07), alpha="none", weight_scale=2.0,
                                   modulation=Neuromodulation("simple", "h", per_neuron=True))),
        ("in", "out", PlasticLinear(3, 2, weight_scale=0.5)),
    ]
    return Network(3, pops, projs).double()


def _x(T: int, B: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full((T, B, n), 0.4, dtype=F64), generator=g)


def test_roundtrip_equality_and_meta() -> None:
    net = _example_net()
    a = net.to_ir(meta={"task": "pattern", "seed": 3, "nested": {"k": [1, 2.5]}})
    b = _roundtrip(a)
    assert_ir_equal(a, b)
    assert b.meta == {"task": "pattern", "seed": 3, "nested": {"k": [1, 2.5]}}
    # spot-check content: mapped values, rule types, modulation
    pr = {p.name: p for p in b.projections}
    assert isinstance(pr["in_to_h"].rule, ir.STDPRule) and pr["in_to_h"].modulation.mode == "retroactive"
    assert pr["in_to_h"].rule.tau_plus == pytest.approx(13.7, rel=1e-6)  # built in float32
    assert pr["h_to_h"].alpha.shape == () and pr["h_to_h"].clip == 0.8
    assert pr["h_to_out"].alpha is None and pr["h_to_out"].modulation.weight.shape == (2, 5)
    assert pr["in_to_out"].rule is None
    assert b.population("out").reset == "subtract"
    assert not pr["in_to_h"].weight.flags.writeable  # IR arrays are frozen


def test_simulate_equals_module_run_and_from_ir_reproduces() -> None:
    net = _example_net()
    x = _x(150, 2, 3)
    rec, _ = net(x, record=("spikes", "voltages", "weights"))
    assert rec.spikes["h"].sum() > 20 and rec.spikes["out"].sum() > 5
    net_ir = _roundtrip(net.to_ir())
    sim = simulate(net_ir, x)
    net2 = Network.from_ir(net_ir)
    rec2, _ = net2(x, record=("spikes", "voltages", "weights"))
    for r in (sim, rec2):
        for k in rec.spikes:
            torch.testing.assert_close(r.spikes[k], rec.spikes[k], rtol=0, atol=0)
            torch.testing.assert_close(r.voltages[k], rec.voltages[k], rtol=0, atol=0)
        for k in rec.weights:
            torch.testing.assert_close(r.weights[k], rec.weights[k], rtol=0, atol=0)
    # from_ir is fixed: no learnable parameters, and its IR is the same IR again
    assert not any(p.requires_grad for p in net2.parameters())
    assert_ir_equal(net2.to_ir(), net_ir)
    # the independent reference agrees with the IR, too
    ref = simulate_reference(*spec_from_ir(net_ir), x.numpy())
    for k in rec.spikes:
        torch.testing.assert_close(rec.spikes[k], torch.tensor(ref["spikes"][k]), rtol=0, atol=0)


def test_simulate_input_forms_and_third_factor() -> None:
    torch.manual_seed(1)
    with torch.no_grad():
        net = Network(2, {"a": LIF(3, dv=0.2, vth=0.5)},
                      [("in", "a", PlasticLinear(2, 3, rule="stdp", weight_scale=3.0,
                                                 modulation=Neuromodulation("simple", None)))]).double()
    x = _x(40, 1, 2, seed=2)
    m = torch.linspace(-1, 1, 40, dtype=F64)
    rec, _ = net(x, third_factor=m[:, None], record=("spikes", "weights"))
    sim = simulate(net.to_ir(), x[:, 0].numpy(), third_factor=m.numpy())  # [T, n_in] numpy, [T] factor
    assert sim.spikes["a"].shape == (40, 1, 3)
    torch.testing.assert_close(sim.spikes["a"], rec.spikes["a"], rtol=0, atol=0)
    # simulate runs the fused no-grad kernel (lean.population), which orders the modulated update's
    # products differently: measured 1 element of 240 off by 2.2e-16 (1 ulp); spikes stay identical
    assert float(rec.spikes["a"].detach().sum()) > 0 and float((rec.weights["in_to_a"][-1] - rec.weights["in_to_a"][0]).detach().abs().max()) > 0.1
    torch.testing.assert_close(sim.weights["in_to_a"], rec.weights["in_to_a"], rtol=0, atol=1e-15)
    # per-neuron factor: [T, n_post] with unbatched inputs is [T, 1, n_post] for the network
    m3 = torch.stack([m, -m, 0.5 * m], dim=1)
    rec3, _ = net(x, third_factor=m3[:, None, :], record=("spikes", "weights"))
    sim3 = simulate(net.to_ir(), x[:, 0], third_factor=m3)
    torch.testing.assert_close(sim3.weights["in_to_a"], rec3.weights["in_to_a"], rtol=0, atol=1e-15)  # as above
    assert not torch.equal(rec3.weights["in_to_a"], rec.weights["in_to_a"])
    with pytest.raises(ValueError, match="third_factor"):
        simulate(net.to_ir(), x)  # the IR needs an external third factor
    with pytest.raises(TypeError, match="net_ir"):
        simulate("not an ir", x)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="inputs"):
        simulate(net.to_ir(), np.zeros(5))


# ----------------------------------------------------------------------------- property test
@st.composite
def small_networks(draw: st.DrawFn) -> tuple[Network, int]:
    seed = draw(st.integers(0, 2**16))
    torch.manual_seed(seed)
    n_in = draw(st.integers(1, 3))
    names = [f"p{i}" for i in range(draw(st.integers(1, 3)))]
    sizes = {"in": n_in, **{k: draw(st.integers(1, 4)) for k in names}}
    unit = st.floats(0.0, 1.0, allow_nan=False)
    pops = {}
    for k in names:
        per = draw(st.booleans())
        pops[k] = LIF(sizes[k], du=draw(unit), dv=draw(unit), vth=draw(st.floats(0.05, 2.0)),
                      bias=draw(st.floats(-0.2, 0.2)), reset=draw(st.sampled_from(["zero", "subtract"])),
                      per_neuron=per, learn_decay=per and draw(st.booleans()), learn_threshold=draw(st.booleans()))
    pairs = [(a, b) for a in ["in"] + names for b in names]
    chosen = draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=len(pairs), unique=True))
    projs = []
    for pre, post in chosen:
        kind = draw(st.sampled_from([None, "stdp", "hebb", "oja"]))
        learn = draw(st.booleans())
        amp = st.floats(1e-4 if learn else 0.0, 0.3)  # a learnable amplitude must be > 0 (softplus)
        rule = {None: lambda: None,
                "stdp": lambda: STDP(draw(amp), draw(amp),
                                     draw(st.floats(1.01, 40.0)), draw(st.floats(1.01, 40.0)), learn=learn),
                "hebb": lambda: Hebb(draw(st.floats(0.01, 0.99)), learn=learn),
                "oja": lambda: Oja(draw(st.floats(0.01, 0.99)), learn=learn)}[kind]()
        mod = None
        if rule is not None and draw(st.booleans()):
            src = draw(st.sampled_from(["in"] + names))  # (external third factors: see the test above)
            mod = Neuromodulation(draw(st.sampled_from(["simple", "retroactive"])), src,
                                  per_neuron=draw(st.booleans()), eta_e=draw(st.floats(0.01, 0.99)), learn_eta=learn)
        decay = draw(st.sampled_from([0.0, 0.05, 0.3]))
        projs.append((pre, post, PlasticLinear(
            sizes[pre], sizes[post], rule=rule, alpha=draw(st.sampled_from(["per_synapse", "shared", "none"])),
            alpha_init=draw(st.floats(-2.0, 2.0)), decay=decay,
            learn_decay=decay > 0 and draw(st.booleans()), clip=draw(st.sampled_from([None, 0.5, 3.0])), modulation=mod,
            weight_scale=2.0, learn_weight=learn, learn_alpha=learn)))
    return Network(n_in, pops, projs, input_kind=draw(st.sampled_from(["spikes", "current"]))), seed


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_networks())
def test_property_roundtrip_and_replay(net_seed: tuple[Network, int]) -> None:
    net, seed = net_seed
    old = torch.get_default_dtype()
    net = net.double()
    net_ir = net.to_ir()
    back = _roundtrip(net_ir)
    assert_ir_equal(net_ir, back)
    h, arrays = back.to_dict()
    assert_ir_equal(ir.NetworkIR.from_dict(json.loads(json.dumps(h)), arrays), net_ir)
    x = _x(25, 2, net.n_in, seed=seed)
    if net.input_kind == "current":
        x = x * 1.7 - 0.3
    rec, _ = net(x, record=("spikes", "voltages", "weights"))
    rec2, _ = Network.from_ir(back)(x, record=("spikes", "voltages", "weights"))
    for k in rec.spikes:
        torch.testing.assert_close(rec2.spikes[k], rec.spikes[k], rtol=0, atol=0)
        torch.testing.assert_close(rec2.voltages[k], rec.voltages[k], rtol=0, atol=0)
    for k in rec.weights:
        torch.testing.assert_close(rec2.weights[k], rec.weights[k], rtol=0, atol=0)
    assert torch.get_default_dtype() == old


# ----------------------------------------------------------------------------- malformed IR
def _pop(name: str = "a", n: int = 2, **kw: Any) -> ir.Population:
    base = dict(du=1.0, dv=0.1, vth=1.0, bias=0.0)
    base.update(kw)
    return ir.Population(name=name, n=n, **base)


INP = ir.Population(name="in", n=3, kind="input")
W = np.zeros((2, 3))

MALFORMED = {
    "nan weight": lambda: ir.Projection("p", "in", "a", np.full((2, 3), np.nan)),
    "weight rank": lambda: ir.Projection("p", "in", "a", np.zeros(3)),
    "alpha shape": lambda: ir.Projection("p", "in", "a", W, rule=ir.HebbRule(0.1), alpha=np.zeros((3, 2))),
    "decay": lambda: ir.Projection("p", "in", "a", W, decay=1.5),
    "clip": lambda: ir.Projection("p", "in", "a", W, clip=0.0),
    "tau": lambda: ir.STDPRule(0.1, 0.1, 0.0, 5.0),
    "negative amplitude": lambda: ir.STDPRule(-0.1, 0.1, 5.0, 5.0),
    "eta": lambda: ir.HebbRule(1.5),
    "oja eta": lambda: ir.OjaRule(-0.1),
    "modulation mode": lambda: ir.Modulation("sometimes", None),
    "modulation eta_e": lambda: ir.Modulation("retroactive", None, eta_e=2.0),
    "modulation without weights": lambda: ir.Modulation("simple", "a"),
    "modulation without rule": lambda: ir.Projection("p", "in", "a", W, modulation=ir.Modulation("simple", None)),
    "pop n": lambda: _pop(n=0),
    "pop kind": lambda: ir.Population(name="a", n=2, kind="izhikevich"),
    "pop missing du": lambda: ir.Population(name="a", n=2, dv=0.1, vth=1.0, bias=0.0),
    "pop du range": lambda: _pop(du=1.5),
    "pop vth": lambda: _pop(vth=-1.0),
    "pop array shape": lambda: _pop(dv=np.array([0.1, 0.2, 0.3])),
    "pop reset": lambda: _pop(reset="soft"),
    "input kind": lambda: ir.Population(name="in", n=3, kind="input", input_kind="rates"),
    "no input": lambda: ir.NetworkIR((_pop(),), ()),
    "two inputs": lambda: ir.NetworkIR((INP, ir.Population(name="in2", n=1, kind="input"), _pop()), ()),
    "duplicate population": lambda: ir.NetworkIR((INP, _pop(), _pop()), ()),
    "duplicate projection": lambda: ir.NetworkIR((INP, _pop()), (ir.Projection("p", "in", "a", W),) * 2),
    "unknown population": lambda: ir.NetworkIR((INP, _pop()), (ir.Projection("p", "in", "zz", W),)),
    "targets input": lambda: ir.NetworkIR((INP, _pop()), (ir.Projection("p", "a", "in", np.zeros((3, 2))),)),
    "weight vs sizes": lambda: ir.NetworkIR((INP, _pop()), (ir.Projection("p", "in", "a", np.zeros((2, 2))),)),
    "unknown modulation source": lambda: ir.NetworkIR((INP, _pop()), (ir.Projection(
        "p", "in", "a", W, rule=ir.HebbRule(0.1), modulation=ir.Modulation("simple", "zz", np.zeros(2), 0.0)),)),
    "modulation weight shape": lambda: ir.NetworkIR((INP, _pop()), (ir.Projection(
        "p", "in", "a", W, rule=ir.HebbRule(0.1), modulation=ir.Modulation("simple", "a", np.zeros(5), 0.0)),)),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_ir_raises_value_error(case: str) -> None:
    with pytest.raises(ValueError):
        MALFORMED[case]()


def test_malformed_files_raise_value_error(tmp_path) -> None:
    good = _example_net().to_ir()
    h, arrays = good.to_dict()
    # missing field, unknown node type, missing array, newer version, not an IR at the top
    h1 = json.loads(json.dumps(h))
    del h1["projections"][0]["weight"]
    h2 = json.loads(json.dumps(h))
    h2["projections"][0]["rule"]["__type__"] = "BCMRule"
    h3 = json.loads(json.dumps(h))
    h3["version"] = ir.IR_VERSION + 1
    for bad, arr, match in [(h1, arrays, "weight"), (h2, arrays, "BCMRule"), (h, {}, "malformed"),
                            (h3, arrays, "version"), ({"x": 1}, arrays, "NetworkIR")]:
        with pytest.raises(ValueError, match=match):
            ir.NetworkIR.from_dict(bad, arr)
    p = tmp_path / "other.npz"
    np.savez(p, a=np.zeros(3))
    with pytest.raises(ValueError, match="__ir__"):
        ir.load(p)
    q = tmp_path / "broken.npz"
    np.savez(q, __ir__=np.array("{not json"))
    with pytest.raises(ValueError):
        ir.load(q)
    with pytest.raises(ValueError, match="input population must be named 'in'"):
        Network.from_ir(ir.NetworkIR((ir.Population(name="x", n=3, kind="input"), _pop()), ()))
