"""A finished Lava run leaves nothing of its network behind in Lava's global state.

Lava 0.10 keeps every Process and Var ever created in global registries and every implicit VarPort
(the recorders' RefPorts connected to Vars) on the ProcessModel class, so each exported network a
program ran stayed in memory (+0.65 MiB per export+verify cycle, found by
``benchmarks/reliability.py``); and it adds a logging handler to the root logger for every Process
(and to its compiler's logger per compilation), so every ERROR record of the program was printed
once per Lava process ever created and WARNING records were dropped. ``LavaNetwork`` now drops all
of these when a run ends (on success and on interruption alike) and after building processes.
"""
from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from export_cases import needs_lava, spikes, stdp_modulated, third

pytestmark = [pytest.mark.lava, needs_lava]


def _registries() -> tuple[list[Any], list[Any]]:
    from spikeplastic.export._compat import import_lava

    import_lava()
    from lava.magma.core.process.process import ProcessServer
    from lava.magma.core.process.variable import VarServer

    return ProcessServer().processes, VarServer().vars


def _built(lnet: Any) -> list[Any]:
    b = lnet.last_build
    return [*b["procs"].values(), *b["conns"].values(), *b["extras"], *(r for r, _ in b["recorders"].values())]


def _handlers() -> list[int]:
    import logging

    return [len(logging.getLogger(n).handlers) for n in ("", "lava.magma.compiler.compiler")]


def _check_released(lnet: Any, n_procs: int, n_vars: int) -> None:
    from lava.magma.core.process.ports.ports import ImplicitVarPort

    procs, var_list = _registries()
    built = _built(lnet)
    assert len(built) > 5
    assert (len(procs), len(var_list)) == (n_procs, n_vars), "the run's processes/vars are still registered"
    classes = {p._model_class for p in built if p._model_class is not None}
    assert classes, "vacuous: no ProcessModel class was compiled"
    mine = {id(v) for p in built for v in p.vars}
    held = [f"{c.__name__}.{k}" for c in classes for k, v in vars(c).items()
            if isinstance(v, ImplicitVarPort) and id(v.var) in mine]
    assert not held, f"ProcessModel classes still hold implicit ports: {held}"
    refs = [weakref.ref(p) for p in built]
    lnet.last_build = {}
    del built
    gc.collect()
    alive = [type(r()).__name__ for r in refs if r() is not None]
    assert not alive, f"Lava processes of a finished run are still alive: {alive}"


def test_a_finished_run_is_freed(no_stray_processes: None) -> None:
    from spikeplastic.export import to_lava

    lnet = to_lava(stdp_modulated())
    procs, var_list = _registries()
    n_procs, n_vars, handlers = len(procs), len(var_list), _handlers()
    rec = lnet.run(spikes(20), third_factor=third(20))  # spikes, voltages and weights: implicit ports
    assert rec.weights and rec.voltages and sum(int(s.sum()) for s in rec.spikes.values()) > 0
    assert _handlers() == handlers, "Lava's logging handlers were left on the root/compiler logger"
    _check_released(lnet, n_procs, n_vars)


def test_an_interrupted_run_is_freed(monkeypatch: pytest.MonkeyPatch, no_stray_processes: None) -> None:
    from spikeplastic.export import _lava, to_lava

    def interrupted(fn: Any, timeout: float, *args: Any) -> Any:  # Ctrl-C while waiting for the run
        raise KeyboardInterrupt

    lnet = to_lava(stdp_modulated())
    procs, var_list = _registries()
    n_procs, n_vars, handlers = len(procs), len(var_list), _handlers()
    monkeypatch.setattr(_lava, "_call_with_timeout", interrupted)
    with pytest.raises(KeyboardInterrupt):
        lnet.run(spikes(20), third_factor=third(20))
    assert _handlers() == handlers, "Lava's logging handlers were left on the root/compiler logger"
    _check_released(lnet, n_procs, n_vars)


def test_building_processes_adds_no_logging_handler() -> None:
    from spikeplastic.export import to_lava

    handlers = _handlers()
    procs = to_lava(stdp_modulated()).processes(spikes(20), third_factor=third(20))
    assert len(procs) > 3
    assert _handlers() == handlers, "Lava's per-process logging handlers were left on the root logger"
