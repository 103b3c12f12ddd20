"""Batched cue-reward association (Backpropamine, Miconi et al. 2019, ICLR).

Per episode (per batch element): ``n_cues = 4`` random cues in ``{-1,+1}^cue_bits`` (20 bits, each
bit uniform; cues are not forced to be distinct -- two equal 20-bit cues have probability ~6e-6),
one of which, ``target``, is drawn uniformly.

Trials follow one another from step 0; each trial has a length ``L`` uniform in
``{trial_min..trial_max}`` = ``{5..8}`` and, in local steps ``k = 0..L-1``::

    k = 0      cue A shown (its bits on the cue inputs)
    k = 1      cue B shown (B != A; the ordered pair is uniform, so P(target shown) = 1/2 exactly)
    k = 2      Go step: Go input = 1. The action the agent takes on this step is its response:
               respond (action 1) when the target was A or B -> +1, rest (action 0) when it was not
               -> +1, anything else -> -1 (``reward_correct`` / ``reward_wrong``).
    k = 3..L-1 blank inter-trial interval (2 to 5 steps); the response's reward is visible as
               "previous reward" on step k = 3.

All other steps give reward 0 whatever the action. The episode lasts ``episode_steps = 120``
steps; a trial cut off before its Go step gives no reward. TASKS.md fixes the cue count/size,
trial lengths, the Go step, the +-1 rewards, the episode length and the input list; it is silent
on the within-trial timeline, for which we follow our best recollection of Backpropamine's
description (two cues in succession, then a response signal): consecutive cues, Go right after,
and the remaining steps blank.

Observation ``[B, n_in]`` at step ``t`` (steps taken so far), ``n_in = cue_bits + 6``, in this
order: cue bits (``cue_bits``; zeros when no cue), Go (1), bias (1), time (``t / episode_steps``),
previous reward (0 after reset), previous action one-hot (2; zeros after reset). Actions:
``n_actions = 2`` (0 = rest, 1 = respond). ``gamma = 0.9`` (as in the maze; TASKS.md gives none).
``success_threshold`` (total reward per episode, ~18 trials on average) is a heuristic of ours.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..meta.protocol import RLTask
from ._common import as_device, check_batch, check_float, check_generator, check_int, rand, randint

__all__ = ["CueConfig", "CueTask", "CueState", "CUE", "RESPOND", "REST"]

RESPOND = 1
REST = 0


@dataclass(frozen=True, kw_only=True)
class CueConfig:
    """Cue-reward parameters (keyword-only, frozen; unknown keys raise ``TypeError``).

    Attributes:
        n_cues: cues per episode (>= 2). cue_bits: bits per cue.
        trial_min, trial_max: trial length range in steps (``trial_min >= 3``: cue, cue, Go).
        episode_steps: steps per episode (``T``).
        reward_correct, reward_wrong: rewards for a correct / wrong response at Go.
        gamma: A2C discount. success_threshold: total episode reward counted as solved (heuristic).
    """

    n_cues: int = 4
    cue_bits: int = 20
    trial_min: int = 5
    trial_max: int = 8
    episode_steps: int = 120
    reward_correct: float = 1.0
    reward_wrong: float = -1.0
    gamma: float = 0.9
    success_threshold: float = 12.0

    def __post_init__(self) -> None:
        check_int("n_cues", self.n_cues, minimum=2)
        check_int("cue_bits", self.cue_bits, minimum=1)
        check_int("trial_min", self.trial_min, minimum=3)
        check_int("trial_max", self.trial_max, minimum=self.trial_min)
        check_int("episode_steps", self.episode_steps, minimum=1)
        check_float("reward_correct", self.reward_correct)
        check_float("reward_wrong", self.reward_wrong)
        check_float("gamma", self.gamma, low=0.0, high=1.0)
        check_float("success_threshold", self.success_threshold)


#: Backpropamine's cue-reward task.
CUE = CueConfig()


class CueState(NamedTuple):
    """Snapshot of the batched environment.

    Attributes:
        cues: ``[B, n_cues, cue_bits]``. target: ``[B]``.
        cue_at: ``[B, T+1]`` cue index shown at each step (-1: none).
        go_at: ``[B, T+1]`` bool, Go steps. target_shown_at: ``[B, T+1]`` bool, whether the
        current trial shows the target (meaningful at Go steps).
        trial_lengths: ``[B, M]`` drawn trial lengths. t: steps taken.
        prev_reward: ``[B]``. prev_action: ``[B]`` (-1 after reset).
    """

    cues: Tensor
    target: Tensor
    cue_at: Tensor
    go_at: Tensor
    target_shown_at: Tensor
    trial_lengths: Tensor
    t: int
    prev_reward: Tensor
    prev_action: Tensor


class CueTask(RLTask):
    """Cue-reward association as an :class:`RLTask` (timeline in the module docstring)."""

    def __init__(self, config: CueConfig = CUE, *, name: str = "cue") -> None:
        if not isinstance(config, CueConfig):
            raise TypeError(f"config must be a CueConfig, got {type(config).__name__}")
        self.config = config
        self.name = name
        self.n_actions = 2
        self.n_in = config.cue_bits + 4 + self.n_actions
        self.T = config.episode_steps
        self.gamma = config.gamma
        self.success_threshold = config.success_threshold
        self._state: CueState | None = None

    @property
    def state(self) -> CueState:
        if self._state is None:
            raise RuntimeError("call reset() before step()/state")
        return self._state

    def reset(self, batch: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Tensor:
        cfg = self.config
        b = check_batch(batch)
        g = check_generator(generator)
        dev = as_device(device)
        n_trials = math.ceil((self.T + 1) / cfg.trial_min)   # enough trials to cover steps 0..T
        cues = torch.where(rand((b, cfg.n_cues, cfg.cue_bits), g, dev) < 0.5, 1.0, -1.0)
        target = randint(0, cfg.n_cues, (b,), g, dev)
        lengths = randint(cfg.trial_min, cfg.trial_max + 1, (b, n_trials), g, dev)
        first = randint(0, cfg.n_cues, (b, n_trials), g, dev)
        second = (first + randint(1, cfg.n_cues, (b, n_trials), g, dev)) % cfg.n_cues   # != first

        starts = lengths.cumsum(dim=1) - lengths                                         # [B, M]
        steps = torch.arange(self.T + 1, device=dev).unsqueeze(0).expand(b, -1).contiguous()
        trial = torch.searchsorted(starts, steps, right=True) - 1                        # [B, T+1]
        local = steps - starts.gather(1, trial)
        a, bb = first.gather(1, trial), second.gather(1, trial)
        cue_at = torch.where(local == 0, a, torch.where(local == 1, bb, torch.full_like(a, -1)))
        go_at = local == 2
        target_shown_at = (a == target.unsqueeze(1)) | (bb == target.unsqueeze(1))
        self._state = CueState(
            cues=cues,
            target=target,
            cue_at=cue_at,
            go_at=go_at,
            target_shown_at=target_shown_at,
            trial_lengths=lengths,
            t=0,
            prev_reward=torch.zeros(b, device=dev),
            prev_action=torch.full((b,), -1, dtype=torch.long, device=dev),
        )
        return self._observe(self._state)

    def _observe(self, s: CueState) -> Tensor:
        b = s.cues.shape[0]
        dev = s.cues.device
        idx = s.cue_at[:, s.t]
        bits = s.cues[torch.arange(b, device=dev), idx.clamp_min(0)] * (idx >= 0).unsqueeze(1)
        prev_a = F.one_hot(s.prev_action.clamp_min(0), self.n_actions).float() * (s.prev_action >= 0).unsqueeze(1)
        return torch.cat(
            [
                bits,
                s.go_at[:, s.t].float().unsqueeze(1),
                torch.ones(b, 1, device=dev),
                torch.full((b, 1), s.t / self.T, device=dev),
                s.prev_reward.unsqueeze(1),
                prev_a,
            ],
            dim=1,
        )

    def step(self, action: Tensor) -> tuple[Tensor, Tensor]:
        """Apply ``action`` ``[B]`` (int64, 0 = rest, 1 = respond); returns ``(obs [B, n_in], reward [B])``."""
        s = self.state
        if s.t >= self.T:
            raise RuntimeError(f"episode over after {self.T} steps; call reset()")
        b = s.cues.shape[0]
        if not isinstance(action, Tensor) or action.shape != (b,) or action.dtype != torch.long:
            raise ValueError(f"action must be an int64 tensor of shape [{b}], got {action!r:.80}")
        if bool(((action < 0) | (action >= self.n_actions)).any()):
            raise ValueError(f"action values must lie in 0..{self.n_actions - 1}")
        action = action.to(s.cues.device)
        cfg = self.config
        correct = (action == RESPOND) == s.target_shown_at[:, s.t]
        reward = torch.where(correct, cfg.reward_correct, cfg.reward_wrong)
        reward = torch.where(s.go_at[:, s.t], reward, 0.0)
        self._state = s._replace(t=s.t + 1, prev_reward=reward, prev_action=action)
        return self._observe(self._state), reward
