"""float64 gradcheck of every step function w.r.t. every learnable quantity (also through the raw,
constrained parametrisation), and BPTT through a plastic Network."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import torch
from torch import Tensor, nn
from torch.autograd import gradcheck
from torch.func import functional_call

from spikeplastic import LIF, STDP, Hebb, Network, Neuromodulation, Oja, PlasticLinear
from spikeplastic.functional import (
    LIFState,
    STDPTraces,
    eligibility_step,
    hebb_step,
    lif_step,
    oja_step,
    stdp_traces_step,
    stdp_update,
    trace_step,
)

F64 = torch.float64
B = 2


def _rand(*shape: int, lo: float = -0.5, hi: float = 0.5, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(*shape, generator=g, dtype=F64) * (hi - lo) + lo).requires_grad_(True)


def smooth_spike(x: Tensor) -> Tensor:
    """Differentiable stand-in for the Heaviside (gradcheck needs a smooth function)."""
    return torch.sigmoid(3.0 * x)


# ----------------------------------------------------------------------------- pure step functions
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_gradcheck_lif_step(reset: str) -> None:
    n = 3
    a, u, v = _rand(B, n, seed=1), _rand(B, n, seed=2), _rand(B, n, lo=0.0, hi=1.2, seed=3)
    s = _rand(B, n, lo=0.0, hi=1.0, seed=4)
    du, dv = _rand(n, lo=0.1, hi=0.9, seed=5), _rand(n, lo=0.1, hi=0.9, seed=6)
    vth, bias = _rand(n, lo=0.5, hi=1.5, seed=7), _rand(n, lo=-0.1, hi=0.1, seed=8)

    def f(a, u, v, s, du, dv, vth, bias):
        return tuple(lif_step(a, LIFState(u, v, s), du, dv, vth, bias, smooth_spike, reset, detach_reset=False))

    assert gradcheck(f, (a, u, v, s, du, dv, vth, bias))


def test_gradcheck_trace_and_stdp_steps() -> None:
    npre, npost = 3, 2
    x, y = _rand(B, npre, lo=0, hi=1, seed=1), _rand(B, npost, lo=0, hi=1, seed=2)
    s_pre, s_post = _rand(B, npre, lo=0, hi=1, seed=3), _rand(B, npost, lo=0, hi=1, seed=4)
    ap, am = _rand((), lo=0.01, hi=0.1, seed=5), _rand((), lo=0.01, hi=0.1, seed=6)
    tp, tm = _rand((), lo=3, hi=20, seed=7), _rand((), lo=3, hi=20, seed=8)
    assert gradcheck(lambda x, s, tau, imp: trace_step(x, s, tau, imp), (x, s_pre, tp, ap))

    def f(x, y, s_pre, s_post, ap, am, tp, tm):
        tr = stdp_traces_step(STDPTraces(x, y), s_pre, s_post, ap, am, tp, tm)
        return tr.x, tr.y, stdp_update(tr, s_pre, s_post)

    assert gradcheck(f, (x, y, s_pre, s_post, ap, am, tp, tm))


@pytest.mark.parametrize("step", [hebb_step, oja_step])
def test_gradcheck_hebb_oja_steps(step: Callable) -> None:
    H = _rand(B, 2, 3, seed=1)
    pre, post = _rand(B, 3, lo=0, hi=1, seed=2), _rand(B, 2, lo=0, hi=1, seed=3)
    eta = _rand((), lo=0.05, hi=0.5, seed=4)
    assert gradcheck(step, (H, pre, post, eta))
    eta_syn = _rand(2, 3, lo=0.05, hi=0.5, seed=5)  # per-synapse rates broadcast too
    assert gradcheck(step, (H, pre, post, eta_syn))


def test_gradcheck_eligibility_step() -> None:
    E, e, eta = _rand(B, 2, 3, seed=1), _rand(B, 2, 3, seed=2), _rand((), lo=0.05, hi=0.9, seed=3)
    assert gradcheck(eligibility_step, (E, e, eta))


# ----------------------------------------------------------------------------- modules, raw parameters
class _Call(nn.Module):
    def __init__(self, mod: nn.Module, fn: Callable[..., Sequence[Tensor]]) -> None:
        super().__init__()
        self.mod = mod
        self.fn = fn

    def forward(self, *args: Tensor) -> tuple[Tensor, ...]:
        return tuple(t for t in self.fn(self.mod, *args) if isinstance(t, Tensor))


def gradcheck_module(mod: nn.Module, fn: Callable[..., Sequence[Tensor]], args: Sequence[Tensor],
                     expect: set[str]) -> None:
    """gradcheck ``fn(mod, *args)`` w.r.t. all of ``mod``'s raw parameters and the float ``args``."""
    mod = mod.double()
    params = {n: p for n, p in mod.named_parameters() if p.requires_grad}
    assert set(params) == expect, f"learnable parameters {sorted(params)} != expected {sorted(expect)}"
    names = sorted(params)
    call = _Call(mod, fn)
    leaves = [params[n].detach().clone().requires_grad_(True) for n in names]
    arg_leaves = [a.detach().clone().requires_grad_(True) for a in args]

    def f(*inp: Tensor) -> tuple[Tensor, ...]:
        p = {f"mod.{n}": t for n, t in zip(names, inp[: len(names)])}
        return functional_call(call, p, tuple(inp[len(names):]))

    assert gradcheck(f, (*leaves, *arg_leaves))
    # every raw parameter really enters the output (a zero Jacobian would pass gradcheck vacuously)
    out = f(*leaves, *arg_leaves)
    grads = torch.autograd.grad(sum((o * torch.randn_like(o)).sum() for o in out), leaves, allow_unused=True)
    dead = [n for n, g in zip(names, grads) if g is None or not bool(g.abs().sum() > 0)]
    assert not dead, f"no gradient reaches {dead}"


@pytest.mark.parametrize("reset", ["zero", "subtract"])
@pytest.mark.parametrize("per_neuron", [False, True])
def test_gradcheck_lif_module_raw(reset: str, per_neuron: bool, default_f64: None) -> None:
    lif = LIF(3, du=0.37, dv=0.21, vth=0.83, bias=0.013, reset=reset, per_neuron=per_neuron,
              learn_decay=True, learn_threshold=True, learn_bias=True, detach_reset=False)
    lif.spike_fn = smooth_spike  # type: ignore[assignment]
    st = [_rand(B, 3, seed=1), _rand(B, 3, lo=0, hi=1, seed=2), _rand(B, 3, lo=0, hi=1, seed=3)]
    gradcheck_module(lif, lambda m, a, u, v, s: m(a, LIFState(u, v, s)), [_rand(B, 3, seed=4), *st],
                     {"du.raw", "dv.raw", "vth.raw", "bias.raw"})


def _spiky(shape: tuple[int, ...], seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.full(shape, 0.6, dtype=F64), generator=g)


@pytest.mark.parametrize("rule_fn, expect", [
    (lambda: STDP(0.0731, 0.0853, 13.7, 21.3), {"a_plus.raw", "a_minus.raw", "tau_plus.raw", "tau_minus.raw"}),
    (lambda: Hebb(0.137), {"eta.raw"}),
    (lambda: Oja(0.137), {"eta.raw"}),
])
def test_gradcheck_rule_modules_raw(rule_fn, expect, default_f64: None) -> None:
    rule = rule_fn()
    pre, post = _spiky((B, 3), 1), _spiky((B, 2), 2)
    pre[0, 0] = post[0, 0] = 1.0
    H = _rand(B, 2, 3, seed=3)

    def fn(m, H, *st):
        state = STDPTraces(*st) if isinstance(m, STDP) else m.initial_state(B, 3, 2, H)
        e, new = m.step(state, pre, post, H)
        return (e, *new)

    st = [_rand(B, 3, lo=0, hi=1, seed=4), _rand(B, 2, lo=0, hi=1, seed=5)] if isinstance(rule, STDP) else []
    gradcheck_module(rule, fn, [H, *st], expect)


@pytest.mark.parametrize("alpha", ["per_synapse", "shared", "none"])
def test_gradcheck_plastic_linear_current(alpha: str, default_f64: None) -> None:
    layer = PlasticLinear(3, 2, rule=STDP(), alpha=alpha, alpha_init=0.7)
    with torch.no_grad():
        if layer.alpha is not None and layer.alpha.learn:
            layer.alpha.raw.add_(torch.rand_like(layer.alpha.raw))
    s_pre = _spiky((B, 3), 1)
    expect = {"weight.raw", "rule.a_plus.raw", "rule.a_minus.raw", "rule.tau_plus.raw", "rule.tau_minus.raw"}
    if alpha != "none":
        expect.add("alpha.raw")

    def fn(m, H):
        return (m.current(m.initial_state(B)._replace(H=H), s_pre),)

    # the rule's parameters do not enter the current (they act through H): check only w, alpha and H
    layer.rule.requires_grad_(False)
    gradcheck_module(layer, fn, [_rand(B, 2, 3, seed=2)], expect - {n for n in expect if n.startswith("rule.")})


MODS = {
    "none": lambda: None,
    "simple_src": lambda: Neuromodulation("simple", "src"),
    "simple_src_per_neuron": lambda: Neuromodulation("simple", "src", per_neuron=True),
    "retro_src": lambda: Neuromodulation("retroactive", "src", eta_e=0.23),
    "retro_external": lambda: Neuromodulation("retroactive", None, eta_e=0.23),
}


@pytest.mark.parametrize("mod_name", list(MODS))
@pytest.mark.parametrize("rule_name", ["stdp", "hebb", "oja"])
def test_gradcheck_plastic_linear_update(mod_name: str, rule_name: str, default_f64: None) -> None:
    """update() w.r.t. the rule's raw parameters, the learnable decay, the modulation weights/bias and
    eta_e, and the state (H, E, traces); the modulation signal is computed by the module itself."""
    rule = {"stdp": lambda: STDP(0.0731, 0.0853, 13.7, 21.3), "hebb": lambda: Hebb(0.137), "oja": lambda: Oja(0.137)}[rule_name]()
    mod = MODS[mod_name]()
    n_src = 4
    if mod is not None and mod.source is not None:
        mod.bind(n_src, 2)
    layer = PlasticLinear(3, 2, rule=rule, decay=0.0731, learn_decay=True, modulation=mod)
    pre, post = _spiky((B, 3), 1), _spiky((B, 2), 2)
    pre[0, 0] = post[0, 0] = 1.0
    s_src = _spiky((B, n_src), 3)
    expect = {"weight.raw", "alpha.raw", "decay.raw"} | {f"rule.{n}" for n, _ in rule.named_parameters()}
    if mod is not None:
        expect |= {"modulation.eta_e.raw"}
        if mod.source is not None:
            expect |= {"modulation.weight", "modulation.bias"}
    # weight and alpha act in current(), not in update(); eta_e only in retroactive mode
    layer.weight.requires_grad_(False)
    layer.alpha.requires_grad_(False)
    expect -= {"weight.raw", "alpha.raw"}
    if mod is not None and mod.mode == "simple":
        mod.eta_e.requires_grad_(False)
        expect -= {"modulation.eta_e.raw"}

    retro = mod is not None and mod.mode == "retroactive"
    stdp = rule_name == "stdp"

    def fn(m, H, *rest):
        rest = list(rest)
        E = rest.pop(0) if retro else None
        ext = rest.pop(0) if (mod is not None and mod.source is None) else None
        rs = STDPTraces(*rest) if stdp else m.rule.initial_state(B, 3, 2, H)
        gate = None if m.modulation is None else m.modulation.signal(s_src if m.modulation.source else None, ext)
        new = m.update(m.initial_state(B)._replace(H=H, E=E, rule=rs), pre, post, gate)
        return (new.H, *(() if new.E is None else (new.E,)), *(tuple(new.rule) if stdp else ()))

    args = [_rand(B, 2, 3, seed=4)]
    if retro:
        args.append(_rand(B, 2, 3, seed=5))
    if mod is not None and mod.source is None:
        args.append(_rand(B, lo=-1, hi=1, seed=6))
    if stdp:
        args += [_rand(B, 3, lo=0, hi=1, seed=7), _rand(B, 2, lo=0, hi=1, seed=8)]
    gradcheck_module(layer, fn, args, expect)


# ----------------------------------------------------------------------------- BPTT through a Network
T_BPTT = 120


def _bptt_net(alpha_init: float) -> Network:
    torch.manual_seed(0)
    pops = {"h": LIF(8, du=0.7, dv=0.2, vth=0.6), "out": LIF(3, du=0.8, dv=0.25, vth=0.5)}
    projs = [
        ("in", "h", PlasticLinear(5, 8, rule=STDP(0.0731, 0.0853, 13.7, 21.3), alpha="per_synapse",
                                  alpha_init=alpha_init, modulation=Neuromodulation("simple", "out"), weight_scale=2.0)),
        ("h", "h", PlasticLinear(8, 8, rule=Hebb(0.137), alpha="shared", alpha_init=alpha_init,
                                 decay=0.05, learn_decay=True, weight_scale=0.5)),
        ("h", "out", PlasticLinear(8, 3, rule=Oja(0.091), alpha="per_synapse", alpha_init=alpha_init,
                                   modulation=Neuromodulation("retroactive", "in", eta_e=0.2), weight_scale=2.0)),
    ]
    return Network(5, pops, projs).double()


def _bptt_grads(alpha_init: float) -> dict[str, Tensor | None]:
    net = _bptt_net(alpha_init)
    g = torch.Generator().manual_seed(1)
    x = torch.bernoulli(torch.full((T_BPTT, B, 5), 0.4, dtype=F64), generator=g)
    rec, _ = net(x, record=("spikes", "voltages"))
    assert rec.spikes["h"].sum() > 20 and rec.spikes["out"].sum() > 5
    # the loss reads the output population only late in the episode: it depends on plasticity
    loss = rec.voltages["out"][T_BPTT // 2:].sum() + rec.spikes["out"][T_BPTT // 2:].sum() + rec.voltages["h"][-10:].pow(2).sum()
    loss.backward()
    return {n: p.grad for n, p in net.named_parameters()}


RULE_PARAMS = ("rule.", "modulation.", "decay.raw")


def test_bptt_every_parameter_gets_a_gradient() -> None:
    grads = _bptt_grads(0.8)
    expect_kinds = ["weight.raw", "alpha.raw", "rule.a_plus.raw", "rule.a_minus.raw", "rule.tau_plus.raw",
                    "rule.tau_minus.raw", "rule.eta.raw", "modulation.weight", "modulation.bias",
                    "modulation.eta_e.raw", "decay.raw"]
    for k in expect_kinds:
        assert any(n.endswith(k) for n in grads), f"no parameter named *{k}"
    for n, g in grads.items():
        if n.startswith("projs.in_to_h.modulation.eta_e"):  # simple modulation: eta_e unused by design
            assert g is None or (g == 0).all()
            continue
        assert g is not None, f"{n}: no gradient"
        assert torch.isfinite(g).all(), f"{n}: non-finite gradient"
        assert g.abs().sum() > 0, f"{n}: zero gradient"


def test_bptt_without_plasticity_rule_gradients_are_exactly_zero() -> None:
    """alpha = 0 switches plasticity off: the rule, decay and modulation parameters get exactly zero."""
    grads = _bptt_grads(0.0)
    checked = 0
    for n, g in grads.items():
        if any(k in n for k in RULE_PARAMS):
            assert g is None or bool((g == 0).all()), f"{n}: gradient {g} with plasticity off"
            checked += 1
        elif "weight.raw" in n or "alpha.raw" in n:
            assert g is not None and g.abs().sum() > 0, f"{n}: zero gradient"
    assert checked >= 8
