"""Shared validation and random-number helpers for the task modules (private).

Randomness: every draw goes through ``generator`` on the generator's own device and is then moved
to the requested ``device``. Episodes are therefore identical on CPU and GPU for the same seed,
and a CPU generator can drive a CUDA episode.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from .._validation import check_int as _check_int

__all__: list[str] = []


def check_int(name: str, value: object, *, minimum: int = 0) -> int:
    """Return ``value`` if it is an ``int`` (not ``bool``) ``>= minimum``; else raise (the core check)."""
    return _check_int(name, value, minimum=minimum)


def check_float(
    name: str,
    value: object,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``float(value)`` if it is a finite real number within the given interval; else raise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r})")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    bad_low = v <= low if low_open else v < low
    bad_high = v >= high if high_open else v > high
    if bad_low or bad_high:
        lb = "(" if low_open else "["
        hb = ")" if high_open else "]"
        raise ValueError(f"{name} must lie in {lb}{low}, {high}{hb}, got {v}")
    return v


def check_choice(name: str, value: object, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``; else raise ``ValueError`` listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_batch(batch: object) -> int:
    return check_int("batch", batch, minimum=1)


def check_generator(generator: object) -> torch.Generator:
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)), "
            f"got {type(generator).__name__}"
        )
    return generator


def as_device(device: object) -> torch.device:
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    return torch.device(device)


def rand(shape: Sequence[int], generator: torch.Generator, device: torch.device) -> Tensor:
    """Uniform ``[0, 1)`` floats drawn on the generator's device, returned on ``device``."""
    return torch.rand(tuple(shape), generator=generator, device=generator.device).to(device)


def randint(low: int, high: int, shape: Sequence[int], generator: torch.Generator, device: torch.device) -> Tensor:
    """Uniform integers in ``[low, high)`` (int64) drawn on the generator's device."""
    return torch.randint(low, high, tuple(shape), generator=generator, device=generator.device).to(device)


def random_permutations(shape: Sequence[int], generator: torch.Generator, device: torch.device) -> Tensor:
    """Independent uniform permutations of ``range(shape[-1])`` for every leading index (argsort of uniforms)."""
    return rand(shape, generator, device).argsort(dim=-1)


def check_action(action: object, batch: int, n_actions: int, t: int, T: int, device: torch.device) -> Tensor:
    """Validate an RL ``step`` call: episode not over (``t < T``) and ``action`` an int64 ``[batch]``
    tensor in ``0..n_actions-1``; returns it on ``device``."""
    if t >= T:
        raise RuntimeError(f"episode over after {T} steps; call reset()")
    if not isinstance(action, Tensor) or action.shape != (batch,) or action.dtype != torch.long:
        raise ValueError(f"action must be an int64 tensor of shape [{batch}], got {action!r:.80}")
    if bool(((action < 0) | (action >= n_actions)).any()):
        raise ValueError(f"action values must lie in 0..{n_actions - 1}")
    return action.to(device)


def check_outputs(outputs: object, n_out: int, *, batch: int | None = None) -> Tensor:
    """Validate model outputs ``[T', B, n_out]`` (``T'`` free: only the last step is used)."""
    if not isinstance(outputs, Tensor):
        raise TypeError(f"outputs must be a torch.Tensor [T, B, {n_out}], got {type(outputs).__name__}")
    if outputs.dim() != 3 or outputs.shape[-1] != n_out or outputs.shape[0] < 1:
        raise ValueError(f"outputs must have shape [T, B, {n_out}] with T >= 1, got {tuple(outputs.shape)}")
    if batch is not None and outputs.shape[1] != batch:
        raise ValueError(f"outputs batch size {outputs.shape[1]} does not match the episode's {batch}")
    return outputs


def schedule_blocks(seq: Tensor, present: int, gap: int) -> Tensor:
    """Expand ``seq`` ``[B, S, n]`` to ``[B, S*(present+gap), n]``: each item ``present`` steps, then ``gap`` zeros."""
    b, s, n = seq.shape
    shown = seq.unsqueeze(2).expand(b, s, present, n)
    zeros = seq.new_zeros(b, s, gap, n)
    return torch.cat([shown, zeros], dim=2).reshape(b, s * (present + gap), n)
