"""Lava runtime plumbing for :class:`~spikeplastic.export.lava_network.LavaNetwork`: bounded calls,
killing and reaping Lava's OS processes, and dropping what Lava 0.10 keeps of a finished run
(logging handlers, registered Processes and Vars, implicit ports on ProcessModel classes).

Private: imports Lava only inside functions that run after a network was built.
"""
from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from typing import Any

from ._interrupt import Guard

__all__: list[str] = []

#: loggers to which Lava 0.10 adds a handler on every Process it creates (the root logger) and on
#: every compilation (its compiler's)
_LAVA_LOGGERS = ("", "lava.magma.compiler.compiler")


def _log_handlers() -> dict[str, list[logging.Handler]]:
    return {name: list(logging.getLogger(name).handlers) for name in _LAVA_LOGGERS}


def _drop_new_handlers(before: dict[str, list[logging.Handler]]) -> None:
    """Remove the logging handlers added since ``before`` was taken.

    Lava adds a ``StreamHandler`` (level ERROR) to the *root* logger for every Process it creates
    and one to its compiler's logger per compilation, and never removes them. After a few exports
    every ERROR record of the whole program was printed once per Lava process ever created, and
    WARNING records -- which Python prints when no handler is configured (``logging.lastResort``),
    e.g. the trainer's "non-finite loss; optimiser step skipped" -- were silently dropped.
    Lava's own records still reach stderr through ``lastResort``.
    """
    for name, old in before.items():
        lg = logging.getLogger(name)
        keep = {id(h) for h in old}
        for h in list(lg.handlers):
            if id(h) not in keep:
                lg.removeHandler(h)


def _forget(built: dict[str, Any]) -> None:
    """Let a finished run's Lava processes be freed: drop the references Lava 0.10 keeps for ever.

    Lava registers every Process and Var it creates in global singletons
    (``ProcessServer().processes``, ``VarServer().vars``: appended to, never read or pruned) and
    sets every implicit VarPort (a RefPort connected straight to a Var, as the recorders here are)
    as an attribute of the ProcessModel *class* it compiled. So every network a program had run
    stayed in memory: +0.65 MiB per export+verify cycle of a 50-neuron network
    (``benchmarks/reliability.py``). The servers' id counters are untouched, so ids stay unique.
    """
    from lava.magma.core.process.ports.ports import ImplicitVarPort
    from lava.magma.core.process.process import AbstractProcess, ProcessServer
    from lava.magma.core.process.variable import VarServer

    objs = [*built["procs"].values(), *built["conns"].values(), *built["extras"],
            *(rec for rec, _ in built["recorders"].values())]
    procs = [p for p in objs if isinstance(p, AbstractProcess)]
    mine = {id(p) for p in procs}
    my_vars = {id(v) for p in procs for v in p.vars}
    server = ProcessServer()
    server.processes[:] = [p for p in server.processes if id(p) not in mine]
    var_server = VarServer()
    var_server.vars[:] = [v for v in var_server.vars if id(v) not in my_vars]
    for p in procs:
        cls = getattr(p, "_model_class", None)
        for name, value in list(vars(cls).items()) if cls is not None else ():
            if isinstance(value, ImplicitVarPort) and id(getattr(value, "var", None)) in my_vars:
                delattr(cls, name)


def _kill_runtime(runtime: Any) -> None:
    """Kill every OS process of a Lava runtime (they are this process's children) and free its memory."""
    if runtime is None:
        return
    mi = getattr(runtime, "_messaging_infrastructure", None)
    actors = list(getattr(mi, "actors", []) or [])
    for a in actors:
        try:
            if a.is_alive():
                a.kill()
        except Exception:  # noqa: BLE001 - best effort: the process may be gone already
            pass
    for a in actors:
        try:
            multiprocessing.Process.join(a, timeout=5)
        except Exception:  # noqa: BLE001
            pass
    try:
        if mi is not None and mi.smm is not None:
            mi.smm.shutdown()
    except Exception:  # noqa: BLE001
        pass
    try:
        runtime._watchdog_manager.stop()
    except Exception:  # noqa: BLE001
        pass
    runtime._is_running = False
    runtime._is_started = False


def _call_with_timeout(fn: Any, timeout: float, guard: Guard | None = None) -> tuple[bool, BaseException | None]:
    """Run ``fn`` in a daemon thread; (finished, exception). Ctrl-C in the caller propagates."""
    box: dict[str, BaseException] = {}

    def target() -> None:
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the caller
            box["e"] = e

    th = threading.Thread(target=target, daemon=True, name="spikeplastic-lava")
    th.start()
    deadline = time.monotonic() + timeout
    while th.is_alive():
        left = deadline - time.monotonic()
        if left <= 0:
            return False, None
        th.join(min(0.2, left))  # short joins keep KeyboardInterrupt responsive
        if guard is not None:
            guard.checkpoint()
    return True, box.get("e")


def _lava_children(before: set[int]) -> list[multiprocessing.Process]:
    """This process's multiprocessing children started since ``before`` (pids) that are Lava's: its
    workers (``SystemProcess``) and the managers its runtime starts (shared memory, watchdog)."""
    out = []
    for p in multiprocessing.active_children():
        if p.pid in before:
            continue
        cls = type(p)
        if cls.__module__.startswith("lava.") or (p.name or "").startswith(("SharedMemoryManager-", "SyncManager-")):
            out.append(p)
    return out


def _reap(before: set[int]) -> None:
    """Kill and join Lava's processes that outlived a stop or kill (e.g. interrupted mid start-up)."""
    for p in _lava_children(before):
        try:
            if p.is_alive():
                p.kill()
            multiprocessing.Process.join(p, timeout=5)
        except Exception:  # noqa: BLE001 - best effort: the process may be gone already
            pass
