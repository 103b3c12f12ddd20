"""Unsupported constructs and impossible values fail with clear errors before any Lava process exists."""
from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch

import spikeplastic as sp
from export_cases import needs_lava
from export_cases import N_IN, _lin, _net, hebb_oja, node_perturbation, static, stdp_alpha_decay, stdp_modulated, subtract_reset

from spikeplastic.export import BackendUnavailableError, ExportError, UnsupportedError, to_lava


def _with_proj(ir, name, **changes):
    projs = tuple(dataclasses.replace(p, **changes) if p.name == name else p for p in ir.projections)
    return dataclasses.replace(ir, projections=projs)


CASES = [
    ("clip on H", lambda: _with_proj(stdp_alpha_decay(), "in_to_l1", clip=0.5), {}, UnsupportedError, "clip"),
    ("decay not a literal", lambda: _with_proj(stdp_alpha_decay(), "in_to_l1", decay=0.3), {}, ExportError,
     r"decay = 0.3 is not a Lava learning-rule literal m\*2\^e .*nearest: 0.3125"),
    ("eta not a literal", lambda: _net(_lin(N_IN, 8, rule=sp.Hebb(0.1, learn=False)), _lin(8, 5), None), {},
     ExportError, r"HebbRule.eta = 0.1\d* is not a Lava learning-rule literal"),
    ("retroactive with alpha and decay", lambda: _with_proj(stdp_modulated(), "l1_to_l1", decay=2**-4), {},
     UnsupportedError, "two tags"),
    ("subtract reset in fixed mode", subtract_reset, {"mode": "fixed"}, UnsupportedError, "subtractive reset"),
    ("Hebb/Oja in fixed mode", hebb_oja, {"mode": "fixed"}, UnsupportedError, "STDP only"),
    ("modulation in fixed mode", stdp_modulated, {"mode": "fixed"}, UnsupportedError, "float mode only"),
    ("tau outside the chip's range", lambda: _net(_lin(N_IN, 8, rule=sp.STDP(0.03, 0.03, 300.0, 9.0, learn=False)),
                                                  _lin(8, 5), None), {"mode": "fixed"}, ExportError, "tau_plus = 300"),
    ("scale too large for the threshold", static, {"mode": "fixed", "scale": 1e7}, ExportError, "17-bit threshold"),
    ("loihi2 needs fixed point", static, {"backend": "loihi2"}, ExportError, "mode='fixed'"),
    ("loihi2 backend missing", static, {"mode": "fixed", "backend": "loihi2"}, BackendUnavailableError, "lava-loihi"),
    ("node perturbation in fixed mode", node_perturbation, {"mode": "fixed"}, UnsupportedError,
     "node perturbation runs in float mode only"),
    ("node perturbation on loihi2", node_perturbation, {"mode": "fixed", "backend": "loihi2"}, UnsupportedError,
     "node perturbation runs in float mode only"),
    ("node perturbation with another noise stream",
     lambda: _with_proj(node_perturbation(), "in_to_l1",
                        rule=dataclasses.replace(node_perturbation().projections[0].rule, noise="gaussian-philox")),
     {}, UnsupportedError, "noise stream 'gaussian-philox' is not exportable"),
    ("node perturbation retroactive with alpha and decay", lambda: _with_proj(node_perturbation(), "l1_to_l1", decay=2**-4),
     {}, UnsupportedError, "two tags"),
    ("node perturbation eta_e not a literal",
     lambda: _with_proj(node_perturbation(), "l1_to_l1",
                        modulation=dataclasses.replace(node_perturbation().projections[2].modulation, eta_e=0.3)),
     {}, ExportError, "eta_e = 0.3"),
    ("bad mode", static, {"mode": "double"}, ValueError, "mode must be one of"),
    ("bad backend", static, {"backend": "gpu"}, ValueError, "backend must be one of"),
]


@pytest.mark.parametrize("name,make,kw,exc,match", CASES, ids=[c[0] for c in CASES])
def test_export_errors(name, make, kw, exc, match) -> None:
    with pytest.raises(exc, match=match):
        to_lava(make(), **kw)


def test_error_types_are_standard_exceptions() -> None:
    assert issubclass(ExportError, ValueError) and issubclass(UnsupportedError, NotImplementedError)
    assert issubclass(BackendUnavailableError, RuntimeError)


def test_type_error_for_non_networks() -> None:
    with pytest.raises(TypeError, match="NetworkIR"):
        to_lava(torch.nn.Linear(2, 2))


@pytest.mark.lava
@needs_lava
def test_errors_are_raised_before_lava_builds_anything() -> None:
    """In a fresh interpreter: every failing export leaves Lava's process modules unimported."""
    code = (
        "import sys, dataclasses\n"
        "sys.path.insert(0, 'tests/export')\n"
        "from export_cases import node_perturbation, stdp_alpha_decay, subtract_reset\n"
        "from spikeplastic.export import to_lava, ExportError, UnsupportedError, BackendUnavailableError\n"
        "ir = stdp_alpha_decay()\n"
        "bad = dataclasses.replace(ir, projections=tuple(dataclasses.replace(p, clip=1.0) for p in ir.projections))\n"
        "for make, kw, exc in [(lambda: bad, {}, UnsupportedError), (subtract_reset, {'mode': 'fixed'}, UnsupportedError),\n"
        "                      (ir, {'mode': 'fixed', 'backend': 'loihi2'}, BackendUnavailableError),\n"
        "                      (node_perturbation, {'mode': 'fixed'}, UnsupportedError)]:\n"
        "    try:\n"
        "        to_lava(make() if callable(make) else make, **kw)\n"
        "    except exc:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit('no error')\n"
        "import multiprocessing\n"
        "assert not multiprocessing.active_children()\n"
        "procs = [m for m in sys.modules if m.startswith(('lava.proc', 'lava.magma.runtime'))]\n"
        "assert not procs, procs\n"
        "print('ok')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr + r.stdout


def test_literal_helper() -> None:
    from spikeplastic.export._plan import literal
    from spikeplastic.loihi_format import is_literal

    for v in (2**-7, 3 * 2**-6, 7 * 2**8, 0.5, 1.0, 6 * 2**-7):
        assert is_literal(v)
    for v in (0.3, 2**-8, 9 * 2**-5, 0.1):
        assert not is_literal(v)
    assert literal(3 * 2**-6, "x") == "3*2^-6" and literal(1.0, "x") == "1"
    np.testing.assert_equal(is_literal(-8 * 2**-7), True)


def test_snap_to_literals_makes_learned_values_exportable() -> None:
    from spikeplastic.export import snap_to_literals
    from spikeplastic.export._plan import build_float_plan

    ir = _net(_lin(N_IN, 8, rule=sp.Hebb(0.1)), _lin(8, 5, rule=sp.STDP(), decay=0.02), None)  # learnable: sigmoid-mapped
    with pytest.raises(ExportError):
        build_float_plan(ir)
    snapped, changes = snap_to_literals(ir)
    build_float_plan(snapped)
    assert set(changes) == {"in_to_l1.eta", "l1_to_l2.decay"}
    old, new = changes["in_to_l1.eta"]
    assert abs(old - 0.1) < 1e-6 and new == 3 * 2**-5  # 0.09375, the nearest m*2^e
    assert changes["l1_to_l2.decay"][1] == 3 * 2**-7  # grid near 0.02: 2*2^-7, 3*2^-7 (e >= -7)


@pytest.mark.lava
@needs_lava
def test_keyboard_interrupt_stops_lava(monkeypatch: pytest.MonkeyPatch, no_stray_processes: None) -> None:
    from export_cases import spikes, stdp_recurrent

    from spikeplastic.export import _lava

    def interrupted(fn, timeout, guard=None):  # Ctrl-C while waiting for the run
        raise KeyboardInterrupt

    lnet = to_lava(stdp_recurrent())
    monkeypatch.setattr(_lava, "_call_with_timeout", interrupted)
    with pytest.raises(KeyboardInterrupt):
        lnet.run(spikes(500))
