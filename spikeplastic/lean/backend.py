"""Backend choice and the compile cache of the lean ops.

``"reference"`` and ``"inplace"`` run eagerly; ``"compile"`` runs the fused kernels through
:func:`torch.compile`, once per static configuration, and falls back to ``"inplace"`` (with one
warning per process) when compilation fails; ``"auto"`` picks one of the last two by size.
"""
from __future__ import annotations

import types
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

BACKENDS = ("auto", "reference", "inplace", "compile")
#: largest rounding amplification ``gamma^-K`` allowed between two exact copies of ``H``
MAX_AMPLIFICATION = 8.0
#: ``backend="auto"`` compiles steps with at least this many plastic-weight elements (``B*N*n``)
AUTO_COMPILE_MIN_ELEMENTS = 1 << 18

_COMPILED: dict[tuple, Callable[..., Any]] = {}
_COMPILE_BROKEN: list[str] = []


def _static_key(a: Any) -> Any:
    """What a compiled function specialises on: flags, and the rank/dtype/device of each tensor."""
    if isinstance(a, Tensor):
        return ("T", a.dim(), a.dtype, a.device.type)
    if isinstance(a, tuple):
        return tuple(_static_key(b) for b in a)
    return a


def _detach(a: Any) -> Any:
    """``a`` with every tensor detached, through (named) tuples.

    Detached views share storage (in-place updates still land) and keep ``requires_grad`` out of the
    compiled functions' guards.
    """
    if isinstance(a, Tensor):
        return a.detach()
    if isinstance(a, tuple):
        items = [_detach(b) for b in a]
        return type(a)(*items) if hasattr(a, "_fields") else tuple(items)
    return a


def _compiled(fn: Callable[..., Any], key: Any) -> Callable[..., Any]:
    """``torch.compile(fn)`` for one static configuration (flags, ranks, dtypes) of its arguments.

    Each configuration gets its own copy of ``fn``'s code object: dynamo keeps guards and its
    recompile budget per code object, so configurations never evict one another.
    """
    c = _COMPILED.get((fn.__name__, key))
    if c is None:
        code = fn.__code__.replace(co_name=f"{fn.__name__}_{len(_COMPILED)}")
        f = types.FunctionType(code, fn.__globals__, code.co_name, fn.__defaults__, fn.__closure__)
        c = torch.compile(f, dynamic=None)
        _COMPILED[(fn.__name__, key)] = c
    return c


def _compile_failed(exc: Exception, stacklevel: int) -> None:
    """Record a failed compile and warn: an environment problem, not a wrong result."""
    _COMPILE_BROKEN.append(f"{type(exc).__name__}: {exc}")
    warnings.warn(
        f"spikeplastic.lean: torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); "
        "falling back to backend='inplace'", RuntimeWarning, stacklevel=stacklevel + 1,
    )


def _call_kernel(backend: str, fused: Callable[..., Any], eager: Callable[..., Any], *args: Any) -> Any:
    """``fused(*args)`` compiled; if compilation fails (no C++ compiler, no Triton, ...) warn once and
    run ``eager(*args)`` instead for the rest of the process."""
    if backend == "compile" and not _COMPILE_BROKEN:
        dargs = _detach(args)
        try:
            return _compiled(fused, _static_key(dargs))(*dargs)
        except Exception as exc:  # a failed compile is an environment problem, not a wrong result
            _compile_failed(exc, 3)
    return eager(*args)


class _StepRunner:
    """Calls a whole-step function ``fn(kind, *args)`` for one run (one forward or backward pass).

    ``compile``: ``fn`` is compiled with ``kind="fused"``, once per static configuration (the key is
    computed on the first call only); tensors must already be detached. If compilation fails it warns
    once and runs ``kind="inplace"`` eagerly. Other backends run eagerly with ``kind=backend``.
    """

    def __init__(self, fn: Callable[..., Any], backend: str) -> None:
        self.fn, self.backend, self.compiled = fn, backend, None

    def __call__(self, *args: Any) -> Any:
        if self.backend != "compile" or _COMPILE_BROKEN:
            return self.fn("inplace" if self.backend == "compile" else self.backend, *args)
        try:
            if self.compiled is None:
                self.compiled = _compiled(self.fn, _static_key(args))
            return self.compiled("fused", *args)
        except Exception as exc:  # a failed compile is an environment problem, not a wrong result
            _compile_failed(exc, 2)
            return self.fn("inplace", *args)


def _resolve_backend(backend: str, ref: Tensor, elements: int) -> str:
    """``backend`` checked; ``"auto"``: ``"compile"`` from ``AUTO_COMPILE_MIN_ELEMENTS`` elements
    (on CUDA only with Triton), else ``"inplace"``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if backend != "auto":
        return backend
    if _COMPILE_BROKEN or elements < AUTO_COMPILE_MIN_ELEMENTS:
        return "inplace"
    if ref.device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return "inplace"
    return "compile"


def _f(t: Tensor | float | None) -> float | None:
    return None if t is None else float(t)
