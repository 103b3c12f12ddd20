"""Argument checks that raise clear errors naming the argument and the expected form."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices`` else raise ``ValueError``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def describe(t: Tensor, bad: Tensor | None = None) -> str:
    """A short rendering of ``t`` (or of its ``bad`` elements) for an error message."""
    if t.dim() == 0:
        return repr(float(t))
    sel = t[bad] if bad is not None else t.flatten()
    head = [float(v) for v in sel.flatten()[:3]]
    what = "elements" if bad is None else "offending elements"
    return f"a tensor of shape {tuple(t.shape)} ({int(sel.numel())} {what}, e.g. {head})"


def as_float_tensor(name: str, value: Any, form: str = "a number or a tensor of numbers") -> Tensor:
    """``value`` as a float64 tensor; ``TypeError`` naming ``name`` for anything non-numeric
    (a string such as ``"nan"``, ``None``, a bool, a complex or bool tensor)."""
    bad_type = isinstance(value, (bool, str, bytes)) or value is None
    if isinstance(value, Tensor):
        bad_type = value.dtype == torch.bool or value.is_complex()
    if not bad_type:
        try:
            return torch.as_tensor(value).detach().to(torch.float64)
        except (TypeError, ValueError, RuntimeError):
            pass
    raise TypeError(f"{name}: expected {form}, got {type(value).__name__} {value!r}")


def check_finite(name: str, value: Any, form: str = "a finite number or a tensor of finite numbers") -> Tensor:
    """``value`` as a floating tensor (its own float dtype, else the default one) after checking
    that it is numeric (``TypeError``) and free of NaN/inf (``ValueError``), both naming ``name``."""
    t64 = as_float_tensor(name, value, form)
    bad = ~torch.isfinite(t64)
    if bool(bad.any()):
        raise ValueError(f"{name}: expected {form}, got {describe(t64, bad if t64.dim() else None)}")
    t = value.detach() if isinstance(value, Tensor) else torch.as_tensor(value)
    return t if t.is_floating_point() else t.to(torch.get_default_dtype())


def check_number(name: str, value: Any, form: str = "a finite number") -> float:
    """``value`` as a Python float: a finite real scalar (``TypeError`` / ``ValueError`` naming ``name``)."""
    t = as_float_tensor(name, value, form)
    if t.dim() != 0:
        raise TypeError(f"{name}: expected {form}, got {describe(t)}")
    if not bool(torch.isfinite(t)):
        raise ValueError(f"{name}: expected {form}, got {float(t)!r}")
    return float(t)


def check_positive(name: str, value: Any, *, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` unless every element of ``value`` is finite and > 0 (>= 0 with allow_zero)."""
    t = as_float_tensor(name, value, "a finite number >= 0" if allow_zero else "a finite number > 0")
    bad = ~torch.isfinite(t) | ((t < 0) if allow_zero else (t <= 0))
    if bool(bad.any()):
        rel = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {rel}, got {value!r}")


def check_range(name: str, value: Any, lo: float, hi: float) -> None:
    """Raise ``ValueError`` unless every element lies in the closed interval ``[lo, hi]``."""
    t = as_float_tensor(name, value, f"a number in [{lo}, {hi}]")
    if bool((~torch.isfinite(t) | (t < lo) | (t > hi)).any()):
        raise ValueError(f"{name} must lie in [{lo}, {hi}], got {value!r}")


def check_int(name: str, value: Any, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an int >= minimum (bools rejected) else raise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return value


def check_tensor(
    name: str,
    x: Any,
    *,
    ndim: int | None = None,
    last_dim: int | None = None,
    shape: Sequence[int | None] | None = None,
    finite: bool = True,
    nonempty: bool = False,
) -> Tensor:
    """Check a floating tensor's type, rank, trailing size and finiteness (and, with ``nonempty``,
    that every dimension but the last has at least one entry: a time step, a sample)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(f"{name} must have a floating dtype (float32/float64), got {x.dtype}")
    if ndim is not None and x.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if last_dim is not None and x.shape[-1] != last_dim:
        raise ValueError(f"{name} must have last dimension {last_dim}, got shape {tuple(x.shape)}")
    if shape is not None:
        ok = len(shape) == x.dim() and all(s is None or s == d for s, d in zip(shape, x.shape))
        if not ok:
            want = "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
            raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    if nonempty and any(d == 0 for d in x.shape[:-1]):
        raise ValueError(f"{name}: expected at least one entry along every dimension but the last "
                         f"(at least one time step and one sample), got shape {tuple(x.shape)}")
    if finite and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def check_state_batch(name: str, state: Any, batch: int) -> None:
    """Raise ``ValueError`` unless every tensor of rank >= 1 in ``state`` (nested NamedTuples,
    tuples, lists, dicts) has leading dimension ``batch``: a state from another batch size would
    otherwise broadcast silently against the input (B=1 input on a B=3 state gives B=3 outputs)."""

    def walk(path: str, v: Any) -> None:
        if isinstance(v, Tensor):
            if v.dim() >= 1 and v.shape[0] != batch:
                raise ValueError(f"{name}: expected a state for batch size {batch} (as from initial_state({batch})), "
                                 f"got {path} of shape {tuple(v.shape)}")
        elif isinstance(v, tuple) and hasattr(v, "_fields"):
            for f in v._fields:
                walk(f"{path}.{f}", getattr(v, f))
        elif isinstance(v, (tuple, list)):
            for i, item in enumerate(v):
                walk(f"{path}[{i}]", item)
        elif isinstance(v, Mapping):
            for k, item in v.items():
                walk(f"{path}[{k!r}]", item)

    walk(name, state)


def check_spikes(name: str, x: Tensor) -> Tensor:
    """Raise ``ValueError`` unless every element of ``x`` is exactly 0 or 1."""
    if not bool(((x == 0) | (x == 1)).all()):
        bad = x[(x != 0) & (x != 1)].flatten()[:3].tolist()
        raise ValueError(f"{name} must contain spikes (values in {{0, 1}}), found e.g. {bad}")
    return x


def inv_softplus(y: float) -> float:
    """Inverse of ``softplus``: the raw value whose softplus is ``y`` (> 0)."""
    return y + math.log(-math.expm1(-y))


def logit(p: float) -> float:
    """Inverse of ``sigmoid`` for ``p`` in (0, 1)."""
    return math.log(p) - math.log1p(-p)
