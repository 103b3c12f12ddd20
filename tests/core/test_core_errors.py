"""Bad arguments raise ValueError/TypeError whose message names the argument."""
from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from spikeplastic import LIF, STDP, Hebb, Network, Neuromodulation, Oja, PlasticLinear, ir, surrogate
from spikeplastic.models import SpikingModel, make_model
from spikeplastic.tasks import make_task

NAN, INF = float("nan"), float("inf")


def _net(input_kind: str = "spikes") -> Network:
    torch.manual_seed(0)
    return Network(3, {"a": LIF(2)}, [("in", "a", PlasticLinear(3, 2, rule="stdp"))], input_kind=input_kind)


def _modulated() -> Network:
    """A network whose only projection is gated by an external third factor (n_post = 2)."""
    torch.manual_seed(0)
    return Network(3, {"a": LIF(2)}, [("in", "a", PlasticLinear(
        3, 2, rule="stdp", modulation=Neuromodulation("simple", None)))])


def _second_step(third: torch.Tensor) -> object:
    """Step a modulated network once with a valid factor, then with ``third``."""
    net = _modulated()
    _, st = net.step(torch.zeros(2, 3), net.initial_state(2), torch.zeros(2))
    return net.step(torch.zeros(2, 3), st, third)


NET = _net()
MOD = _modulated()
OK = torch.zeros(5, 2, 3)
TINY_TASK = make_task("pattern", n_bits=8, n_patterns=2, cycles=1)

CONSTRUCTION: dict[str, tuple[Callable[[], object], type[Exception], str]] = {
    "tau_plus zero": (lambda: STDP(tau_plus=0.0), ValueError, "tau_plus"),
    "tau_minus negative": (lambda: STDP(tau_minus=-3.0), ValueError, "tau_minus"),
    "tau nan": (lambda: STDP(tau_plus=float("nan")), ValueError, "tau_plus"),
    "a_plus negative": (lambda: STDP(a_plus=-0.01), ValueError, "a_plus"),
    "a_minus negative": (lambda: STDP(a_minus=-0.01), ValueError, "a_minus"),
    "hebb eta": (lambda: Hebb(1.2), ValueError, "eta"),
    "oja eta": (lambda: Oja(-0.1), ValueError, "eta"),
    "du > 1": (lambda: LIF(2, du=1.3), ValueError, "du"),
    "dv < 0": (lambda: LIF(2, dv=-0.1), ValueError, "dv"),
    "beta > 1": (lambda: LIF(2, beta=1.5), ValueError, "beta"),
    "alpha < 0": (lambda: LIF(2, alpha=-0.2), ValueError, "alpha"),
    "both decay forms": (lambda: LIF(2, du=0.5, beta=0.9), ValueError, "alpha/beta"),
    "vth <= 0": (lambda: LIF(2, vth=0.0), ValueError, "vth"),
    "per-neuron shape": (lambda: LIF(3, dv=torch.tensor([0.1, 0.2])), ValueError, "dv"),
    "n": (lambda: LIF(0), ValueError, "n"),
    "n type": (lambda: LIF(2.5), TypeError, "n"),
    "reset name": (lambda: LIF(2, reset="soft"), ValueError, "reset"),
    "surrogate name": (lambda: LIF(2, surrogate="relu"), ValueError, "surrogate"),
    "surrogate param": (lambda: surrogate("atan", alpha=-1.0), ValueError, "alpha"),
    "rule name": (lambda: PlasticLinear(3, 2, rule="bcm"), ValueError, "rule"),
    "alpha name": (lambda: PlasticLinear(3, 2, rule="stdp", alpha="per_neuron"), ValueError, "alpha"),
    "alpha_init shape": (lambda: PlasticLinear(3, 2, rule="stdp", alpha_init=torch.zeros(3, 3)), ValueError, "alpha_init"),
    "decay range": (lambda: PlasticLinear(3, 2, rule="stdp", decay=1.5), ValueError, "decay"),
    "clip": (lambda: PlasticLinear(3, 2, rule="stdp", clip=-1.0), ValueError, "clip"),
    "weight shape": (lambda: PlasticLinear(3, 2, weight=torch.zeros(3, 2)), ValueError, "weight"),
    "modulation type": (lambda: PlasticLinear(3, 2, rule="stdp", modulation="dopamine"), TypeError, "modulation"),
    "modulation without rule": (lambda: PlasticLinear(3, 2, modulation=Neuromodulation()), ValueError, "modulation"),
    "modulation mode": (lambda: Neuromodulation("delayed"), ValueError, "mode"),
    "modulation eta_e": (lambda: Neuromodulation("retroactive", eta_e=1.5), ValueError, "eta_e"),
    "modulation source type": (lambda: Neuromodulation("simple", 3), TypeError, "source"),
    "input_kind": (lambda: Network(3, {"a": LIF(2)}, [], input_kind="rates"), ValueError, "input_kind"),
    "size mismatch": (lambda: Network(3, {"a": LIF(2)}, [("in", "a", PlasticLinear(4, 2))]), ValueError, "in->a"),
    "size mismatch post": (lambda: Network(3, {"a": LIF(2)}, [("in", "a", PlasticLinear(3, 5))]), ValueError, "in->a"),
    "unknown pre": (lambda: Network(3, {"a": LIF(2)}, [("b", "a", PlasticLinear(2, 2))]), ValueError, "'b'"),
    "unknown post": (lambda: Network(3, {"a": LIF(2)}, [("in", "b", PlasticLinear(3, 2))]), ValueError, "'b'"),
    "unknown modulation source": (lambda: Network(3, {"a": LIF(2)}, [("in", "a", PlasticLinear(
        3, 2, rule="stdp", modulation=Neuromodulation("simple", "zz")))]), ValueError, "'zz'"),
    "population named in": (lambda: Network(3, {"in": LIF(2)}, []), ValueError, "'in'"),
    "population type": (lambda: Network(3, {"a": torch.nn.Linear(2, 2)}, []), TypeError, "populations"),
    "projection type": (lambda: Network(3, {"a": LIF(2)}, [("in", "a", torch.nn.Linear(3, 2))]), TypeError, "in->a"),
    "duplicate projection": (lambda: Network(3, {"a": LIF(2)}, [("in", "a", PlasticLinear(3, 2))] * 2), ValueError,
                             "duplicate"),
    "no populations": (lambda: Network(3, {}, []), ValueError, "populations"),
    "feedforward sizes": (lambda: Network.feedforward([3]), ValueError, "sizes"),
    "feedforward rule instance": (lambda: Network.feedforward([3, 2], rule=STDP()), TypeError, "rule"),
    "feedforward rule name": (lambda: Network.feedforward([3, 2], rule="stdpp"), ValueError, "rule"),
    # non-finite or non-numeric values (formerly accepted: a dead network, NaN voltages)
    "bias nan": (lambda: LIF(2, bias=NAN), ValueError, "bias"),
    "bias inf": (lambda: LIF(2, bias=INF), ValueError, "bias"),
    "bias inf per neuron": (lambda: LIF(2, bias=torch.tensor([0.0, -INF])), ValueError, "bias"),
    "vth string": (lambda: LIF(2, vth="1.0"), TypeError, "vth"),
    "alpha_init nan": (lambda: PlasticLinear(3, 2, rule="stdp", alpha_init=NAN), ValueError, "alpha_init"),
    "alpha_init inf tensor": (lambda: PlasticLinear(3, 2, rule="stdp", alpha_init=torch.full((2, 3), INF)), ValueError,
                              "alpha_init"),
    "alpha_init string": (lambda: PlasticLinear(3, 2, rule="stdp", alpha_init="nan"), TypeError, "alpha_init"),
    "weight nan": (lambda: PlasticLinear(3, 2, weight=torch.full((2, 3), NAN)), ValueError, "weight"),
    "weight inf": (lambda: PlasticLinear(3, 2, weight=torch.tensor([[0.0, INF, 0.0]] * 2)), ValueError, "weight"),
    "weight_scale nan": (lambda: PlasticLinear(3, 2, weight_scale=NAN), ValueError, "weight_scale"),
    "weight_scale negative": (lambda: PlasticLinear(3, 2, weight_scale=-1.0), ValueError, "weight_scale"),
    "a_plus string": (lambda: STDP(a_plus="0.1"), TypeError, "a_plus"),
    # a learnable quantity must lie inside the range its map reaches (formerly silently ~1e-6)
    "learnable a_plus zero": (lambda: STDP(a_plus=0.0), ValueError, "a_plus.*learn=False"),
    "learnable a_minus zero": (lambda: STDP(a_minus=0.0), ValueError, "a_minus.*learn=False"),
    "learnable tau below 1e-9": (lambda: STDP(tau_plus=1e-12), ValueError, "tau_plus"),
    "learnable hebb eta zero": (lambda: Hebb(0.0), ValueError, "eta.*learn=False"),
    "learnable oja eta one": (lambda: Oja(1.0), ValueError, "eta.*exactly 1"),
    "learnable eta_e zero": (lambda: Neuromodulation("retroactive", eta_e=0.0), ValueError, "eta_e.*learn_eta=False"),
    "learnable decay zero": (lambda: PlasticLinear(3, 2, rule="stdp", decay=0.0, learn_decay=True), ValueError,
                             "decay.*learn_decay=False"),
    "learnable decay one": (lambda: PlasticLinear(3, 2, rule="stdp", decay=1.0, learn_decay=True), ValueError,
                            "decay"),
    # the task models
    "model input_gain nan": (lambda: make_model("snn-stdp", TINY_TASK, input_gain=NAN), ValueError, "input_gain"),
    "model input_gain inf": (lambda: make_model("snn-stdp", TINY_TASK, input_gain=INF), ValueError, "input_gain"),
    "model input_gain string": (lambda: make_model("snn-stdp", TINY_TASK, input_gain="nan"), TypeError, "input_gain"),
    "model alpha_init nan": (lambda: make_model("snn-stdp", TINY_TASK, alpha_init=NAN), ValueError, "alpha_init"),
    "model w_init_std nan": (lambda: make_model("snn-stdp", TINY_TASK, w_init_std=NAN), ValueError, "w_init_std"),
    "model bias inf": (lambda: make_model("snn-stdp", TINY_TASK, lif={"bias": -INF}), ValueError, "bias"),
}


@pytest.mark.parametrize("case", list(CONSTRUCTION))
def test_construction_errors(case: str) -> None:
    fn, exc, match = CONSTRUCTION[case]
    with pytest.raises(exc, match=match):
        fn()


RUN: dict[str, tuple[Callable[[], object], type[Exception], str]] = {
    "rank": (lambda: NET(torch.zeros(5, 3)), ValueError, "x"),
    "last dim": (lambda: NET(torch.zeros(5, 2, 4)), ValueError, "x"),
    "integer dtype": (lambda: NET(torch.zeros(5, 2, 3, dtype=torch.int64)), TypeError, "x"),
    "bool dtype": (lambda: NET(torch.zeros(5, 2, 3, dtype=torch.bool)), TypeError, "x"),
    "not a tensor": (lambda: NET([[[0.0, 0.0, 0.0]]]), TypeError, "x"),
    "non-spikes": (lambda: NET(torch.full((5, 2, 3), 0.5)), ValueError, "x"),
    "nan": (lambda: NET(torch.full((5, 2, 3), float("nan"))), ValueError, "x"),
    "nan current": (lambda: _net("current")(torch.full((5, 2, 3), float("nan"))), ValueError, "x"),
    "inf current": (lambda: _net("current")(torch.full((5, 2, 3), float("inf"))), ValueError, "x"),
    "step rank": (lambda: NET.step(torch.zeros(3), NET.initial_state(2)), ValueError, "x"),
    "step non-spikes": (lambda: NET.step(torch.full((2, 3), 2.0), NET.initial_state(2)), ValueError, "x"),
    "record entry": (lambda: NET(OK, record=("spikes", "gradients")), ValueError, "record"),
    "third_factor shape": (lambda: MOD(OK, third_factor=torch.zeros(4, 2)), ValueError, "third_factor"),
    "third_factor nan": (lambda: MOD(OK, third_factor=torch.full((5, 2), NAN)), ValueError, "third_factor"),
    "third_factor last dim": (lambda: MOD(OK, third_factor=torch.zeros(5, 2, 7)), ValueError,
                              r"third_factor: expected shape \[T=5, B=2\] or \[T=5, B=2, 2\]"),
    "third_factor rank": (lambda: MOD(OK, third_factor=torch.zeros(5, 2, 2, 1)), ValueError, "third_factor"),
    "third_factor without modulation": (lambda: NET(OK, third_factor=torch.zeros(5, 2)), ValueError,
                                        "third_factor: expected None"),
    "step third_factor nan": (lambda: _second_step(torch.full((2,), NAN)), ValueError, "third_factor"),
    "step third_factor inf per neuron": (lambda: _second_step(torch.tensor([[0.0, INF], [0.0, 0.0]])), ValueError,
                                         "third_factor"),
    "step third_factor shape": (lambda: _second_step(torch.zeros(5)), ValueError,
                                r"third_factor: expected shape \[B=2\]"),
    "step third_factor last dim": (lambda: _second_step(torch.zeros(2, 7)), ValueError, "third_factor"),
    "step third_factor without modulation": (lambda: NET.step(torch.zeros(2, 3), NET.initial_state(2), torch.zeros(2)),
                                             ValueError, "third_factor"),
    # a state of another batch size used to broadcast silently (B=1 input on a B=3 state -> B=3 outputs)
    "step state batch": (lambda: NET.step(torch.zeros(1, 3), NET.initial_state(3)), ValueError, "state.*batch size 1"),
    "forward state batch": (lambda: NET(torch.zeros(4, 1, 3), NET.initial_state(3)), ValueError, "state.*batch size 1"),
    "state type": (lambda: NET(OK, state=(torch.zeros(2, 3),)), TypeError, "state"),
    "state of another network": (lambda: NET(OK, state=_net().initial_state(2)._replace(neurons={})), ValueError,
                                 "state"),
    "model state batch": (lambda: make_model("snn-stdp", TINY_TASK)(torch.zeros(3, 1, 8),
                                                                   make_model("snn-stdp", TINY_TASK).initial_state(3)),
                          ValueError, "state"),
    "model step state batch": (lambda: make_model("snn-stdp", TINY_TASK).step(
        torch.zeros(1, 8), make_model("snn-stdp", TINY_TASK).initial_state(3)), ValueError, "state"),
    "rnn state batch": (lambda: make_model("rnn", TINY_TASK)(torch.zeros(3, 1, 8),
                                                            make_model("rnn", TINY_TASK).initial_state(3)),
                        ValueError, "state"),
    "rate-hebb step state batch": (lambda: make_model("rate-hebb", TINY_TASK).step(
        torch.zeros(1, 8), make_model("rate-hebb", TINY_TASK).initial_state(3)), ValueError, "state"),
    # empty time or batch dimension
    "T=0": (lambda: NET(torch.zeros(0, 2, 3)), ValueError, "x: expected at least one"),
    "B=0": (lambda: NET(torch.zeros(5, 0, 3)), ValueError, "x: expected at least one"),
    "step B=0": (lambda: NET.step(torch.zeros(0, 3), NET.initial_state(1)), ValueError, "x"),
    "model T=0": (lambda: make_model("snn-stdp", TINY_TASK)(torch.zeros(0, 2, 8)), ValueError, "inputs"),
    "rnn T=0": (lambda: make_model("rnn", TINY_TASK)(torch.zeros(0, 2, 8)), ValueError, "inputs"),
    "batch": (lambda: NET.initial_state(0), ValueError, "batch"),
    "missing external factor": (lambda: Neuromodulation("simple", None).signal(None, None), ValueError, "third_factor"),
    "network without external factor": (lambda: Network(3, {"a": LIF(2)}, [("in", "a", PlasticLinear(
        3, 2, rule="stdp", modulation=Neuromodulation("simple", None)))])(OK), ValueError, "third_factor"),
}


@pytest.mark.parametrize("case", list(RUN))
def test_run_errors(case: str) -> None:
    fn, exc, match = RUN[case]
    with pytest.raises(exc, match=match):
        fn()


def test_current_input_accepts_real_values() -> None:
    rec, _ = _net("current")(torch.full((5, 2, 3), 0.5))
    assert rec.spikes["a"].shape == (5, 2, 2)


def test_record_accepts_one_name_as_a_string() -> None:
    rec, _ = NET(OK, record="voltages")
    assert rec.voltages is not None and rec.voltages["a"].shape == (5, 2, 2) and rec.weights is None
    rec, _ = NET(OK, record="spikes")
    assert rec.spikes["a"].shape == (5, 2, 2) and rec.voltages is None


def test_valid_third_factor_forms_pass() -> None:
    MOD(OK, third_factor=torch.zeros(5, 2))
    MOD(OK, third_factor=torch.zeros(5, 2, 2))
    _second_step(torch.zeros(2))
    _second_step(torch.zeros(2, 2))


def test_state_of_the_same_batch_continues() -> None:
    _, st = NET(OK)
    rec, _ = NET(OK, st)
    assert rec.spikes["a"].shape == (5, 2, 2)


def test_exact_boundary_values_are_fine_when_fixed() -> None:
    r = STDP(a_plus=0.0, a_minus=0.0, learn=False)
    assert float(r.a_plus()) == 0.0 and float(r.a_minus()) == 0.0
    assert float(Hebb(0.0, learn=False).eta()) == 0.0 and float(Oja(1.0, learn=False).eta()) == 1.0
    assert float(PlasticLinear(3, 2, rule="stdp", decay=0.0).decay()) == 0.0


@pytest.mark.parametrize("value", [1e-8, 1e-3, 0.5, 25.0])
def test_small_learnable_values_are_kept_not_clamped(default_f64: None, value: float) -> None:
    # the inverse map used to clamp at 1e-6, so a learnable 1e-8 silently started at 1e-6
    r = STDP(a_plus=value, tau_plus=1.0 + value)
    torch.testing.assert_close(r.a_plus(), torch.tensor(value, dtype=torch.float64), rtol=1e-12, atol=0)
    eta = Hebb(value / 26.0).eta()
    torch.testing.assert_close(eta, torch.tensor(value / 26.0, dtype=torch.float64), rtol=1e-12, atol=0)


def test_learnable_zero_error_says_what_to_do() -> None:
    with pytest.raises(ValueError) as e:
        STDP(a_plus=0.0)
    msg = str(e.value)
    assert msg.startswith("a_plus: expected a value > 0") and "got 0.0" in msg and "learn=False" in msg


def test_spiking_model_step_loop_and_lean_path_check_the_state() -> None:
    m = make_model("snn-stdp", TINY_TASK)
    assert isinstance(m, SpikingModel)
    with pytest.raises(ValueError, match="state"):
        m.lean_forward(torch.zeros(3, 1, 8), m.initial_state(3))


# ---- IR files ---------------------------------------------------------------------------------

def _ir_files(tmp: Path) -> dict[str, Path]:
    good = tmp / "net.npz"
    ir.save(_net().to_ir(), good)
    data = good.read_bytes()
    files = {"empty": b"", "truncated": data[: len(data) // 2], "text": b"hello, not an IR\n"}
    out = {k: tmp / f"{k}.npz" for k in files}
    for k, b in files.items():
        out[k].write_bytes(b)
    np.save(tmp / "single.npy", np.zeros(3))
    out["single array"] = tmp / "single.npy"
    np.savez(tmp / "other.npz", a=np.zeros(3))
    out["npz without header"] = tmp / "other.npz"
    torch.save({"a": torch.zeros(2)}, tmp / "torch.pt")
    out["torch file"] = tmp / "torch.pt"
    return out


@pytest.mark.parametrize("kind,reason", [
    ("empty", "empty"), ("truncated", "truncated"), ("text", "not an .npz"), ("single array", ".npy"),
    ("npz without header", "__ir__"), ("torch file", "__ir__"),
])
def test_ir_load_of_an_unreadable_file(tmp_path: Path, kind: str, reason: str) -> None:
    path = _ir_files(tmp_path)[kind]
    with pytest.raises(ValueError) as e:
        ir.load(path)
    msg = str(e.value)
    assert str(path) in msg and reason in msg and "\n" not in msg, msg


def test_ir_load_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no IR file"):
        ir.load(tmp_path / "nope.npz")


def test_values_checked_before_any_work() -> None:
    # the check fires in the constructor: nothing is built or run with a NaN in it
    with pytest.raises(ValueError, match="bias"):
        Network.feedforward([3, 2], lif={"bias": math.nan})
