"""Spike encoders: rate-coded task inputs ``[T, B, n]`` -> spiking-model inputs ``[T*s, B, n_out]``.

Every task step (a *frame*) becomes ``s = steps_per_frame`` consecutive spiking steps.

Signed inputs (``signed``), applied first:
  * ``"split"``: ON/OFF channels, ``[relu(x), relu(-x)]`` concatenated on the last axis
    (``n_out = 2 n``; ON channels first).
  * ``"abs"``: ``|x|`` (``n_out = n``; the sign is lost).
  * ``"error"``: raise ``ValueError`` if any ``x < 0`` (``n_out = n``).
  * ``"pass"``: keep the sign (only :class:`DirectCurrent`; spikes cannot be negative).

Encoders (``v`` = the non-negative value after sign handling):
  * :class:`RateEncoder`: per spiking step, ``lambda = max_rate * clip(v / scale, 0, 1)``;
    ``"bernoulli"``: a spike with probability ``lambda`` (``max_rate <= 1``); ``"poisson"``:
    a spike count ``~ Poisson(lambda)``. Independent draws for every step.
  * :class:`LatencyEncoder`: one spike per frame and channel with ``v > threshold``, at sub-step
    ``k = round((1 - clip(v / scale, 0, 1)) * (s - 1))`` -- stronger inputs fire earlier;
    ``v <= threshold`` gives no spike. Deterministic.
  * :class:`DirectCurrent`: ``gain * v`` held for the ``s`` sub-steps (differentiable).

For the pattern task, whose ``Episode.inputs`` are multiplied by 20, encode
``info["unscaled_inputs"]`` (``{-1,0,1}``) -- :meth:`SpikeEncoder.encode_episode` does so -- or set
``scale=20``.

Example::

    enc = RateEncoder(max_rate=0.5)
    spikes = enc(episode.inputs, torch.Generator().manual_seed(0))   # [T, B, 2n] (split)
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from ..protocol import Episode
from ._common import check_choice, check_float, check_int

__all__ = ["SpikeEncoder", "RateEncoder", "LatencyEncoder", "DirectCurrent", "Signed"]

Signed = Literal["split", "abs", "error", "pass"]


class SpikeEncoder(ABC):
    """Base of all encoders: sign handling, output size, time expansion, episode conversion."""

    steps_per_frame: int
    signed: Signed

    def n_out(self, n_in: int) -> int:
        """Channels produced for ``n_in`` input channels (``2 n_in`` for ``signed="split"``)."""
        check_int("n_in", n_in, minimum=1)
        return 2 * n_in if self.signed == "split" else n_in

    def _apply_sign(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() != 3:
            got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"x must be a floating-point tensor [T, B, n], got {got}")
        if self.signed == "split":
            return torch.cat([torch.relu(x), torch.relu(-x)], dim=-1)
        if self.signed == "abs":
            return x.abs()
        if self.signed == "error" and bool((x < 0).any()):
            raise ValueError(
                "x has negative values but signed='error'; use signed='split' (ON/OFF channels) or 'abs'"
            )
        return x

    @abstractmethod
    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``x`` ``[T, B, n]`` -> ``[T * steps_per_frame, B, n_out(n)]``."""

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.encode(x, generator)

    def expand_mask(self, mask: Tensor) -> Tensor:
        """``[T, B]`` frame mask -> ``[T * s, B]``: True at the last sub-step of each selected frame."""
        s = self.steps_per_frame
        out = mask.new_zeros((mask.shape[0], s, *mask.shape[1:]))
        out[:, -1] = mask
        return out.reshape(mask.shape[0] * s, *mask.shape[1:])

    def encode_episode(self, episode: Episode, generator: torch.Generator | None = None) -> Episode:
        """A copy of ``episode`` with encoded inputs and an expanded mask.

        Encodes ``episode.info["unscaled_inputs"]`` when the episode has it (pattern task),
        else ``episode.inputs``. Targets and info are kept; ``info["steps_per_frame"]`` is added.
        Losses that read ``outputs[-1]`` work unchanged on the longer output sequence.
        """
        info = dict(episode.info or {})
        src = info.get("unscaled_inputs", episode.inputs)
        mask = None if episode.mask is None else self.expand_mask(episode.mask)
        info["steps_per_frame"] = self.steps_per_frame
        return Episode(inputs=self.encode(src, generator), targets=episode.targets, mask=mask, info=info)


def _check_spiking_signed(signed: object) -> None:
    check_choice("signed", signed, ("split", "abs", "error"))


@dataclass(frozen=True, kw_only=True)
class RateEncoder(SpikeEncoder):
    """Bernoulli / Poisson rate code (equations in the module docstring).

    Attributes:
        max_rate: spike probability (bernoulli, in (0, 1]) or expected count (poisson, > 0) per
            step at ``v >= scale``.
        scale: input magnitude mapped to ``max_rate``; larger values are clipped.
        steps_per_frame: spiking steps per task step.
        signed: ``"split"`` | ``"abs"`` | ``"error"``.
        mode: ``"bernoulli"`` (0/1 spikes) or ``"poisson"`` (counts).
    """

    max_rate: float = 1.0
    scale: float = 1.0
    steps_per_frame: int = 1
    signed: Signed = "split"
    mode: Literal["bernoulli", "poisson"] = "bernoulli"

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, ("bernoulli", "poisson"))
        check_float("max_rate", self.max_rate, low=0.0, high=1.0 if self.mode == "bernoulli" else float("inf"), low_open=True)
        check_float("scale", self.scale, low=0.0, low_open=True)
        check_int("steps_per_frame", self.steps_per_frame, minimum=1)
        _check_spiking_signed(self.signed)

    def rates(self, x: Tensor) -> Tensor:
        """Expected spikes per step ``[T, B, n_out]`` (before time expansion)."""
        return self.max_rate * (self._apply_sign(x) / self.scale).clamp(0.0, 1.0)

    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        lam = self.rates(x).detach().repeat_interleave(self.steps_per_frame, dim=0)
        draw_dev = generator.device if generator is not None else lam.device
        lam_d = lam.to(draw_dev)
        if self.mode == "bernoulli":
            u = torch.rand(lam_d.shape, generator=generator, device=draw_dev, dtype=lam_d.dtype)
            out = (u < lam_d).to(lam_d.dtype)
        else:
            out = torch.poisson(lam_d, generator=generator)
        return out.to(x.device)


@dataclass(frozen=True, kw_only=True)
class LatencyEncoder(SpikeEncoder):
    """Time-to-first-spike code: one spike per frame, earlier for stronger inputs.

    Attributes:
        steps_per_frame: the latency window (default 8: a window of 1 step degenerates to a
            threshold code).
        scale: input magnitude that fires at sub-step 0.
        threshold: inputs ``<= threshold`` (after sign handling) do not spike.
        signed: ``"split"`` | ``"abs"`` | ``"error"``.
    """

    steps_per_frame: int = 8
    scale: float = 1.0
    threshold: float = 0.0
    signed: Signed = "split"

    def __post_init__(self) -> None:
        check_int("steps_per_frame", self.steps_per_frame, minimum=1)
        check_float("scale", self.scale, low=0.0, low_open=True)
        check_float("threshold", self.threshold, low=0.0)
        _check_spiking_signed(self.signed)

    def latency(self, x: Tensor) -> Tensor:
        """Spike sub-step ``[T, B, n_out]`` (int64), ``-1`` where no spike."""
        v = self._apply_sign(x).detach()
        k = torch.round((1.0 - (v / self.scale).clamp(0.0, 1.0)) * (self.steps_per_frame - 1)).long()
        return torch.where(v > self.threshold, k, torch.full_like(k, -1))

    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Deterministic; ``generator`` is ignored."""
        k = self.latency(x)                                        # [T, B, n_out]
        t, b, n = k.shape
        out = torch.zeros(t, self.steps_per_frame, b, n, dtype=x.dtype, device=x.device)
        fire = (k >= 0).to(x.dtype).unsqueeze(1)
        out.scatter_(1, k.clamp_min(0).unsqueeze(1), fire)
        return out.reshape(t * self.steps_per_frame, b, n)


@dataclass(frozen=True, kw_only=True)
class DirectCurrent(SpikeEncoder):
    """Pass-through input currents ``gain * v``, held for ``steps_per_frame`` steps (differentiable).

    Attributes:
        gain: current multiplier. steps_per_frame: spiking steps per task step.
        signed: ``"pass"`` (keep signs, default) | ``"split"`` | ``"abs"`` | ``"error"``.
    """

    gain: float = 1.0
    steps_per_frame: int = 1
    signed: Signed = "pass"

    def __post_init__(self) -> None:
        check_float("gain", self.gain)
        check_int("steps_per_frame", self.steps_per_frame, minimum=1)
        check_choice("signed", self.signed, ("split", "abs", "error", "pass"))

    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Deterministic; ``generator`` is ignored."""
        return (self.gain * self._apply_sign(x)).repeat_interleave(self.steps_per_frame, dim=0)
