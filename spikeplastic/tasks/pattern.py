"""Binary pattern memorisation and completion (Miconi, Clune & Stanley 2018, section 4.2).

Episode schedule (per batch element, ``P = n_patterns``, ``C = cycles``)::

    for c in range(C):                      # a fresh random order of the P patterns each cycle
        for p in order[c]:
            show pattern p            present_steps steps   (x = input_scale * pattern)
            zeros                     gap_steps steps
    show degraded copy of pattern q   test_steps steps      (x = input_scale * degraded)

    T = C * P * (present_steps + gap_steps) + test_steps     (106 for ``PATTERN``, 11 for ``PATTERN50``)

Patterns are in ``{-1, +1}^n_bits`` and exactly balanced (``n_bits/2`` of each sign). The degraded
copy has exactly ``round(degrade_fraction * n_bits)`` bits, chosen uniformly, set to 0. The target
is the stored (undegraded) pattern ``q``.

Scaling: ``Episode.inputs`` are already multiplied by ``input_scale`` (20 in the paper), as the rate
network of the paper consumes them. ``Episode.info["unscaled_inputs"]`` holds the same sequence with
values in ``{-1, 0, +1}``, which is what a spike encoder (``spikeplastic.tasks.encoders``) should see.

Example::

    task = PatternTask(PATTERN)
    ep = task.sample(4, torch.Generator().manual_seed(0))
    ep.inputs.shape        # torch.Size([106, 4, 1000])
    ep.targets.shape       # torch.Size([4, 1000])
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..protocol import Episode, SupervisedTask
from ._common import (
    as_device,
    check_batch,
    check_float,
    check_generator,
    check_int,
    check_outputs,
    randint,
    random_permutations,
    schedule_blocks,
)

__all__ = ["PatternConfig", "PatternTask", "PATTERN", "PATTERN50", "balanced_patterns"]


@dataclass(frozen=True, kw_only=True)
class PatternConfig:
    """Pattern-task parameters (keyword-only, frozen; unknown keys raise ``TypeError``).

    Attributes:
        n_bits: pattern length (even, so that patterns can be exactly balanced).
        n_patterns: patterns stored per episode.
        cycles: presentation cycles (pattern order reshuffled each cycle).
        present_steps: steps each pattern is shown per presentation.
        gap_steps: zero-input steps after every presentation.
        test_steps: steps the degraded test pattern is shown.
        degrade_fraction: fraction of the test pattern's bits set to 0 (exact after rounding).
        input_scale: multiplier applied to ``Episode.inputs``.
    """

    n_bits: int = 1000
    n_patterns: int = 5
    cycles: int = 2
    present_steps: int = 6
    gap_steps: int = 4
    test_steps: int = 6
    degrade_fraction: float = 0.5
    input_scale: float = 20.0

    def __post_init__(self) -> None:
        check_int("n_bits", self.n_bits, minimum=2)
        if self.n_bits % 2:
            raise ValueError(f"n_bits must be even (patterns are exactly balanced), got {self.n_bits}")
        check_int("n_patterns", self.n_patterns, minimum=1)
        check_int("cycles", self.cycles, minimum=1)
        check_int("present_steps", self.present_steps, minimum=1)
        check_int("gap_steps", self.gap_steps, minimum=0)
        check_int("test_steps", self.test_steps, minimum=1)
        check_float("degrade_fraction", self.degrade_fraction, low=0.0, high=1.0)
        check_float("input_scale", self.input_scale, low=0.0, low_open=True)

    @property
    def T(self) -> int:
        """Episode length ``cycles * n_patterns * (present_steps + gap_steps) + test_steps``."""
        return self.cycles * self.n_patterns * (self.present_steps + self.gap_steps) + self.test_steps

    @property
    def n_degraded(self) -> int:
        """Number of zeroed bits in the test pattern: ``round(degrade_fraction * n_bits)``."""
        return int(round(self.degrade_fraction * self.n_bits))


#: The 1000-bit task of the paper (T = 106).
PATTERN = PatternConfig()
#: The small variant of the non-plastic/LSTM comparison: 50 bits, 2 patterns, 1 cycle, 3-step
#: presentations, 1-step gaps. TASKS.md does not give the test duration; we show the degraded
#: pattern for 3 steps (same as a presentation), so T = 1*2*(3+1)+3 = 11.
PATTERN50 = PatternConfig(n_bits=50, n_patterns=2, cycles=1, present_steps=3, gap_steps=1, test_steps=3)


def balanced_patterns(shape: tuple[int, ...], n_bits: int, generator: torch.Generator, device: torch.device) -> Tensor:
    """Random ``{-1,+1}`` patterns ``[*shape, n_bits]`` with exactly ``n_bits // 2`` bits equal to ``+1``."""
    ranks = random_permutations((*shape, n_bits), generator, device)
    return torch.where(ranks < n_bits // 2, 1.0, -1.0)


class PatternTask(SupervisedTask):
    """Binary pattern completion as a :class:`SupervisedTask` (schedule in the module docstring).

    Shapes:
        inputs ``[T, B, n_bits]`` (scaled by ``input_scale``); targets ``[B, n_bits]`` in ``{-1,+1}``;
        mask ``[T, B]`` (True at the last step only).

    ``info`` keys: ``unscaled_inputs`` ``[T,B,n_bits]``, ``patterns`` ``[B,P,n_bits]``,
    ``order`` ``[B,C,P]`` (pattern index shown at each presentation), ``test_index`` ``[B]``,
    ``degraded_mask`` ``[B,n_bits]`` bool (True where the test pattern was zeroed),
    ``input_scale`` (float).

    Loss: ``mean_b sum_i (y[-1,b,i] - target[b,i])^2``. Metric: fraction of bits whose output at
    the last step has the wrong sign (an output of exactly 0 counts as wrong). Solved below 0.01.
    """

    success_threshold: float = 0.01
    higher_is_better: bool = False

    def __init__(self, config: PatternConfig = PATTERN, *, name: str = "pattern") -> None:
        if not isinstance(config, PatternConfig):
            raise TypeError(f"config must be a PatternConfig, got {type(config).__name__}")
        self.config = config
        self.name = name
        self.n_in = config.n_bits
        self.n_out = config.n_bits
        self.T = config.T

    def sample(self, batch: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Episode:
        cfg = self.config
        b = check_batch(batch)
        g = check_generator(generator)
        dev = as_device(device)
        n, p, c = cfg.n_bits, cfg.n_patterns, cfg.cycles

        patterns = balanced_patterns((b, p), n, g, dev)                      # [B, P, n]
        order = random_permutations((b, c, p), g, dev)                       # [B, C, P]
        test_index = randint(0, p, (b,), g, dev)                             # [B]
        degraded_mask = random_permutations((b, n), g, dev) < cfg.n_degraded  # [B, n]

        idx = order.reshape(b, c * p, 1).expand(b, c * p, n)
        shown = patterns.gather(1, idx)                                      # [B, C*P, n]
        target = patterns[torch.arange(b, device=dev), test_index]           # [B, n]
        degraded = target.masked_fill(degraded_mask, 0.0)

        seq = torch.cat(
            [
                schedule_blocks(shown, cfg.present_steps, cfg.gap_steps),
                degraded.unsqueeze(1).expand(b, cfg.test_steps, n),
            ],
            dim=1,
        )                                                                    # [B, T, n]
        unscaled = seq.transpose(0, 1).contiguous()                          # [T, B, n]
        mask = torch.zeros(self.T, b, dtype=torch.bool, device=dev)
        mask[-1] = True
        return Episode(
            inputs=unscaled * cfg.input_scale,
            targets=target,
            mask=mask,
            info={
                "unscaled_inputs": unscaled,
                "patterns": patterns,
                "order": order,
                "test_index": test_index,
                "degraded_mask": degraded_mask,
                "input_scale": cfg.input_scale,
            },
        )

    def loss(self, outputs: Tensor, episode: Episode) -> Tensor:
        """``mean_b sum_i (outputs[-1] - targets)^2``; ``outputs`` is ``[T', B, n_bits]`` (any ``T'``)."""
        y = check_outputs(outputs, self.n_out, batch=episode.targets.shape[0])[-1]
        return ((y - episode.targets) ** 2).sum(dim=-1).mean()

    def metric(self, outputs: Tensor, episode: Episode) -> float:
        """Fraction of bits with the wrong sign at the last step."""
        y = check_outputs(outputs, self.n_out, batch=episode.targets.shape[0])[-1].detach()
        return float((torch.sign(y) != episode.targets).float().mean())

    def reference_errors(self, episode: Episode) -> dict[str, float]:
        """The metric of two strategies that store nothing by association, on ``episode`` (one of
        :meth:`sample`'s): the floor a network must beat to show it memorised the patterns.

        - ``copy_and_guess``: copy the test pattern's intact bits, answer ``-1`` on the zeroed ones
          (expected error ``degrade_fraction / 2``: 25% on both paper tasks);
        - ``copy_and_last_shown``: copy the intact bits, fill the zeroed ones from the pattern shown
          last before the test (a one-step input memory; expected error
          ``degrade_fraction * (1 - 1/n_patterns) / 2``: 12.5% on ``pattern50``, 20% on ``pattern``).
        """
        info = episode.info
        if not {"order", "patterns", "degraded_mask"} <= set(info):
            raise ValueError("episode must come from PatternTask.sample (info needs 'order', 'patterns', "
                             f"'degraded_mask'), got info keys {sorted(info)}")
        t = episode.targets
        zeroed = info["degraded_mask"]
        b = t.shape[0]
        last = info["patterns"][torch.arange(b, device=t.device), info["order"][:, -1, -1]]   # [B, n]
        guess = t.masked_fill(zeroed, -1.0)
        recent = torch.where(zeroed, last, t)
        return {"copy_and_guess": float((guess != t).float().mean()),
                "copy_and_last_shown": float((recent != t).float().mean())}
