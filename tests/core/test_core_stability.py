"""STDP that stays STDP (time constants >= 1 step) and the rule-input gradient option."""
from __future__ import annotations

import math

import pytest
import torch

import spikeplastic as sp
from spikeplastic import ir
from spikeplastic.functional import stdp_window
from spikeplastic.meta.plot import stdp_window_of


# ---- time constants of at least one step ---------------------------------------------------
@pytest.mark.parametrize("name", ["tau_plus", "tau_minus"])
@pytest.mark.parametrize("learn", [True, False])
def test_tau_below_one_step_is_refused(name: str, learn: bool) -> None:
    with pytest.raises(ValueError, match=name):
        sp.STDP(**{name: 0.7}, learn=learn)
    with pytest.raises(ValueError, match=name):
        ir.STDPRule(0.1, 0.1, **{"tau_plus": 5.0, "tau_minus": 5.0, name: 0.99})


def test_learnable_tau_is_one_plus_softplus_and_never_below_one() -> None:
    r = sp.STDP(tau_plus=7.5, tau_minus=1.25)
    torch.testing.assert_close(r.tau_plus().double(), torch.tensor(7.5, dtype=torch.float64), rtol=1e-6, atol=0)
    torch.testing.assert_close(r.tau_minus().double(), torch.tensor(1.25, dtype=torch.float64), rtol=1e-6, atol=0)
    raw = r.tau_plus.raw
    with torch.no_grad():
        raw.fill_(-80.0)                       # as far down as an optimiser could push it
    assert float(r.tau_plus().detach()) == 1.0          # 1 + softplus(-80) == 1 in float32
    with torch.no_grad():
        raw.fill_(0.3)
    assert float(r.tau_plus().detach()) == pytest.approx(1.0 + math.log1p(math.exp(0.3)), rel=1e-6)
    # the gradient of the mapped value is softplus' = sigmoid(raw): alive at the floor's side
    r.tau_plus().backward()
    assert float(raw.grad) == pytest.approx(1.0 / (1.0 + math.exp(-0.3)), rel=1e-6)


def test_tau_round_trips_through_ir_exactly_when_fixed() -> None:
    r = sp.STDP(0.03, 0.02, 1.0, 13.0, learn=False)
    back = sp.rules.rule_from_ir(r.to_ir())
    assert (float(back.tau_plus()), float(back.tau_minus())) == (1.0, 13.0)


# ---- the learning window ------------------------------------------------------------------------
def test_stdp_window_matches_its_closed_form() -> None:
    ap, am, tp, tm = 0.031, 0.017, 6.5, 2.25
    dt, dw = stdp_window(ap, am, tp, tm, 12)
    want = torch.tensor([ap * math.exp(-d / tp) if d > 0 else (-am * math.exp(d / tm) if d < 0 else ap - am)
                         for d in dt.tolist()], dtype=torch.float64)
    torch.testing.assert_close(dw, want, rtol=1e-13, atol=1e-16)
    assert dt.tolist() == list(range(-12, 13))


def test_stdp_window_of_reads_modules_and_ir() -> None:
    rule = sp.STDP(0.02, 0.01, 10.0, 4.0)
    w = stdp_window_of(rule, max_dt=5)
    assert w["dt"].tolist() == list(range(-5, 6)) and w["tau_minus"] == pytest.approx(4.0, rel=1e-6)
    assert w["dw"][5] == pytest.approx(0.01, rel=1e-5) and w["dw"][6] > 0 > w["dw"][4]
    with pytest.raises(TypeError, match="rule"):
        stdp_window_of(sp.Hebb())


# ---- rule_input_grad ------------------------------------------------------------------------------
def _two_steps(rule_input_grad: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Steps 1 and 2 update H from (pre1, post1) and (pre2, post2); step 3's current reads H.
    Returns the current and the gradients of its sum w.r.t. the step-1 activity and the learnable
    quantities (two updates, so that the traces' decay and H's decay enter)."""
    torch.manual_seed(0)
    lin = sp.PlasticLinear(5, 4, rule=sp.STDP(0.3, 0.2, 3.0, 2.0), alpha_init=0.5, decay=0.1, learn_decay=True,
                           rule_input_grad=rule_input_grad)
    pre1 = torch.rand(2, 5, requires_grad=True)
    post1 = torch.rand(2, 4, requires_grad=True)
    pre2, post2, pre3 = torch.rand(2, 5), torch.rand(2, 4), torch.rand(2, 5)
    st = lin.update(lin.initial_state(2), pre1, post1, None)
    st = lin.update(st, pre2, post2, None)
    c = lin.current(st, pre3)
    c.sum().backward()
    g = {"pre1": pre1.grad, "post1": post1.grad}
    g.update({n: p.grad for n, p in lin.named_parameters()})
    return c.detach(), g


def test_rule_input_grad_cuts_only_the_path_through_the_rule() -> None:
    c_exact, g_exact = _two_steps(True)
    c_cut, g_cut = _two_steps(False)
    torch.testing.assert_close(c_cut, c_exact, rtol=0, atol=0)           # forward unchanged
    assert g_exact["pre1"].abs().sum() > 0 and g_exact["post1"].abs().sum() > 0
    assert g_cut["pre1"] is None and g_cut["post1"] is None               # no path left through the rule
    for name in ("rule.a_plus.raw", "rule.a_minus.raw", "rule.tau_plus.raw", "rule.tau_minus.raw",
                 "alpha.raw", "decay.raw", "weight.raw"):
        assert g_exact[name] is not None and g_exact[name].abs().sum() > 0, name
        torch.testing.assert_close(g_cut[name], g_exact[name], rtol=0, atol=0)


def test_rule_input_grad_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="rule_input_grad"):
        sp.PlasticLinear(3, 3, rule="stdp", rule_input_grad="no")  # type: ignore[arg-type]


def test_spiking_models_default_to_the_stable_gradient() -> None:
    from spikeplastic.models import make_model
    from spikeplastic.tasks import make_task

    task = make_task("cue-small")
    assert not make_model("snn-stdp", task).network.projs["hidden_to_hidden"].rule_input_grad
    assert make_model("snn-stdp", task, rule_input_grad=True).network.projs["hidden_to_hidden"].rule_input_grad
    with pytest.raises(ValueError, match="init"):
        make_model("snn-stdp", task, init="tunned")
